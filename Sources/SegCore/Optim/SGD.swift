/// Stochastic gradient descent exactly as `torch.optim.SGD`:
/// g += weight_decay * p; buf = momentum * buf + (1 - dampening) * g (buf = g on the first step);
/// p -= lr * (nesterov ? g + momentum * buf : buf).
public final class SGD: Optimizer {
    public let name = "sgd"
    public let momentum: Float, dampening: Float, weightDecay: Float, nesterov: Bool
    public var stepCount = 0
    public var stateBuffers: [String: Tensor] = [:]

    public init(momentum: Float = 0, dampening: Float = 0, weightDecay: Float = 0, nesterov: Bool = false) throws {
        try requireHyperparameter(momentum >= 0, "momentum must be non-negative, got \(momentum)")
        try requireHyperparameter(weightDecay >= 0, "weight_decay must be non-negative, got \(weightDecay)")
        try requireHyperparameter(!nesterov || (momentum > 0 && dampening == 0),
                                  "Nesterov momentum requires a momentum and zero dampening")
        self.momentum = momentum; self.dampening = dampening; self.weightDecay = weightDecay; self.nesterov = nesterov
    }

    public func step(parameters: Tensor, gradients: Tensor, gradientScale: Float, learningRate: Float, backend: Backend) {
        let first = stepCount == 0
        stepCount += 1
        let buffer = momentum == 0 ? nil : stateBuffer("momentum", count: parameters.count, backend: backend)
        backend.sgdUpdate(parameters: parameters, gradients: gradients, gradientScale: gradientScale, momentumBuffer: buffer,
                          learningRate: learningRate,
                          momentum: momentum, dampening: dampening, weightDecay: weightDecay, nesterov: nesterov,
                          firstStep: first)
    }
}
