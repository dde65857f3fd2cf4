import Foundation

/// Mean softmax cross-entropy over pixels, as
/// `F.cross_entropy(logits, target, weight=classWeights, ignore_index=ignoreIndex)`:
/// logits (N, C, P), targets (N, P) hold class indices; each pixel counts with its class's
/// weight (1 without weights) and the sum is divided by the total weight of the counted pixels;
/// pixels whose target equals `ignoreIndex` count nowhere. Returns 0 (and zero gradient) when
/// no weight is counted, where PyTorch would return NaN, so one empty crop cannot poison training.
public func softmaxCrossEntropy(logits: UnsafePointer<Float>, targets: UnsafePointer<Int32>, batch: Int,
                                classes: Int, pixels: Int, ignoreIndex: Int32 = -100,
                                classWeights: UnsafePointer<Float>? = nil,
                                grad: UnsafeMutablePointer<Float>?) throws -> Float {
    var counted: Double = 0
    for i in 0..<(batch * pixels) {
        let t = targets[i]
        if t == ignoreIndex { continue }
        guard t >= 0 && Int(t) < classes else { throw LossError.targetOutOfRange(Int(t), classes: classes) }
        counted += Double(classWeights?[Int(t)] ?? 1)
    }
    if let grad { grad.update(repeating: 0, count: batch * classes * pixels) }
    guard counted > 0 else { return 0 }
    let scale = Float(1 / counted)
    var total: Double = 0
    for n in 0..<batch {
        let base = logits + n * classes * pixels
        for p in 0..<pixels {
            let t = targets[n * pixels + p]
            if t == ignoreIndex { continue }
            let w = classWeights?[Int(t)] ?? 1
            // the gradient is w * (softmax - one-hot), scaled by 1 / counted
            let g = grad.map { $0 + n * classes * pixels + p }
            let logZ = softmaxPixel(base + p, g, classes: classes, pixels: pixels)
            total += Double(w) * Double(logZ - base[Int(t) * pixels + p])
            if let g {
                let k = w * scale
                for c in 0..<classes { g[c * pixels] *= k }
                g[Int(t) * pixels] -= k
            }
        }
    }
    return Float(total / counted)
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
