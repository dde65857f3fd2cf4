import Foundation
import SegCore
import SegData
import SegNN

/// One training run on one process: global batches of `batch_size` consecutive sample indices,
/// periodic evaluation, metrics, pictures and checkpoints in `checkpoint_dir`.
public final class TrainingRun {
    public struct Summary: Equatable {
        public var steps: Int
        public var seconds: Double
        public var finalDice: Double?
        public var bestDice: Double?
        public var lastCheckpoint: String?
    }

    public let config: TrainingConfig
    public let model: SegmentationModel
    public let trainer: Trainer
    public let data: SyntheticShapes
    public private(set) var step = 0
    public private(set) var bestDice: Double?
    private var lossHistory: [(step: Int, loss: Double)] = []
    private var diceHistory: [(step: Int, dice: Double)] = []
    private let runDirectory: String

    public init(config: TrainingConfig, resume: Checkpoint? = nil) throws {
        self.config = config
        model = config.makeModel()
        trainer = Trainer(model: model, optimizer: try config.makeOptimizer(), loss: config.loss, schedule: config.makeSchedule())
        data = config.dataset
        runDirectory = config.checkpointDir
        if let resume {
            try resume.restore(model: model, optimizer: trainer.optimizer)
            step = resume.step
            bestDice = resume.bestDice
            guard resume.dataCursor == step * config.batchSize else {
                throw ConfigError(source: "--resume", line: nil, key: "batch_size",
                                  problem: "the checkpoint was taken at sample \(resume.dataCursor), which is not step \(step) x batch_size \(config.batchSize)")
            }
        }
    }

    var metricsPath: String { runDirectory + "/metrics.jsonl" }

    /// Trains until the configured number of steps, or until `stopAfter` total steps (then writes
    /// a checkpoint so the run can be resumed exactly).
    @discardableResult
    public func run(progress: ProgressReporter? = nil, stopAfter: Int? = nil) throws -> Summary {
        try prepareRunDirectory()
        let total = config.totalSteps, end = min(total, stopAfter ?? total)
        let rule = PredictionRule(loss: config.loss)
        let valIndices = config.validationIndices
        var lastCheckpoint: String?, finalDice: Double?
        var secondsPerStep = 0.0
        let started = Date()
        while step < end {
            let t0 = Date()
            let first = UInt64(step * config.batchSize)
            let (images, targets) = data.batch((0..<UInt64(config.batchSize)).map { first + $0 })
            let lr = trainer.schedule.learningRate(at: trainer.optimizer.stepCount)
            let loss = try trainer.step(images: images, targets: targets)
            guard loss.isFinite else {
                throw TrainingError("the loss became \(loss) at step \(step + 1); lower lr (now \(lr)) or check the data")
            }
            step += 1
            let dt = Date().timeIntervalSince(t0)
            secondsPerStep = secondsPerStep == 0 ? dt : 0.9 * secondsPerStep + 0.1 * dt
            lossHistory.append((step, Double(loss)))
            progress?.update(step: step, loss: loss, imagesPerSecond: Double(config.batchSize) / secondsPerStep,
                             secondsPerStep: secondsPerStep)
            let epoch = (step - 1) / config.stepsPerEpoch + 1
            if step % config.logEvery == 0 || step == end {
                try appendMetrics(["kind": "train", "step": step, "epoch": epoch, "loss": Double(loss), "lr": Double(lr),
                                   "images_per_s": Double(config.batchSize) / dt,
                                   "elapsed_s": Date().timeIntervalSince(started)])
            }
            if step % config.evalInterval == 0 || step == total {
                let scores = evaluate(model: model, data: data, indices: valIndices, batch: config.batchSize, rule: rule)
                finalDice = scores.foregroundDice
                diceHistory.append((step, scores.foregroundDice))
                var record: [String: Any] = ["kind": "eval", "step": step, "epoch": epoch, "images": scores.images,
                                             "dice": scores.dice, "jaccard": scores.jaccard,
                                             "foreground_dice": scores.foregroundDice,
                                             "foreground_jaccard": scores.foregroundJaccard,
                                             "elapsed_s": Date().timeIntervalSince(started)]
                let improved = scores.foregroundDice > (bestDice ?? -1)
                if improved { bestDice = scores.foregroundDice }
                record["best_dice"] = bestDice
                try appendMetrics(record)
                progress?.note(String(format: "step %d: validation Dice %.4f  Jaccard %.4f  (per class Dice %@)", step,
                                      scores.foregroundDice, scores.foregroundJaccard,
                                      scores.dice.map { String(format: "%.3f", $0) }.joined(separator: " ")))
                if improved { try writeCheckpoint(named: "best.safetensors", epoch: epoch) }
                try drawLossCurve(losses: lossHistory, dice: diceHistory, totalSteps: total).write(to: runDirectory + "/loss.png")
            }
            if step % config.checkpointInterval == 0 || step == end {
                lastCheckpoint = try writeCheckpoint(named: String(format: "step-%06d.safetensors", step), epoch: epoch)
                try pruneCheckpoints()
            }
        }
        return Summary(steps: step, seconds: Date().timeIntervalSince(started), finalDice: finalDice, bestDice: bestDice,
                       lastCheckpoint: lastCheckpoint)
    }

