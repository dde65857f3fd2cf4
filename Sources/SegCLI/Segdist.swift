import ArgumentParser
import SegCore
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

    /// Picks OpenBLAS's kernels for this CPU first (a restart when its own choice is slower).
    static func main() {
        BLASKernels.chooseKernelsForThisCPU()
        main(nil)
    }
}
