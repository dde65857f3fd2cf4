import Foundation
import SegCore
import SegData
import SegDist
import SegNN

/// One training run on one or more ranks: global batches of `batch_size` consecutive sample
/// indices split over the ranks, periodic sharded evaluation, and, on rank 0, metrics, pictures
/// and checkpoints in `checkpoint_dir`. How a run starts (placement, resume, the directory, the
/// ranks' agreement) is in TrainingRun+Start.swift, its checkpoints in TrainingRun+Checkpoints, its
/// validation in TrainingRun+Evaluation, its records in RunRecorder.
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
    public internal(set) var step = 0
    public internal(set) var bestDice: Double?
    /// The run's identity: in config.cfg and in every checkpoint (kept across resumes).
    public internal(set) var runID = ""
    /// What `init_from` loaded (nil without it, or when resuming).
    public internal(set) var initialisation: StateDictReport?
    /// Sum of this rank's initial parameters before rank 0's were broadcast (a diagnostic).
    public internal(set) var checksumBeforeBroadcast = 0.0
    /// What one step asks of this process's memory (measured on a probe pass at the start).
    public internal(set) var memory: MemoryEstimate?
    /// Where this rank computes, in one line (the GPU, or why `device: auto` stayed on the CPU).
    public internal(set) var deviceNote: String?
    /// What starting here removed or carried over, for the start's output (nil: nothing).
    public internal(set) var startNote: String?

    let runDirectory: String
    /// Rank 0's metrics, events and pictures.
    let recorder: RunRecorder
    /// Rank 0's hold on the run directory, from the start until the run ends.
    var directoryLock: RunLock?
    /// The run this one branched from (resumed from its checkpoint into another directory).
    var parent: Checkpoint?
    /// Validation runs `predict`'s path (see `InferencePipeline`).
    lazy var pipeline = InferencePipeline(config: config, models: [model])

    /// - Parameters:
    ///   - ranksOnThisNode: the processes sharing this machine's memory (and GPUs).
    ///   - localRank: this process's place among them (which GPU it takes).
    public init(config: TrainingConfig, resume: Checkpoint? = nil, communicator: Communicator = LocalCommunicator(),
                initSeedOffset: Int = 0, ranksOnThisNode: Int = 1, localRank: Int = 0) throws {
        // `auto` values (normalisation, class weights, mask_255) are measured here and become
        // values of the effective config, which config.cfg and every checkpoint keep
        var config = config
        data = try config.prepareData()
        self.config = config
        self.communicator = communicator
        var modelConfig = config
        modelConfig.seed += initSeedOffset
        model = modelConfig.makeModel()
        // the device first: the gradient reducer, the optimizer state and a resumed checkpoint
        // all live where the model's buffers do
        let placement = Self.place(model, config, localRank: localRank, ranksOnThisNode: ranksOnThisNode)
        deviceNote = placement.note
        var trainer = Trainer(model: model, optimizer: try config.makeOptimizer(), loss: config.loss, schedule: config.makeSchedule())
        trainer.classWeights = config.classWeights
        self.trainer = trainer
        runDirectory = config.checkpointDir
        recorder = RunRecorder(directory: config.checkpointDir, tensorboard: config.tensorboard)
        parallel = try DataParallelStep(trainer: trainer, communicator: communicator, globalBatch: config.batchSize,
                                        microBatch: config.microBatch,
                                        bucketElements: Int(config.bucketMB * 1024 * 1024) / MemoryLayout<Float>.size)
        try checkEveryPassHoldsTwoImagesWhereNeeded()
        if config.syncBN && communicator.size > 1 { parallel.batchNormGroup = communicator }
        parallel.batchNormMomentum = config.batchNormMomentum
        parallel.dropoutSeed = UInt64(config.seed) &+ 0xD509
        chooseRunID(resuming: resume)
        try startTogether(resume: resume, placementError: placement.error, ranksOnThisNode: ranksOnThisNode)
    }

    var isRoot: Bool { communicator.rank == 0 }

    var metricsPath: String { recorder.metricsPath }

    /// Trains until the configured number of steps, or until `stopAfter` total steps (then writes
    /// a checkpoint so the run can be resumed exactly).
    @discardableResult
    public func run(progress: ProgressReporter? = nil, stopAfter: Int? = nil) throws -> Summary {
        try holdTheDirectory()
        defer { directoryLock = nil }
        if isRoot { try prepareRunDirectory() }
        communicator.barrier(label: "start of training")
        let total = config.totalSteps, end = min(total, stopAfter ?? total)
        var lastCheckpoint: String?, finalDice: Double?, stoppedBy: Int32 = 0, interrupted = false
        var clock = StepClock()
        let prefetcher = BatchPrefetcher(data: data)
        parallel.reducer.resetTimers()
        while step < end {
            let done = try trainOneStep(prefetcher, end: end)
            clock.add(done)
            progress?.update(step: step, loss: done.loss, imagesPerSecond: Double(config.batchSize) / clock.secondsPerStep,
                             secondsPerStep: clock.secondsPerStep, dataWaitShare: clock.waitShare)
            try record(done, logged: step % config.logEvery == 0 || step == end, clock: clock)
            if let code = agreedStop() {
                (stoppedBy, interrupted) = (Int32(code % 1000), code >= 1000)
                lastCheckpoint = try writeStepCheckpoint()
                if isRoot { progress?.note("stopped by \(Launch.signalName(stoppedBy)) after step \(step); checkpoint \(lastCheckpoint!)") }
                break
            }
            if step % config.evalInterval == 0 || step == total { finalDice = try evaluateAndRecord(progress, clock: clock) }
            if step % config.checkpointInterval == 0 || step == end { lastCheckpoint = try writeStepCheckpoint() ?? lastCheckpoint }
        }
        communicator.barrier(label: "end of training")
        return Summary(steps: step, seconds: clock.elapsed, finalDice: finalDice, bestDice: bestDice,
                       lastCheckpoint: lastCheckpoint, stoppedBySignal: stoppedBy, interrupted: interrupted,
                       communicationShare: clock.busySeconds > 0 ? parallel.reducer.exposedSeconds / clock.busySeconds : 0)
    }

    /// What one step did.
    struct StepDone { var loss: Float, learningRate: Float, seconds: Double, dataWait: Double }

    /// Step times: a moving average for the progress line, busy time for the communication share.
    struct StepClock {
        let started = Date()
        var secondsPerStep = 0.0, busySeconds = 0.0, waitShare = 0.0, steps = 0
        var elapsed: Double { Date().timeIntervalSince(started) }
        mutating func add(_ done: StepDone) {
            steps += 1
            busySeconds += done.seconds
            secondsPerStep = secondsPerStep == 0 ? done.seconds : 0.9 * secondsPerStep + 0.1 * done.seconds
            waitShare = steps == 1 ? done.dataWait / done.seconds : 0.9 * waitShare + 0.1 * done.dataWait / done.seconds
        }
    }

    /// This rank's slice of the global batch (made in the background during the previous step),
    /// forward, backward, all-reduce and optimizer step; the next slice starts loading.
    func trainOneStep(_ prefetcher: BatchPrefetcher, end: Int) throws -> StepDone {
        let t0 = Date()
        let lr = trainer.schedule.learningRate(at: trainer.optimizer.stepCount)
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
        return StepDone(loss: loss, learningRate: lr, seconds: Date().timeIntervalSince(t0), dataWait: dataWait)
    }

    var epoch: Int { (step - 1) / config.stepsPerEpoch + 1 }

    /// Rank 0 records the step: the loss curve always, metrics and events on logged steps.
    func record(_ done: StepDone, logged: Bool, clock: StepClock) throws {
        guard isRoot else { return }
        let rate = Double(config.batchSize) / done.seconds
        try recorder.trainingStep(step, loss: Double(done.loss), logged: logged,
                                  record: ["kind": "train", "step": step, "epoch": epoch, "loss": Double(done.loss),
                                           "lr": Double(done.learningRate), "images_per_s": rate, "data_wait_s": done.dataWait,
                                           "elapsed_s": clock.elapsed],
                                  scalars: [("train/loss", Double(done.loss)), ("train/lr", Double(done.learningRate)),
                                            ("train/images_per_s", rate)])
    }

    /// A stop signal on any rank stops every rank at this step boundary: the agreed code (the
    /// signal, plus 1000 for an interruption), or nil to go on.
    func agreedStop() -> Int? {
        let signalled = stopSignal?.agreementCode ?? 0
        let code = communicator.size > 1 ? communicator.maximum(signalled) : signalled
        return code > 0 ? Int(code) : nil
    }
}
