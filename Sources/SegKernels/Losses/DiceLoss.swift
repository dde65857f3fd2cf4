import Foundation

/// Soft Dice loss on one-hot targets: 1 - mean over classes of
/// (2 * sum(p * t) + smooth) / (sum(p) + sum(t) + smooth), sums over batch and pixels,
/// with p = sigmoid(logits) (each channel on its own, matching BCE on one-hot channels)
/// or softmax over channels. Pixels with negative targets (ignored) are left out of the sums
/// and get no gradient.
public enum DiceActivation: String, Sendable { case sigmoid, softmax }

public func softDiceLoss(logits: UnsafePointer<Float>, targets: UnsafePointer<Float>, batch: Int, classes: Int,
                         pixels: Int, activation: DiceActivation = .sigmoid, smooth: Float = 1,
                         grad: UnsafeMutablePointer<Float>?) -> Float {
    let total = batch * classes * pixels
    var probs = [Float](repeating: 0, count: total)
    probs.withUnsafeMutableBufferPointer { pb in
        let p = pb.baseAddress!
        switch activation {
        case .sigmoid:
            for i in 0..<total { p[i] = sigmoid(logits[i]) }
        case .softmax:
            softmaxChannels(logits, p, batch: batch, classes: classes, pixels: pixels)
        }
    }
    // Per class: I = sum(p t), S = sum(p) + sum(t)
    var inter = [Double](repeating: 0, count: classes), sums = inter
    for n in 0..<batch {
        for c in 0..<classes {
            let off = (n * classes + c) * pixels
            for q in 0..<pixels where targets[off + q] >= 0 {
                inter[c] += Double(probs[off + q] * targets[off + q])
                sums[c] += Double(probs[off + q] + targets[off + q])
            }
        }
    }
    var loss: Double = 0
    var dDice = [Float](repeating: 0, count: classes * 2) // d(dice_c)/dp = a_c * t - b_c
    for c in 0..<classes {
        let num = 2 * inter[c] + Double(smooth), den = sums[c] + Double(smooth)
        loss += 1 - num / den
        dDice[2 * c] = Float(2 / den)
        dDice[2 * c + 1] = Float(num / (den * den))
    }
    guard let grad else { return Float(loss / Double(classes)) }
    let k = -1 / Float(classes)
    // dL/dp for every element, then through the activation
    for n in 0..<batch {
        for c in 0..<classes {
            let off = (n * classes + c) * pixels
            for q in 0..<pixels {
                grad[off + q] = targets[off + q] < 0 ? 0 : k * (dDice[2 * c] * targets[off + q] - dDice[2 * c + 1])
            }
        }
    }
    switch activation {
    case .sigmoid:
        for i in 0..<total { grad[i] *= probs[i] * (1 - probs[i]) }
    case .softmax:
        for n in 0..<batch {
            let base = n * classes * pixels
            for q in 0..<pixels {
                var dot: Float = 0
                for c in 0..<classes { dot += grad[base + c * pixels + q] * probs[base + c * pixels + q] }
                for c in 0..<classes {
                    let i = base + c * pixels + q
                    grad[i] = probs[i] * (grad[i] - dot)
                }
            }
        }
    }
    return Float(loss / Double(classes))
}
