import Foundation
import SegCore
import SegData
import SegDist
import SegNN

/// One training run on one or more ranks: global batches of `batch_size` consecutive sample
/// indices split over the ranks, periodic sharded evaluation, and, on rank 0, metrics, pictures
/// and checkpoints in `checkpoint_dir`.
public final class TrainingRun {
    public struct Summary: Equatable {
        public var steps: Int
        public var seconds: Double
        public var finalDice: Double?
        public var bestDice: Double?
        public var lastCheckpoint: String?
        /// The signal that stopped the run early, if any.
        public var stoppedBySignal: Int32 = 0
        /// Stopped by Ctrl-C (the command then exits 130, after the checkpoint).
        public var interrupted = false
        /// Share of step time spent waiting for gradient communication.
        public var communicationShare: Double = 0
    }

    public let config: TrainingConfig
    public let model: SegmentationModel
    public let trainer: Trainer
    public let data: SegmentationDataset
    public let communicator: Communicator
    public let parallel: DataParallelStep
    public var stopSignal: StopSignal?
    public private(set) var step = 0
    public private(set) var bestDice: Double?
    /// The run's identity: in config.cfg and in every checkpoint (kept across resumes).
    public private(set) var runID = ""
    /// What `init_from` loaded (nil without it, or when resuming).
    public private(set) var initialisation: StateDictReport?
    /// Sum of this rank's initial parameters before rank 0's were broadcast (a diagnostic).
    public private(set) var checksumBeforeBroadcast = 0.0
    private var lossHistory: [(step: Int, loss: Double)] = []
    private var diceHistory: [(step: Int, dice: Double)] = []
    private var classDiceHistory: [(step: Int, dice: [Double])] = []
    private var events: TensorBoardWriter?
    private var eventsFailed = false
    private let runDirectory: String
    private var validationShard: [Sample]?
    /// Validation runs `predict`'s path (see `InferencePipeline`).
    private lazy var pipeline = InferencePipeline(config: config, models: [model])

    /// Rank 0's hold on the run directory, from the start until the run ends.
    private var directoryLock: RunLock?
    /// What starting here removed or carried over, for the start's output (nil: nothing).
    public private(set) var startNote: String?
    /// The run this one branched from (resumed from its checkpoint into another directory).
    private var parent: Checkpoint?

    /// What one step asks of this process's memory (measured on a probe pass at the start).
    public private(set) var memory: MemoryEstimate?

    /// Where this rank computes, in one line (the GPU, or why `device: auto` stayed on the CPU).
    public private(set) var deviceNote: String?

