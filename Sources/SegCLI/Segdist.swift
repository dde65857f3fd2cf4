import ArgumentParser
import SegTrain

@main
struct Segdist: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "segdist",
        abstract: "Data-parallel training of image-segmentation networks on CPUs.",
        version: "segdist \(segdistVersion)",
        subcommands: [TrainCommand.self, EvalCommand.self, PredictCommand.self, ExportCommand.self, GenerateCommand.self, BenchCommand.self,
                      ConfigCommand.self],
        defaultSubcommand: TrainCommand.self)
}
