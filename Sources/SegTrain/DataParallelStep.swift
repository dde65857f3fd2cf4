import SegCore
import SegDist
import SegNN

/// One optimisation step of the global batch spread over the ranks of `communicator`: each rank
/// takes its contiguous slice of the global batch's sample positions (the same positions a
/// single process would use), runs it in micro-batches, each a recorded forward and a tape
/// backward, and the gradients are summed over the ranks in buckets started by the tape's
/// readiness signal during the last backward. Each micro-batch seeds backward with the size of
/// what its mean loss is taken over (`LossKind.denominator`: labelled target elements, weighted
/// pixels, or images) and the summed gradients are divided by the global total, so the result is
/// the gradient of the global mean loss whatever the split — ignored pixels included.
public final class DataParallelStep {
    public let trainer: Trainer
    public let communicator: Communicator
    public let reducer: GradientReducer
    public let globalBatch: Int
    public let microBatch: Int
    /// When set, batch norm takes its statistics over every rank (synchronized batch norm).
    public var batchNormGroup: CollectiveSum?
    /// When set, every batch norm's momentum (`bn_momentum`).
    public var batchNormMomentum: Float?
    /// Seed of the dropout masks (each sample's mask also depends on the step, the layer and the
    /// sample's place in the global batch, not on the rank count).
    public var dropoutSeed: UInt64 = 0

    public init(trainer: Trainer, communicator: Communicator, globalBatch: Int, microBatch: Int, bucketElements: Int) throws {
        guard globalBatch >= communicator.size else {
            throw TrainingError("batch_size \(globalBatch) cannot be split over \(communicator.size) ranks: every rank needs at least one image")
        }
        self.trainer = trainer; self.communicator = communicator
        self.globalBatch = globalBatch; self.microBatch = microBatch
        let store = trainer.model.store
        reducer = GradientReducer(communicator: communicator, gradients: store.gradients, backend: store.backend,
                                  parameterRanges: store.parameterSlots.map(\.range), bucketElements: bucketElements)
    }

    /// This rank's part of a global batch of `globalBatch` samples.
    public func slice(rank: Int) -> Range<Int> {
        (rank * globalBatch / communicator.size)..<((rank + 1) * globalBatch / communicator.size)
    }

    /// Runs the step; `batch` gives the images and one-hot targets (host tensors) at the given
    /// positions of the global batch.
    public func step(batch: (Range<Int>) -> (Tensor, Tensor)) throws -> Float {
        let model = trainer.model, store = model.store, backend = store.backend
        let mine = slice(rank: communicator.rank)
        let chunk = microBatch > 0 ? microBatch : mine.count
        store.zeroGradients()
        var weightedLoss: Double = 0, denominator: Double = 0
        var start = mine.lowerBound
        while start < mine.upperBound {
            let end = min(mine.upperBound, start + chunk)
            let (images, targets) = batch(start..<end)
            let tape = Tape(backend: backend)
            if end == mine.upperBound {
                // the last backward of the step: its gradients are final, reduce as they come
                reducer.begin()
                tape.onParameterGradientReady = { [reducer] in reducer.parameterReady($0) }
            }
            var pass = Pass.training(tape: tape, batchNormGroup: batchNormGroup)
            pass.batchNormMomentum = batchNormMomentum
            pass.randomness = PassRandomness(seed: dropoutSeed, firstSample: trainer.optimizer.stepCount * globalBatch + start)
            let loss = try trainer.loss.apply(to: model.trainingOutputs(backend.upload(images), pass),
                                              oneHot: backend.upload(targets), pass, classWeights: trainer.classWeights)
            let share = trainer.loss.denominator(oneHot: targets, classWeights: trainer.classWeights)
            tape.backward(from: loss, scale: Float(share))
            weightedLoss += Double(backend.download(loss).scalar) * share
            denominator += share
            start = end
        }
        reducer.finish()
        let globalDenominator = communicator.size > 1 ? communicator.sum(denominator) : denominator
        let globalLoss = (communicator.size > 1 ? communicator.sum(weightedLoss) : weightedLoss) / max(globalDenominator, 1e-30)
        // the mean over the global batch: the optimizer reads each gradient times 1 / denominator
        trainer.applyGradients(gradientScale: globalDenominator > 0 ? Float(1 / globalDenominator) : 1)
        // a GPU's failed call ends the run here, before anything of this step is recorded or saved
        try backend.checkHealthy()
        return Float(globalLoss)
    }

    /// Makes every rank hold rank 0's parameters, running statistics and counters.
    public func broadcastModel(root: Int = 0) {
        guard communicator.size > 1 else { return }
        let store = trainer.model.store
        broadcast(store.parameters, root: root)
        broadcastBuffers(root: root)
    }

    /// Through the reducer's transport: a device buffer goes the way the gradients go.
    private func broadcast(_ t: Tensor, root: Int) {
        reducer.transport.broadcast(t, root: root, over: communicator, backend: trainer.model.store.backend)
    }

    /// Running statistics and batch counters from rank 0 (before evaluating or saving).
    public func broadcastBuffers(root: Int = 0) {
        guard communicator.size > 1 else { return }
        let store = trainer.model.store
        broadcast(store.buffers, root: root)
        store.counters.withUnsafeMutableBytes { communicator.broadcast($0.baseAddress!, count: $0.count, root: root) }
    }
}