    /// - Parameters:
    ///   - ranksOnThisNode: the processes sharing this machine's memory (and GPUs).
    ///   - localRank: this process's place among them (which GPU it takes).
    public init(config: TrainingConfig, resume: Checkpoint? = nil, communicator: Communicator = LocalCommunicator(),
                initSeedOffset: Int = 0, ranksOnThisNode: Int = 1, localRank: Int = 0) throws {
        // `auto` values (normalisation, class weights) are measured here and become numbers
        // of the effective config, which config.cfg and every checkpoint keep
        var config = config
        data = try config.prepareData()
        self.config = config
        self.communicator = communicator
        var modelConfig = config
        modelConfig.seed += initSeedOffset
        model = modelConfig.makeModel()
        // the device first: the gradient reducer, the optimizer state and a resumed checkpoint
        // all live where the model's buffers do. A failure here is reported through `agree`
        // below, so every rank stops together.
        var placementError: Error?
        do {
            let placement = try DevicePlacement.choose(config.device, localRank: localRank, ranksOnThisNode: ranksOnThisNode,
                                                       shareGPU: config.shareGPU)
            deviceNote = placement.note
            model.store.move(to: placement.backend)
        } catch { placementError = error }
        var trainer = Trainer(model: model, optimizer: try config.makeOptimizer(), loss: config.loss, schedule: config.makeSchedule())
        trainer.classWeights = config.classWeights
        self.trainer = trainer
        runDirectory = config.checkpointDir
        parallel = try DataParallelStep(trainer: trainer, communicator: communicator, globalBatch: config.batchSize,
                                        microBatch: config.microBatch,
                                        bucketElements: Int(config.bucketMB * 1024 * 1024) / MemoryLayout<Float>.size)
        if config.model.needsTwoImagesPerPass && !(config.syncBN && communicator.size > 1) {
            let smallest = min(parallel.slice(rank: communicator.size - 1).count, parallel.slice(rank: 0).count,
                               config.microBatch > 0 ? config.microBatch : Int.max)
            if smallest < 2 {
                throw TrainingError("\(config.model.rawValue) normalises one value per image in its image-pooling branch, so every forward pass needs at least 2 images; this run gives a rank \(smallest) (batch_size \(config.batchSize) over \(communicator.size) rank(s), micro_batch \(config.microBatch)); raise batch_size or micro_batch, or set sync_bn: true")
            }
        }
        if config.syncBN && communicator.size > 1 { parallel.batchNormGroup = communicator }
        parallel.dropoutSeed = UInt64(config.seed) &+ 0xD509
        // Everything that can fail on one rank alone (a file, the run directory) happens before
        // the first collective; then every rank learns whether any failed.
        // Resuming into the checkpoint's own directory continues its run; into another one it
        // starts a branch: a new run id, with the parent recorded.
        let here = URL(fileURLWithPath: config.checkpointDir).standardizedFileURL.path
        if let resume, resume.directory != here { parent = resume }
        runID = communicator.broadcast(string: parent == nil ? resume?.runID ?? UUID().uuidString.lowercased() : UUID().uuidString.lowercased())
        var local: Error? = placementError
        do {
            if let placementError { throw placementError }
            if let resume {
                try resume.restore(model: model, optimizer: trainer.optimizer)
                step = resume.step
                bestDice = resume.bestDice
                guard resume.dataCursor == step * config.batchSize else {
                    throw ConfigError(source: "--resume", line: nil, key: "batch_size",
                                      problem: "the checkpoint was taken at sample \(resume.dataCursor), which is not step \(step) x batch_size \(config.batchSize)")
                }
            } else if !config.initFrom.isEmpty {
                do {
                    let file = try SafeTensorsFile(path: config.initFrom)
                    try file.verifyChecksums()
                    initialisation = try model.store.loadStateDict(file, prefix: config.initPrefix, strict: config.initStrict)
                } catch let e as ModelError {
                    throw ConfigError(source: config.initFrom, line: nil, key: "init_from", problem: e.description)
                }
            }
            // the memory first: a run refused for it leaves no directory behind
            try checkMemory(ranksOnThisNode: ranksOnThisNode)
            if communicator.rank == 0 {
                let directory = RunDirectory(path: runDirectory)
                do { directoryLock = try directory.lock() } catch let held as RunLock.Held {
                    throw TrainingError("\(runDirectory) \(held)")
                }
                let decision = directory.decision(runID: parent == nil ? runID : nil, resume: parent == nil ? resume : nil)
                if let problem = decision.refusal { throw TrainingError(problem) }
                startNote = decision.note
            }
        } catch { local = error }
        try communicator.agree(local)
        try Self.checkSameStart(step: step, optimizerStep: trainer.optimizer.stepCount,
                                checksum: resume != nil ? model.store.parameterChecksum : 0, device: model.store.backend.device,
                                communicator: communicator)
        checksumBeforeBroadcast = model.store.parameterChecksum
        // Every rank starts from rank 0's weights (and, resuming, rank 0's optimizer state is the
        // one every rank loaded from the same file).
        parallel.broadcastModel()
    }

    var isRoot: Bool { communicator.rank == 0 }

    var metricsPath: String { runDirectory + "/metrics.jsonl" }