    @discardableResult
    func writeCheckpoint(named name: String, epoch: Int) throws -> String {
        let path = runDirectory + "/" + name
        try Checkpoint.write(to: path, model: model, optimizer: trainer.optimizer, config: config, step: step, epoch: epoch,
                             dataCursor: step * config.batchSize, bestDice: bestDice)
        return path
    }

    /// Keeps the newest `keep_checkpoints` step checkpoints (best.safetensors is separate).
    func pruneCheckpoints() throws {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: runDirectory)) ?? []
        let steps = names.filter { $0.hasPrefix("step-") && $0.hasSuffix(".safetensors") }.sorted()
        for old in steps.dropLast(config.keepCheckpoints) { try? FileManager.default.removeItem(atPath: runDirectory + "/" + old) }
    }

    /// Creates the run directory, stores the effective config, and on resume keeps only the
    /// metrics up to the checkpoint's step.
    func prepareRunDirectory() throws {
        do {
            try FileManager.default.createDirectory(atPath: runDirectory, withIntermediateDirectories: true)
            try writeFileAtomically(Data(config.rendered().utf8), to: runDirectory + "/config.cfg")
        } catch {
            throw TrainingError("cannot write the run directory \(runDirectory): \(error)")
        }
        guard step > 0, let text = try? String(contentsOfFile: metricsPath, encoding: .utf8) else {
            if step == 0 { try? FileManager.default.removeItem(atPath: metricsPath) }
            return
        }
        var kept: [String] = []
        for line in text.split(separator: "\n") {
            guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let s = obj["step"] as? Int, s <= step else { continue }
            kept.append(String(line))
            if obj["kind"] as? String == "train", let l = obj["loss"] as? Double { lossHistory.append((s, l)) }
            if obj["kind"] as? String == "eval", let d = obj["foreground_dice"] as? Double { diceHistory.append((s, d)) }
        }
        try writeFileAtomically(Data((kept.joined(separator: "\n") + (kept.isEmpty ? "" : "\n")).utf8), to: metricsPath)
    }

    func appendMetrics(_ record: [String: Any]) throws {
        var line = try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys])
        line.append(0x0A)
        if let h = FileHandle(forWritingAtPath: metricsPath) {
            defer { try? h.close() }
            h.seekToEndOfFile()
            h.write(line)
        } else {
            guard FileManager.default.createFile(atPath: metricsPath, contents: line) else {
                throw TrainingError("cannot write \(metricsPath)")
            }
        }
    }
}

public struct TrainingError: Error, CustomStringConvertible {
    public let description: String
    public init(_ message: String) { description = message }
}
