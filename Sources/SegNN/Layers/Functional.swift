import SegCore

// Stateless tensor-level helpers the models compose: padding, channel concatenation, sums.

public func pad(_ x: Tensor, _ p: Padding) -> Tensor {
    if p.isZero { return x }
    let (n, c, h, w) = x.nchw
    var y = Tensor(uninitialized: [n, c, h + p.top + p.bottom, w + p.left + p.right])
    x.ptr { xp in y.mutPtr { yp in padForward(x: xp, y: yp, planes: n * c, height: h, width: w, padding: p) } }
    return y
}

public func padBackward(_ dy: Tensor, inputShape: [Int], _ p: Padding) -> Tensor {
    if p.isZero { return dy }
    var dx = Tensor(uninitialized: inputShape)
    dy.ptr { g in dx.mutPtr { d in
        padBackward(dy: g, dx: d, planes: inputShape[0] * inputShape[1], height: inputShape[2], width: inputShape[3], padding: p)
    } }
    return dx
}

/// The padding that centres an `h x w` plane on a `targetH x targetW` one, putting the odd
/// pixel after (bottom/right), as the reference `up` step does with Python's floor division.
public func centeringPadding(from h: Int, _ w: Int, to targetH: Int, _ targetW: Int) -> Padding {
    func floorHalf(_ v: Int) -> Int { v >= 0 ? v / 2 : -((-v + 1) / 2) }
    let dy = targetH - h, dx = targetW - w
    return Padding(left: floorHalf(dx), right: dx - floorHalf(dx), top: floorHalf(dy), bottom: dy - floorHalf(dy))
}

public func concatChannels(_ a: Tensor, _ b: Tensor) -> Tensor {
    let (n, ca, h, w) = a.nchw, cb = b.shape[1]
    precondition(b.shape[0] == n && b.shape[2] == h && b.shape[3] == w, "Cannot concatenate \(a.shape) and \(b.shape)")
    var y = Tensor(uninitialized: [n, ca + cb, h, w])
    a.ptr { ap in b.ptr { bp in y.mutPtr { yp in
        concatChannelsForward(a: ap, b: bp, y: yp, batch: n, channelsA: ca, channelsB: cb, pixels: h * w)
    } } }
    return y
}

public func splitChannels(_ dy: Tensor, first ca: Int) -> (Tensor, Tensor) {
    let (n, c, h, w) = dy.nchw
    var da = Tensor(uninitialized: [n, ca, h, w]), db = Tensor(uninitialized: [n, c - ca, h, w])
    dy.ptr { g in da.mutPtr { a in db.mutPtr { b in
        concatChannelsBackward(dy: g, da: a, db: b, batch: n, channelsA: ca, channelsB: c - ca, pixels: h * w)
    } } }
    return (da, db)
}