    /// Trains until the configured number of steps, or until `stopAfter` total steps (then writes
    /// a checkpoint so the run can be resumed exactly).
    @discardableResult
    public func run(progress: ProgressReporter? = nil, stopAfter: Int? = nil) throws -> Summary {
        // rank 0 holds the directory's lock from init to the end of this call (taken again by a
        // later call on the same run)
        if isRoot && directoryLock == nil {
            do { directoryLock = try RunDirectory(path: runDirectory).lock() } catch let held as RunLock.Held {
                throw TrainingError("\(runDirectory) \(held)")
            }
        }
        defer { directoryLock = nil }
        if isRoot { try prepareRunDirectory() }
        communicator.barrier(label: "start of training")
        let total = config.totalSteps, end = min(total, stopAfter ?? total)
        var lastCheckpoint: String?, finalDice: Double?
        var secondsPerStep = 0.0, busySeconds = 0.0, stoppedBy: Int32 = 0, interrupted = false
        let prefetcher = BatchPrefetcher(data: data)
        let started = Date()
        parallel.reducer.resetTimers()
        var waitShare = 0.0
        while step < end {
            let t0 = Date()
            let lr = trainer.schedule.learningRate(at: trainer.optimizer.stepCount)
            // this rank's slice: made in the background during the previous step
            let mine = parallel.slice(rank: communicator.rank)
            let cursors = { (s: Int) in mine.map { s * self.config.batchSize + $0 } }
            let waitedBefore = prefetcher.waitSeconds
            let (images, targets) = prefetcher.take(cursors(step))
            let dataWait = prefetcher.waitSeconds - waitedBefore
            if step + 1 < end { prefetcher.prefetch(cursors(step + 1)) }
            let loss = try parallel.step { r in
                (images.items((r.lowerBound - mine.lowerBound)..<(r.upperBound - mine.lowerBound)),
                 targets.items((r.lowerBound - mine.lowerBound)..<(r.upperBound - mine.lowerBound)))
            }
            guard loss.isFinite else {
                throw TrainingError("the loss became \(loss) at step \(step + 1); lower lr (now \(lr)) or check the data")
            }
            step += 1
            let dt = Date().timeIntervalSince(t0)
            busySeconds += dt
            secondsPerStep = secondsPerStep == 0 ? dt : 0.9 * secondsPerStep + 0.1 * dt
            waitShare = step == 1 ? dataWait / dt : 0.9 * waitShare + 0.1 * dataWait / dt
            lossHistory.append((step, Double(loss)))
            progress?.update(step: step, loss: loss, imagesPerSecond: Double(config.batchSize) / secondsPerStep,
                             secondsPerStep: secondsPerStep, dataWaitShare: waitShare)
            let epoch = (step - 1) / config.stepsPerEpoch + 1
            if isRoot && (step % config.logEvery == 0 || step == end) {
                try appendMetrics(["kind": "train", "step": step, "epoch": epoch, "loss": Double(loss), "lr": Double(lr),
                                   "images_per_s": Double(config.batchSize) / dt, "data_wait_s": dataWait,
                                   "elapsed_s": Date().timeIntervalSince(started)])
                logEvents { try $0.scalars([("train/loss", Double(loss)), ("train/lr", Double(lr)),
                                            ("train/images_per_s", Double(config.batchSize) / dt)], step: step) }
            }
            // A stop signal on any rank stops every rank at this step boundary.
            let signalled = stopSignal?.agreementCode ?? 0
            let stopNow = communicator.size > 1 ? communicator.maximum(signalled) : signalled
            if stopNow > 0 {
                stoppedBy = Int32(Int(stopNow) % 1000)
                interrupted = stopNow >= 1000
                let epoch = (step - 1) / config.stepsPerEpoch + 1
                parallel.broadcastBuffers()
                if isRoot {
                    lastCheckpoint = try writeCheckpoint(named: String(format: "step-%06d.safetensors", step), epoch: epoch)
                    try pruneCheckpoints()
                    progress?.note("stopped by \(Launch.signalName(stoppedBy)) after step \(step); checkpoint \(lastCheckpoint!)")
                }
                break
            }
            if step % config.evalInterval == 0 || step == total {
                parallel.broadcastBuffers()
                let scores = try shardedEvaluation()
                finalDice = scores.foregroundDice
                diceHistory.append((step, scores.foregroundDice))
                classDiceHistory.append((step, scores.dice))
                var record: [String: Any] = ["kind": "eval", "step": step, "epoch": epoch, "images": scores.images,
                                             "dice": scores.dice, "jaccard": scores.jaccard,
                                             "foreground_dice": scores.foregroundDice,
                                             "foreground_jaccard": scores.foregroundJaccard,
                                             "pooled_foreground_dice": scores.pooledForegroundDice,
                                             "pixel_counts": scores.classPixelCounts,
                                             "elapsed_s": Date().timeIntervalSince(started)]
                let improved = scores.foregroundDice > (bestDice ?? -1)
                if improved { bestDice = scores.foregroundDice }
                record["best_dice"] = bestDice
                if isRoot {
                    try appendMetrics(record)
                    logEvents { events in
                        var values = [("val/dice", scores.foregroundDice), ("val/jaccard", scores.foregroundJaccard)]
                        for k in 0..<scores.classes { values += [("val/dice_class_\(k)", scores.dice[k]), ("val/jaccard_class_\(k)", scores.jaccard[k])] }
                        try events.scalars(values, step: step)
                        try events.image("val/prediction", try validationPanel(), step: step)
                    }
                }
                progress?.note(String(format: "step %d: validation Dice %.4f  Jaccard %.4f  (per class Dice %@; pooled Dice %.4f)", step,
                                      scores.foregroundDice, scores.foregroundJaccard,
                                      scores.dice.map { String(format: "%.3f", $0) }.joined(separator: " "), scores.pooledForegroundDice))
                if isRoot {
                    if improved { try writeCheckpoint(named: "best.safetensors", epoch: epoch) }
                    writePicture(drawLossCurve(losses: lossHistory, dice: diceHistory, classDice: classDiceHistory, totalSteps: total),
                                 to: runDirectory + "/loss.png")
                }
            }
            if step % config.checkpointInterval == 0 || step == end {
                parallel.broadcastBuffers()
                if isRoot {
                    lastCheckpoint = try writeCheckpoint(named: String(format: "step-%06d.safetensors", step), epoch: epoch)
                    try pruneCheckpoints()
                }
            }
        }
        communicator.barrier(label: "end of training")
        return Summary(steps: step, seconds: Date().timeIntervalSince(started), finalDice: finalDice, bestDice: bestDice,
                       lastCheckpoint: lastCheckpoint, stoppedBySignal: stoppedBy, interrupted: interrupted,
                       communicationShare: busySeconds > 0 ? parallel.reducer.exposedSeconds / busySeconds : 0)
    }

