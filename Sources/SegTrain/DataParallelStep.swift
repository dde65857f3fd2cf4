import SegCore
import SegData
import SegDist
import SegNN

/// One optimisation step of the global batch spread over the ranks of `communicator`: each rank
/// takes its contiguous slice of the global batch's sample indices (the same indices a single
/// process would use), runs it in micro-batches, and the gradients are summed over the ranks in
/// buckets that start during the last backward pass. Each rank's loss gradient is weighted by its
/// share of the global batch, so the sum is the gradient of the global mean loss whatever the
/// split.
public final class DataParallelStep {
    public let trainer: Trainer
    public let communicator: Communicator
    public let reducer: GradientReducer
    public let globalBatch: Int
    public let microBatch: Int

    public init(trainer: Trainer, communicator: Communicator, globalBatch: Int, microBatch: Int, bucketElements: Int) throws {
        guard globalBatch >= communicator.size else {
            throw TrainingError("batch_size \(globalBatch) cannot be split over \(communicator.size) ranks: every rank needs at least one image")
        }
        self.trainer = trainer; self.communicator = communicator
        self.globalBatch = globalBatch; self.microBatch = microBatch
        let store = trainer.model.store
        reducer = GradientReducer(communicator: communicator, gradients: store.gradients, count: store.parameterCount,
                                  bucketElements: bucketElements)
    }

    /// This rank's part of a global batch of `globalBatch` samples.
    public func slice(rank: Int) -> Range<Int> {
        (rank * globalBatch / communicator.size)..<((rank + 1) * globalBatch / communicator.size)
    }

    /// Runs the step on the global batch that starts at sample `first`; returns the global mean loss.
    public func step(data: SyntheticShapes, first: UInt64) throws -> Float {
        try step { positions in data.batch(positions.map { first + UInt64($0) }) }
    }

    /// Runs the step; `batch` gives the images and one-hot targets at the given positions of the
    /// global batch.
    public func step(batch: (Range<Int>) -> (Tensor, Tensor)) throws -> Float {
        let store = trainer.model.store
        let mine = slice(rank: communicator.rank)
        let chunk = microBatch > 0 ? microBatch : mine.count
        store.zeroGradients()
        var weightedLoss: Double = 0
        var start = mine.lowerBound
        while start < mine.upperBound {
            let end = min(mine.upperBound, start + chunk)
            let isLast = end == mine.upperBound
            let (images, targets) = batch(start..<end)
            if isLast {
                reducer.begin()
                store.onGradientsReady = { [reducer] in reducer.ready(from: $0) }
            }
            let logits = trainer.model.forward(images, training: true)
            var (loss, dLogits) = try trainer.loss.evaluate(logits: logits, oneHot: targets)
            let share = Float(end - start) / Float(globalBatch)
            let n = dLogits.count
            if share != 1 { dLogits.mutPtr { g in for i in 0..<n { g[i] *= share } } }
            trainer.model.backward(dLogits)
            weightedLoss += Double(loss) * Double(share)
            start = end
        }
        store.onGradientsReady = nil
        reducer.finish()
        let globalLoss = communicator.size > 1 ? communicator.sum(weightedLoss) : weightedLoss
        trainer.applyGradients()
        return Float(globalLoss)
    }

    /// Makes every rank hold rank 0's parameters, running statistics and counters.
    public func broadcastModel(root: Int = 0) {
        guard communicator.size > 1 else { return }
        let store = trainer.model.store
        communicator.broadcast(floats: store.parameters, count: store.parameterCount, root: root)
        broadcastBuffers(root: root)
    }

    /// Running statistics and batch counters from rank 0 (before evaluating or saving).
    public func broadcastBuffers(root: Int = 0) {
        guard communicator.size > 1 else { return }
        let store = trainer.model.store
        communicator.broadcast(floats: store.buffers, count: store.bufferCount, root: root)
        store.counters.withUnsafeMutableBytes { communicator.broadcast($0.baseAddress!, count: $0.count, root: root) }
    }
}
