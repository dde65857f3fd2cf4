/// max |a - b| / max(max |b|, 1e-12): the error relative to the reference `b`'s scale, robust
/// to individual reference values near zero; infinite when `a` holds a NaN. How the tests,
/// `segdist verify` and the GPU self-check all compare against a reference.
public func relativeDifference(_ a: [Float], _ b: [Float]) -> Double {
    precondition(a.count == b.count, "Comparing \(a.count) values with \(b.count)")
    var diff = 0.0, scale = 0.0
    for i in 0..<a.count {
        if a[i].isNaN { return .infinity }
        diff = max(diff, abs(Double(a[i]) - Double(b[i])))
        scale = max(scale, abs(Double(b[i])))
    }
    return diff / max(scale, 1e-12)
}

/// The same for two host tensors of one shape.
public func relativeDifference(_ a: Tensor, _ b: Tensor) -> Double {
    precondition(a.shape == b.shape, "Comparing shape \(a.shape) with \(b.shape)")
    return relativeDifference(a.storage, b.storage)
}