    /// Each rank scores its contiguous share of the validation images, each whole at its own
    /// size through `predict`'s pipeline; the per-class sums are added over the ranks, so every
    /// image counts exactly once.
    func shardedEvaluation() throws -> SegmentationScores {
        let n = communicator.size, k = model.classes
        if validationShard == nil {
            // This rank's validation images, read once per run.
            let total = data.validationCount, r = communicator.rank
            validationShard = ((r * total / n)..<((r + 1) * total / n)).map { data.validationSample($0) }
        }
        let local = try evaluate(pipeline, samples: validationShard!, batch: config.batchSize)
        guard n > 1 else { return local }
        var sums = local.sums
        sums.withUnsafeMutableBufferPointer { communicator.sumInPlace($0.baseAddress!, count: $0.count) }
        return SegmentationScores(classes: k, sums: sums)
    }

    /// Measures a step's memory on a probe pass and refuses, before any step, a run whose step
    /// cannot fit in what this machine has free (shared by the ranks on it).
    func checkMemory(ranksOnThisNode: Int) throws {
        let sample = data.imageSize
        let mine = parallel.slice(rank: communicator.rank).count
        let perPass = config.microBatch > 0 ? min(config.microBatch, mine) : mine
        let estimate = try MemoryEstimate.training(config: config, imagesPerPass: perPass, height: sample.height, width: sample.width)
        memory = estimate
        guard let available = MemoryEstimate.availableBytes else { return }
        let share = available / max(1, ranksOnThisNode)
        if estimate.totalBytes > share {
            throw TrainingError(String(format: "a training step needs %@ per rank at %d image(s) of %dx%d per pass, but %.2f GB is available to each of the %d rank(s) on this machine; lower micro_batch (gradients accumulate over micro-batches at the same result), batch_size or image_size", estimate.summary, perPass, sample.height, sample.width, Double(share) / 1e9, ranksOnThisNode))
        }
    }

