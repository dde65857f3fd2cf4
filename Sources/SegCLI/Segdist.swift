import ArgumentParser

@main
struct Segdist: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "segdist",
        abstract: "Data-parallel training of image-segmentation networks (UNet family) on CPUs.",
        subcommands: [TrainCommand.self, EvalCommand.self, PredictCommand.self, GenerateCommand.self, BenchCommand.self],
        defaultSubcommand: TrainCommand.self)
}
