import Foundation

/// Mean binary cross-entropy on logits, as `F.binary_cross_entropy_with_logits(x, t)`:
/// mean of max(x, 0) - x * t + log(1 + exp(-|x|)). Writes d(loss)/d(logits) to `grad`.
/// Elements whose target is negative (ignored pixels, see `ignoredTarget`) count for nothing:
/// the mean is over the others and their gradient is 0.
public func bceWithLogits(logits: UnsafePointer<Float>, targets: UnsafePointer<Float>, count: Int,
                          grad: UnsafeMutablePointer<Float>?) -> Float {
    var ignored = 0
    for i in 0..<count where targets[i] < 0 { ignored += 1 }
    let valid = count - ignored
    guard valid > 0 else {
        grad?.update(repeating: 0, count: count)
        return 0
    }
    let scale = 1 / Float(valid)
    var total: Double = 0
    var part: Float = 0
    for i in 0..<count {
        let x = logits[i], t = targets[i]
        if ignored > 0 && t < 0 { grad?[i] = 0; continue }
        part += max(x, 0) - x * t + log1pf(expf(-abs(x)))
        if let grad { grad[i] = (sigmoid(x) - t) * scale }
        if i & 4095 == 4095 { total += Double(part); part = 0 }
    }
    total += Double(part)
    return Float(total / Double(valid))
}

/// The target value of every channel of a pixel that is not labelled (a mask's `ignore_index`):
/// losses and metrics skip it.
public let ignoredTarget: Float = -1