    /// Every rank must start from the same state: the same step and optimizer step and, when
    /// resuming, the same loaded parameters — a rank that was not resumed (or resumed from
    /// another checkpoint) is refused before any step.
    static func checkSameStart(step: Int, optimizerStep: Int, checksum: Double, device: Device = .host,
                               communicator: Communicator) throws {
        guard communicator.size > 1 else { return }
        let mine = "step \(step), optimizer step \(optimizerStep), parameter checksum \(checksum)"
        let root = communicator.broadcast(string: mine)
        try communicator.agree(root == mine ? nil : TrainingError("starts at \(mine) where rank 0 starts at \(root); every rank must resume the same checkpoint"))
        // `device: auto` resolves on each rank: all on GPUs or all on CPUs, never a mix
        let kind = device == .host ? "cpu" : "cuda", rootKind = communicator.broadcast(string: kind)
        try communicator.agree(rootKind == kind ? nil : TrainingError("computes on \(kind) where rank 0 computes on \(rootKind); give every rank a GPU or set device: cpu"))
    }

    /// Refuses to train unless every rank runs the same version with the same effective config:
    /// rank 0's is broadcast, each rank compares, and every rank learns whether any differed.
    public static func checkAgreement(config: TrainingConfig, communicator: Communicator) throws {
        guard communicator.size > 1 else { return }
        let mine = "segdist_version: \(segdistVersion)\n" + config.rendered()
        let root = communicator.broadcast(string: mine)
        var differences: [String] = []
        if root != mine {
            let a = mine.split(separator: "\n"), b = root.split(separator: "\n")
            for (x, y) in zip(a, b) where x != y { differences.append("'\(x)' where rank 0 has '\(y)'") }
            if a.count != b.count { differences.append("\(a.count) config lines where rank 0 has \(b.count)") }
            FileHandle.standardError.write("segdist: error: rank \(communicator.rank) runs a different config or version: \(differences.joined(separator: "; "))\n".data(using: .utf8)!)
        }
        let mismatched = communicator.sum(differences.isEmpty ? 0 : 1)
        if mismatched > 0 {
            throw TrainingError("\(Int(mismatched)) of \(communicator.size) ranks run a different config or version than rank 0 (see above); refusing to train")
        }
    }

    @discardableResult
    func writeCheckpoint(named name: String, epoch: Int) throws -> String {
        let path = runDirectory + "/" + name
        try Checkpoint.write(to: path, model: model, optimizer: trainer.optimizer, config: config, step: step, epoch: epoch,
                             dataCursor: step * config.batchSize, bestDice: bestDice, runID: runID)
        return path
    }

    /// Keeps the newest `keep_checkpoints` step checkpoints (best.safetensors is separate).
    func pruneCheckpoints() throws {
        // by step number, not by name (step-1000000 sorts before step-999999)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: runDirectory)) ?? []
        let steps = names.compactMap { name -> (Int, String)? in
            guard name.hasPrefix("step-"), name.hasSuffix(".safetensors"),
                  let n = Int(name.dropFirst(5).dropLast(12)) else { return nil }
            return (n, name)
        }.sorted { $0.0 < $1.0 }
        for (_, old) in steps.dropLast(config.keepCheckpoints) { try? FileManager.default.removeItem(atPath: runDirectory + "/" + old) }
    }

