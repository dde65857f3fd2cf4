import SegCore
import SegData

/// Validation during training: the same path as `segdist eval` and `predict`
/// (`InferencePipeline`), sharded over the ranks, recorded by rank 0.
extension TrainingRun {
    /// Validation on every rank's share, then on rank 0 its metrics, events, the best
    /// checkpoint and the curves; returns the foreground Dice.
    func evaluateAndRecord(_ progress: ProgressReporter?, clock: StepClock) throws -> Double {
        parallel.broadcastBuffers()
        let scores = try shardedEvaluation()
        let improved = scores.foregroundDice > (bestDice ?? -1)
        if improved { bestDice = scores.foregroundDice }
        if isRoot {
            let record: [String: Any] = ["kind": "eval", "step": step, "epoch": epoch, "images": scores.images,
                                         "dice": scores.dice, "jaccard": scores.jaccard,
                                         "foreground_dice": scores.foregroundDice,
                                         "foreground_jaccard": scores.foregroundJaccard,
                                         "pooled_foreground_dice": scores.pooledForegroundDice,
                                         "pixel_counts": scores.classPixelCounts,
                                         "elapsed_s": clock.elapsed, "best_dice": bestDice as Any]
            try recorder.evaluation(step, scores: scores, record: record, panel: validationPanel, totalSteps: config.totalSteps)
        }
        progress?.note(String(format: "step %d: validation Dice %.4f  Jaccard %.4f  (per class Dice %@; pooled Dice %.4f)", step,
                              scores.foregroundDice, scores.foregroundJaccard,
                              scores.dice.map { String(format: "%.3f", $0) }.joined(separator: " "), scores.pooledForegroundDice))
        if isRoot {
            if improved { try writeCheckpoint(named: "best.safetensors") }
            recorder.drawCurves(totalSteps: config.totalSteps)
        }
        return scores.foregroundDice
    }

    /// Each rank scores its contiguous share of the validation images, each whole at its own
    /// size through `predict`'s pipeline; the per-class sums are added over the ranks, so every
    /// image counts exactly once.
    func shardedEvaluation() throws -> SegmentationScores {
        let n = communicator.size, k = model.classes
        let total = data.validationCount, r = communicator.rank
        let local = try evaluate(pipeline, data: data, indices: (r * total / n)..<((r + 1) * total / n), batch: config.batchSize)
        guard n > 1 else { return local }
        var sums = local.sums
        sums.withUnsafeMutableBufferPointer { communicator.sumInPlace($0.baseAddress!, count: $0.count) }
        return SegmentationScores(classes: k, sums: sums)
    }

    /// The first validation image, its truth and the model's prediction, as `predict` draws them.
    func validationPanel() throws -> PNGImage {
        let sample = data.validationSample(0)
        let n = sample.height * sample.width, c = sample.channels == 3 ? 3 : 1
        var pixels = [UInt8](repeating: 0, count: n * c)
        for p in 0..<n {
            for ch in 0..<c { pixels[p * c + ch] = UInt8(max(0, min(255, (sample.image[ch * n + p] * 255).rounded()))) }
        }
        let image = PNGImage(width: sample.width, height: sample.height, channels: c, pixels: pixels)
        let truth = PNGImage(width: sample.width, height: sample.height, channels: 1,
                             pixels: sample.labels.map { $0 == Sample.ignored ? 128 : $0 == 0 ? 0 : 255 })
        let prediction = try pipeline.predict(sample.image, height: sample.height, width: sample.width)
        return drawPredictionPanel(input: image, truth: truth, foreground: prediction.foreground,
                                   predicted: prediction.classCount == 1 ? prediction.classes : prediction.classes.map { $0 == 0 ? 0 : 1 })
    }
}
