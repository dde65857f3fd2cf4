import ArgumentParser
import Foundation
import SegCore
import SegDist
import SegTrain

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a segmentation model (the default command).")

    @OptionGroup var recipe: ConfigOptions

    @Option(parsing: .unconditional, help: "Ranks (processes) to train with. 1 trains in this process; N > 1 starts mpirun -n N. Under mpirun the launcher's count is used.")
    var ranks: Int?

    @Option(help: "Continue exactly from this checkpoint, or from the newest checkpoint of the run in this directory (its config is used unless --config is given), in the checkpoint's directory; --set checkpoint_dir=NEW branches it into a new run there. Any number of ranks may resume it.")
    var resume: String?

    @Option(help: ArgumentHelp("Stop after this many total steps and write a checkpoint.", visibility: .hidden))
    var stopAfter: Int?

    @Flag(help: ArgumentHelp("Initialise each rank with seed + rank and report parameter checksums (tests the broadcast).", visibility: .hidden))
    var debugRankInit = false

    func run() throws {
        if RankContext.shouldLaunch(ranks: ranks), let ranks {
            // Check the recipe here, once, before starting N processes that would each refuse it.
            try reportingErrors {
                let checkpoint = try resume.map { try Checkpoint.resolve($0) }
                let config = try resolvedConfig(resuming: checkpoint)
                guard config.batchSize >= ranks else {
                    throw TrainingError("batch_size \(config.batchSize) cannot be split over \(ranks) ranks: every rank needs at least one image")
                }
                let directory = RunDirectory(path: config.checkpointDir)
                if let holder = directory.lockHolder { throw TrainingError("\(config.checkpointDir) is in use by \(holder); a run directory has one writer at a time") }
                let inPlace = checkpoint?.directory == URL(fileURLWithPath: config.checkpointDir).standardizedFileURL.path
                if let problem = directory.decision(runID: inPlace ? checkpoint?.runID : nil, resume: inPlace ? checkpoint : nil).refusal {
                    throw TrainingError(problem)
                }
            }
            var args = Array(CommandLine.arguments.dropFirst())
            if args.first == "train" { args.removeFirst() }
            var code: Int32 = 0
            try reportingErrors { code = try RankContext.launch(ranks: ranks, arguments: ["train"] + args) }
            throw ExitCode(code)
        }
        try reportingErrors {
            if let ranks, ranks < 1 { throw ValidationError("--ranks must be at least 1, got \(ranks)") }
            let checkpoint = try resume.map { try Checkpoint.resolve($0) }
            let config = try resolvedConfig(resuming: checkpoint)
            let context = try RankContext.join(collectiveTimeout: Double(config.collectiveTimeout))
            let communicator = context.communicator, localRanks = context.localRanks
            if let ranks, MPICommunicator.launchedByMPI, ranks != communicator.size {
                throw LaunchError("--ranks \(ranks) but the launcher started \(communicator.size) ranks")
            }
            configureThreads(config.threads > 0 ? config.threads : Launch.defaultThreads(localRanks: localRanks))
            let root = communicator.rank == 0
            if root, config.threads == 0, let warning = Launch.idleCoresWarning(rank: 0, localRanks: localRanks, threads: Parallel.threads) {
                FileHandle.standardError.write((warning + "\n").data(using: .utf8)!)
            }
            let code = try context.run { () throws -> Int32 in
                try TrainingRun.checkAgreement(config: config, communicator: communicator)
                if root {
                    FileHandle.standardError.write(("# segdist \(segdistVersion): \(communicator.size) rank(s) x \(Parallel.threads) thread(s); effective config\n"
                        + config.rendered()).data(using: .utf8)!)
                }
                let run = try TrainingRun(config: config, resume: checkpoint, communicator: communicator,
                                          initSeedOffset: debugRankInit ? communicator.rank : 0, ranksOnThisNode: localRanks,
                                          localRank: context.localRank)
                if root, let note = run.deviceNote { FileHandle.standardError.write((note + "\n").data(using: .utf8)!) }
                run.stopSignal = StopSignal()
                if debugRankInit {
                    FileHandle.standardError.write("rank \(communicator.rank): parameter checksum before broadcast \(run.checksumBeforeBroadcast) after \(run.model.store.parameterChecksum)\n".data(using: .utf8)!)
                }
                if root, let checkpoint {
                    for skipped in checkpoint.skipped { FileHandle.standardError.write("segdist: warning: skipped \(skipped)\n".data(using: .utf8)!) }
                    FileHandle.standardError.write("resuming at step \(checkpoint.step) from \(checkpoint.file?.path ?? resume!) in \(config.checkpointDir)\n".data(using: .utf8)!)
                    if let earlier = try? TrainingConfig.parsed(checkpoint.configText), earlier.seed != config.seed {
                        FileHandle.standardError.write("segdist: warning: seed \(config.seed) differs from the checkpoint's \(earlier.seed): the data order and dropout from here on are not the original run's\n".data(using: .utf8)!)
                    }
                }
                if root, let note = run.startNote { FileHandle.standardError.write("segdist: note: \(note)\n".data(using: .utf8)!) }
                if root { FileHandle.standardError.write("# data: \(run.data.summary)\n".data(using: .utf8)!) }
                if root && config.normalizeAuto, let mean = run.config.normalizeMean, let std = run.config.normalizeStd {
                    FileHandle.standardError.write("# normalize: auto measured over the training images: normalize_mean: \(mean.map(formatNumber).joined(separator: ", ")); normalize_std: \(std.map(formatNumber).joined(separator: ", "))\n".data(using: .utf8)!)
                }
                if root && config.classWeightsAuto, let weights = run.config.classWeights {
                    FileHandle.standardError.write("# class_weights: auto from the training masks: \(weights.map(formatNumber).joined(separator: ", "))\n".data(using: .utf8)!)
                }
                if root, let memory = run.memory {
                    FileHandle.standardError.write("# memory: a step needs \(memory.summary) per rank\n".data(using: .utf8)!)
                }
                if root, let report = run.initialisation {
                    FileHandle.standardError.write("init_from \(config.initFrom): \(report.summary)\n".data(using: .utf8)!)
                }
                let progress = root ? ProgressReporter(total: config.totalSteps, every: config.logEvery) : nil
                let summary = try run.run(progress: progress, stopAfter: stopAfter)
                if root {
                    try printJSON(["steps": summary.steps, "seconds": (summary.seconds * 10).rounded() / 10, "ranks": communicator.size,
                                   "final_dice": summary.finalDice as Any, "best_dice": summary.bestDice as Any,
                                   "run_directory": config.checkpointDir, "last_checkpoint": summary.lastCheckpoint as Any,
                                   "stopped_by_signal": summary.stoppedBySignal == SIGUSR2 ? SIGINT : summary.stoppedBySignal,
                                   "stopped_by": summary.stoppedBySignal == 0 ? "" : Launch.signalName(summary.stoppedBySignal),
                                   "communication_share": (summary.communicationShare * 1000).rounded() / 1000])
                }
                // Ctrl-C: the checkpoint is written; the exit code says the run did not finish
                return summary.interrupted ? 130 : 0
            }
            if code != 0 { throw ExitCode(code) }
        }
    }
}

extension TrainCommand {
    /// The recipe; resuming, the checkpoint's unless --config/--set say otherwise, and the run
    /// continues where it was read from (its directory), unless --set checkpoint_dir=NEW
    /// branches it into a new one.
    func resolvedConfig(resuming checkpoint: Checkpoint?) throws -> TrainingConfig {
        var config = try recipe.resolve(fallback: checkpoint.map { ($0.configText, $0.file?.path ?? "checkpoint") })
        if let dir = checkpoint?.directory, !recipe.overrides.contains(where: { $0.trimmingCharacters(in: .whitespaces).hasPrefix("checkpoint_dir") }) {
            config.checkpointDir = dir
        }
        return config
    }
}

/// A measured value for a message: 4 significant digits.
private func formatNumber(_ v: Float) -> String { String(format: "%.4g", v) }
