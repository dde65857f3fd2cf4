import Foundation

/// Adam and AdamW exactly as `torch.optim.Adam` / `torch.optim.AdamW` (no amsgrad):
/// Adam adds weight_decay * p to the gradient; AdamW instead scales p by (1 - lr * weight_decay).
/// p -= (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps).
public final class Adam: Optimizer {
    public let decoupledWeightDecay: Bool
    public let beta1: Float, beta2: Float, eps: Float, weightDecay: Float
    public var stepCount = 0
    public var stateBuffers: [String: [Float]] = [:]
    public var name: String { decoupledWeightDecay ? "adamw" : "adam" }

    public init(beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8, weightDecay: Float = 0,
                decoupledWeightDecay: Bool = false) throws {
        try requireHyperparameter((0..<1).contains(beta1) && (0..<1).contains(beta2),
                                  "Adam betas must be in [0, 1), got (\(beta1), \(beta2))")
        try requireHyperparameter(eps >= 0, "Adam eps must be non-negative, got \(eps)")
        try requireHyperparameter(weightDecay >= 0, "weight_decay must be non-negative, got \(weightDecay)")
        self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay
        self.decoupledWeightDecay = decoupledWeightDecay
    }

    /// torch.optim.AdamW's defaults (weight decay 0.01).
    public static func adamW(beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8,
                             weightDecay: Float = 1e-2) throws -> Adam {
        try Adam(beta1: beta1, beta2: beta2, eps: eps, weightDecay: weightDecay, decoupledWeightDecay: true)
    }

    public func step(parameters p: UnsafeMutablePointer<Float>, gradients g: UnsafePointer<Float>, count: Int,
                     learningRate lr: Float) {
        stepCount += 1
        for key in ["exp_avg", "exp_avg_sq"] where stateBuffers[key]?.count != count {
            stateBuffers[key] = [Float](repeating: 0, count: count)
        }
        let t = Double(stepCount)
        let stepSize = Float(Double(lr) / (1 - pow(Double(beta1), t)))
        let sqrtBC2 = Float((1 - pow(Double(beta2), t)).squareRoot())
        let b1 = beta1, b2 = beta2, eps = eps, wd = weightDecay, decoupled = decoupledWeightDecay
        var m = stateBuffers.removeValue(forKey: "exp_avg")!, v = stateBuffers.removeValue(forKey: "exp_avg_sq")!
        m.withUnsafeMutableBufferPointer { mb in
            v.withUnsafeMutableBufferPointer { vb in
                let m = mb.baseAddress!, v = vb.baseAddress!
                Parallel.chunks(count) { _, range in
                    for i in range {
                        var grad = g[i]
                        if decoupled { p[i] *= 1 - lr * wd } else { grad += wd * p[i] }
                        m[i] = b1 * m[i] + (1 - b1) * grad
                        v[i] = b2 * v[i] + (1 - b2) * grad * grad
                        p[i] -= stepSize * m[i] / (v[i].squareRoot() / sqrtBC2 + eps)
                    }
                }
            }
        }
        stateBuffers["exp_avg"] = m; stateBuffers["exp_avg_sq"] = v
    }
}
