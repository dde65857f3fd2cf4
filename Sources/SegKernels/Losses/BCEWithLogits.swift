import Foundation

/// Mean binary cross-entropy on logits, as `F.binary_cross_entropy_with_logits(x, t)`:
/// mean of max(x, 0) - x * t + log(1 + exp(-|x|)). Writes d(loss)/d(logits) to `grad`.
public func bceWithLogits(logits: UnsafePointer<Float>, targets: UnsafePointer<Float>, count: Int,
                          grad: UnsafeMutablePointer<Float>?) -> Float {
    let scale = 1 / Float(count)
    var total: Double = 0
    var part: Float = 0
    for i in 0..<count {
        let x = logits[i], t = targets[i]
        part += max(x, 0) - x * t + log1pf(expf(-abs(x)))
        if let grad { grad[i] = (sigmoid(x) - t) * scale }
        if i & 4095 == 4095 { total += Double(part); part = 0 }
    }
    total += Double(part)
    return Float(total / Double(count))
}
