// Elementwise arithmetic between tensors of the same shape.

public func + (a: Tensor, b: Tensor) -> Tensor {
    precondition(a.shape == b.shape, "Cannot add \(a.shape) and \(b.shape)")
    var y = Tensor(uninitialized: a.shape)
    a.ptr { ap in b.ptr { bp in y.mutPtr { yp in addForward(a: ap, b: bp, y: yp, count: a.count) } } }
    return y
}

public func += (a: inout Tensor, b: Tensor) {
    precondition(a.shape == b.shape, "Cannot add \(b.shape) to \(a.shape)")
    b.ptr { bp in a.mutPtr { ap in addInPlace(ap, bp, count: b.count) } }
}