    /// Creates the run directory, stores the effective config, and on resume keeps only the
    /// metrics up to the checkpoint's step.
    func prepareRunDirectory() throws {
        do {
            try FileManager.default.createDirectory(atPath: runDirectory, withIntermediateDirectories: true)
            RunDirectory(path: runDirectory).removeLeftoverTemporaries()
            let lineage = parent.map { "# parent: run \($0.runID ?? "?") at step \($0.step), \($0.file?.path ?? "")\n" } ?? ""
            try writeFileAtomically(Data(("# run: \(runID)\n" + lineage + config.rendered()).utf8), to: runDirectory + "/config.cfg")
            // a branch starts with its parent's best model (when it is not from after the branch point)
            if let parent, let dir = parent.directory, let best = try? Checkpoint(path: dir + "/best.safetensors"),
               best.runID == parent.runID, best.step <= parent.step, !FileManager.default.fileExists(atPath: runDirectory + "/best.safetensors") {
                try best.copy(to: runDirectory + "/best.safetensors", runID: runID)
            }
        } catch {
            throw TrainingError("cannot write the run directory \(runDirectory): \(describeFileProblem(at: runDirectory, error))")
        }
        // resuming: this run's metrics up to the checkpoint (a branch's from its parent's directory)
        let source = parent?.directory.map { $0 + "/metrics.jsonl" } ?? metricsPath
        guard step > 0, let text = try? String(contentsOfFile: source, encoding: .utf8) else {
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
            if obj["kind"] as? String == "eval", let d = obj["dice"] as? [Double] { classDiceHistory.append((s, d)) }
        }
        try writeFileAtomically(Data((kept.joined(separator: "\n") + (kept.isEmpty ? "" : "\n")).utf8), to: metricsPath)
    }

    /// Appends one JSON line. Metrics are worth less than the run: a failed write (a full disk)
    /// takes back the partial line, warns once and training goes on.
    func appendMetrics(_ record: [String: Any]) throws {
        var line = try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys])
        line.append(0x0A)
        do {
            if !FileManager.default.fileExists(atPath: metricsPath) {
                guard FileManager.default.createFile(atPath: metricsPath, contents: nil) else {
                    throw TrainingError(String(cString: strerror(errno)))
                }
            }
            guard let h = FileHandle(forWritingAtPath: metricsPath) else { throw TrainingError("it cannot be opened for writing") }
            defer { try? h.close() }
            let end = try h.seekToEnd()
            do { try h.write(contentsOf: line); try h.synchronize() } catch {
                try? h.truncate(atOffset: end)   // never leave half a line
                throw error
            }
        } catch {
            warnOnce("metrics", "cannot append to \(metricsPath) (\(systemMessage(error))); training goes on, these metrics are not recorded")
        }
    }

    /// TensorBoard, when asked for: a failure is a warning and stops the event file, not the run.
    func logEvents(_ body: (TensorBoardWriter) throws -> Void) {
        guard isRoot, config.tensorboard, !eventsFailed else { return }
        do {
            if events == nil { events = try TensorBoardWriter(directory: runDirectory) }
            try body(events!)
        } catch {
            warnOnce("tensorboard", "cannot write TensorBoard events into \(runDirectory) (\(error)); training goes on")
            eventsFailed = true
        }
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

    /// A picture that cannot be written is a warning, not the end of the run.
    func writePicture(_ image: PNGImage, to path: String) {
        do { try image.write(to: path) } catch { warnOnce(path, "cannot write \(path) (\(error)); training goes on") }
    }

    private var warned: Set<String> = []
    private func warnOnce(_ key: String, _ message: String) {
        guard !warned.contains(key) else { return }
        warned.insert(key)
        FileHandle.standardError.write("segdist: warning: \(message)\n".data(using: .utf8)!)
    }
}

public struct TrainingError: Error, CustomStringConvertible {
    public let description: String
    public init(_ message: String) { description = message }
}

/// What is wrong with a path that could not be created or written, in words: a parent that is a
/// file, a missing permission, or the system's own message.
public func describeFileProblem(at path: String, _ error: Error) -> String {
    var url = URL(fileURLWithPath: "/")
    for component in URL(fileURLWithPath: path).pathComponents.dropFirst() {
        url.appendPathComponent(component)
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), !isDirectory.boolValue {
            return "\(url.path) is a file, not a directory"
        }
    }
    return systemMessage(error)
}
