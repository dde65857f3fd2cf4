import ArgumentParser
import Foundation
import SegCore
import SegTrain

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a segmentation model (the default command).")

    @OptionGroup var recipe: ConfigOptions

    @Option(help: "Processes to train with. 1 trains in this process.")
    var ranks = 1

    @Option(help: "Continue from this checkpoint exactly (its config is used unless --config is given).")
    var resume: String?

    @Option(help: ArgumentHelp("Stop after this many total steps and write a checkpoint (for trials and tests).", visibility: .hidden))
    var stopAfter: Int?

    func run() throws {
        try reportingErrors {
            guard ranks >= 1 else { throw ValidationError("--ranks must be at least 1") }
            guard ranks == 1 else {
                throw TrainingError("--ranks \(ranks): multi-rank training (MPI) is not available in this build yet; use --ranks 1")
            }
            let checkpoint = try resume.map { try Checkpoint(path: $0) }
            let config = try recipe.resolve(fallback: checkpoint.map { ($0.configText, $0.file?.path ?? "checkpoint") })
            configureThreads(config.threads)
            let stderr = FileHandle.standardError
            stderr.write("# segdist \(segdistVersion): effective config (threads: \(Parallel.threads))\n\(config.rendered())".data(using: .utf8)!)
            let run = try TrainingRun(config: config, resume: checkpoint)
            if let checkpoint { stderr.write("resuming at step \(checkpoint.step) from \(resume!)\n".data(using: .utf8)!) }
            let progress = ProgressReporter(total: config.totalSteps, every: config.logEvery)
            let summary = try run.run(progress: progress, stopAfter: stopAfter)
            try printJSON(["steps": summary.steps, "seconds": (summary.seconds * 10).rounded() / 10,
                           "final_dice": summary.finalDice as Any, "best_dice": summary.bestDice as Any,
                           "run_directory": config.checkpointDir, "last_checkpoint": summary.lastCheckpoint as Any])
        }
    }
}
