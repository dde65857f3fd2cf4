import SegCore
import SegNN

/// One optimisation step on one batch: forward, loss, backward, optimizer update.
/// Gradients are zeroed at the start, so the store holds this step's gradients afterwards.
public struct Trainer {
    public let model: SegmentationModel
    public let optimizer: Optimizer
    public let loss: LossKind
    public var schedule: LearningRateSchedule

    public init(model: SegmentationModel, optimizer: Optimizer, loss: LossKind, schedule: LearningRateSchedule) {
        self.model = model; self.optimizer = optimizer; self.loss = loss; self.schedule = schedule
    }

    /// Forward and backward only: returns the loss and leaves gradients in the store.
    public func computeGradients(images: Tensor, targets: Tensor) throws -> Float {
        model.store.zeroGradients()
        let logits = model.forward(images, training: true)
        let (value, dLogits) = try loss.evaluate(logits: logits, oneHot: targets)
        model.backward(dLogits)
        return value
    }

    public func applyGradients() {
        let store = model.store
        optimizer.step(parameters: store.parameters, gradients: store.gradients, count: store.parameterCount,
                       learningRate: schedule.learningRate(at: optimizer.stepCount))
    }

    @discardableResult
    public func step(images: Tensor, targets: Tensor) throws -> Float {
        let value = try computeGradients(images: images, targets: targets)
        applyGradients()
        return value
    }
}
