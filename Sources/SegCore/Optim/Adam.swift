import Foundation

/// Adam and AdamW exactly as `torch.optim.Adam` / `torch.optim.AdamW` (no amsgrad):
/// Adam adds weight_decay * p to the gradient; AdamW instead scales p by (1 - lr * weight_decay).
/// p -= (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps).
public final class Adam: Optimizer {
    public let decoupledWeightDecay: Bool
    public let beta1: Float, beta2: Float, eps: Float, weightDecay: Float
    public var stepCount = 0
    public var stateBuffers: [String: Tensor] = [:]
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

    public func step(parameters: Tensor, gradients: Tensor, gradientScale: Float, learningRate: Float, backend: Backend) {
        stepCount += 1
        let m = stateBuffer("exp_avg", count: parameters.count, backend: backend)
        let v = stateBuffer("exp_avg_sq", count: parameters.count, backend: backend)
        backend.adamUpdate(parameters: parameters, gradients: gradients, gradientScale: gradientScale, m: m, v: v, step: stepCount,
                           learningRate: learningRate,
                           beta1: beta1, beta2: beta2, eps: eps, weightDecay: weightDecay, decoupled: decoupledWeightDecay)
    }
}
