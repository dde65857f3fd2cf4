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

    /// The update from `gradientScale` times the accumulated gradients (1 / the step's loss denominator).
    public func applyGradients(gradientScale: Float = 1) {
        let store = model.store
        optimizer.step(parameters: store.parameters, gradients: store.gradients, gradientScale: gradientScale,
                       learningRate: schedule.learningRate(at: optimizer.stepCount), backend: store.backend)
    }
}
