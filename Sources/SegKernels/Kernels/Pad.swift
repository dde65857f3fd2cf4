/// Zero padding of each H x W plane by (left, right, top, bottom), as `F.pad(x, (l, r, t, b))`.
/// Negative amounts crop, as in PyTorch.
public struct Padding: Equatable, Sendable {
    public var left: Int, right: Int, top: Int, bottom: Int
    public init(left: Int, right: Int, top: Int, bottom: Int) {
        self.left = left; self.right = right; self.top = top; self.bottom = bottom
    }
    public var isZero: Bool { left == 0 && right == 0 && top == 0 && bottom == 0 }

    /// The padding that centres an `h x w` plane on a `targetH x targetW` one, putting the odd
    /// pixel after (bottom/right), as the reference `up` step does with Python's floor division.
    public static func centering(from h: Int, _ w: Int, to targetH: Int, _ targetW: Int) -> Padding {
        func floorHalf(_ v: Int) -> Int { v >= 0 ? v / 2 : -((-v + 1) / 2) }
        let dy = targetH - h, dx = targetW - w
        return Padding(left: floorHalf(dx), right: dx - floorHalf(dx), top: floorHalf(dy), bottom: dy - floorHalf(dy))
    }
}

public func padForward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, planes: Int,
                       height: Int, width: Int, padding p: Padding) {
    let oh = height + p.top + p.bottom, ow = width + p.left + p.right
    Parallel.forEach(planes) { plane in
        let src = x + plane * height * width, dst = y + plane * oh * ow
        dst.update(repeating: 0, count: oh * ow)
        let x0 = max(0, -p.left), x1 = min(width, ow - p.left)
        guard x1 > x0 else { return }
        for i in max(0, -p.top)..<max(max(0, -p.top), min(height, oh - p.top)) {
            (dst + (i + p.top) * ow + x0 + p.left).update(from: src + i * width + x0, count: x1 - x0)
        }
    }
}

/// dx = the region of dy that came from x (padding gradients are dropped).
public func padBackward(dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, planes: Int,
                        height: Int, width: Int, padding p: Padding) {
    let oh = height + p.top + p.bottom, ow = width + p.left + p.right
    Parallel.forEach(planes) { plane in
        let g = dy + plane * oh * ow, d = dx + plane * height * width
        d.update(repeating: 0, count: height * width)
        let x0 = max(0, -p.left), x1 = min(width, ow - p.left)
        guard x1 > x0 else { return }
        for i in max(0, -p.top)..<max(max(0, -p.top), min(height, oh - p.top)) {
            (d + i * width + x0).update(from: g + (i + p.top) * ow + x0 + p.left, count: x1 - x0)
        }
    }
}
