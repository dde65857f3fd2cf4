import SegCore

/// The padding that centres an `h x w` plane on a `targetH x targetW` one, putting the odd
/// pixel after (bottom/right), as the reference `up` step does with Python's floor division.
public func centeringPadding(from h: Int, _ w: Int, to targetH: Int, _ targetW: Int) -> Padding {
    func floorHalf(_ v: Int) -> Int { v >= 0 ? v / 2 : -((-v + 1) / 2) }
    let dy = targetH - h, dx = targetW - w
    return Padding(left: floorHalf(dx), right: dx - floorHalf(dx), top: floorHalf(dy), bottom: dy - floorHalf(dy))
}
