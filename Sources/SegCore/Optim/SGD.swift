/// Stochastic gradient descent exactly as `torch.optim.SGD`:
/// g += weight_decay * p; buf = momentum * buf + (1 - dampening) * g (buf = g on the first step);
/// p -= lr * (nesterov ? g + momentum * buf : buf).
public final class SGD: Optimizer {
    public let name = "sgd"
    public let momentum: Float, dampening: Float, weightDecay: Float, nesterov: Bool
    public var stepCount = 0
    public var stateBuffers: [String: [Float]] = [:]

    public init(momentum: Float = 0, dampening: Float = 0, weightDecay: Float = 0, nesterov: Bool = false) throws {
        try requireHyperparameter(momentum >= 0, "momentum must be non-negative, got \(momentum)")
        try requireHyperparameter(weightDecay >= 0, "weight_decay must be non-negative, got \(weightDecay)")
        try requireHyperparameter(!nesterov || (momentum > 0 && dampening == 0),
                                  "Nesterov momentum requires a momentum and zero dampening")
        self.momentum = momentum; self.dampening = dampening; self.weightDecay = weightDecay; self.nesterov = nesterov
    }

    public func step(parameters p: UnsafeMutablePointer<Float>, gradients g: UnsafePointer<Float>, count: Int,
                     learningRate lr: Float) {
        let first = stepCount == 0
        stepCount += 1
        let wd = weightDecay, mu = momentum, damp = 1 - dampening, nesterov = nesterov
        if mu == 0 {
            for i in 0..<count { p[i] -= lr * (g[i] + wd * p[i]) }
            return
        }
        if stateBuffers["momentum"]?.count != count { stateBuffers["momentum"] = [Float](repeating: 0, count: count) }
        stateBuffers["momentum"]!.withUnsafeMutableBufferPointer { bp in
            let buf = bp.baseAddress!
            Parallel.chunks(count) { _, range in
                for i in range {
                    let d = g[i] + wd * p[i]
                    let b = first ? d : mu * buf[i] + damp * d
                    buf[i] = b
                    p[i] -= lr * (nesterov ? d + mu * b : b)
                }
            }
        }
    }
}
