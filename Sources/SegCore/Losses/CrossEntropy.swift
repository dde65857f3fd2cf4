import Foundation

/// Mean softmax cross-entropy over pixels, as `F.cross_entropy(logits, target, ignore_index=...)`.
/// logits (N, C, P), targets (N, P) hold class indices; pixels whose target equals `ignoreIndex`
/// count neither in the sum nor in the mean. Returns 0 (and zero gradient) when every pixel is
/// ignored, where PyTorch would return NaN, so one empty crop cannot poison training.
public func softmaxCrossEntropy(logits: UnsafePointer<Float>, targets: UnsafePointer<Int32>, batch: Int,
                                classes: Int, pixels: Int, ignoreIndex: Int32 = -100,
                                grad: UnsafeMutablePointer<Float>?) throws -> Float {
    var counted = 0
    for i in 0..<(batch * pixels) {
        let t = targets[i]
        if t == ignoreIndex { continue }
        guard t >= 0 && Int(t) < classes else { throw LossError.targetOutOfRange(Int(t), classes: classes) }
        counted += 1
    }
    if let grad { grad.update(repeating: 0, count: batch * classes * pixels) }
    guard counted > 0 else { return 0 }
    let scale = 1 / Float(counted)
    var total: Double = 0
    for n in 0..<batch {
        let base = logits + n * classes * pixels
        for p in 0..<pixels {
            let t = targets[n * pixels + p]
            if t == ignoreIndex { continue }
            var m = -Float.infinity
            for c in 0..<classes { m = max(m, base[c * pixels + p]) }
            var sum: Float = 0
            for c in 0..<classes { sum += expf(base[c * pixels + p] - m) }
            let logZ = m + logf(sum)
            total += Double(logZ - base[Int(t) * pixels + p])
            if let grad {
                let g = grad + n * classes * pixels
                for c in 0..<classes { g[c * pixels + p] = expf(base[c * pixels + p] - logZ) * scale }
                g[Int(t) * pixels + p] -= scale
            }
        }
    }
    return Float(total / Double(counted))
}

public enum LossError: Error, CustomStringConvertible, Equatable {
    case targetOutOfRange(Int, classes: Int)
    public var description: String {
        switch self {
        case let .targetOutOfRange(t, classes):
            return "target class \(t) is outside 0..<\(classes) (the model has \(classes) classes)"
        }
    }
}
