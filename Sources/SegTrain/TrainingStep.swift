import SegCore
import SegNN

/// What one optimisation step is made of: the model, its optimizer, the loss and the
/// learning-rate schedule. `DataParallelStep` runs the forward/backward on one or more ranks;
/// `applyGradients` is the optimizer update at the schedule's current rate.
public struct Trainer {
    public let model: SegmentationModel
    public let optimizer: Optimizer
    public let loss: LossKind
    public var schedule: LearningRateSchedule
    /// Cross-entropy's per-class weights (nil: all 1).
    public var classWeights: [Float]?

    public init(model: SegmentationModel, optimizer: Optimizer, loss: LossKind, schedule: LearningRateSchedule) {
        self.model = model; self.optimizer = optimizer; self.loss = loss; self.schedule = schedule
    }

    public func applyGradients() {
        let store = model.store
        optimizer.step(parameters: store.parameters, gradients: store.gradients,
                       learningRate: schedule.learningRate(at: optimizer.stepCount), backend: store.backend)
    }
}
