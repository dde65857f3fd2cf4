import ArgumentParser

@main
struct Segdist: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "segdist",
        abstract: "Data-parallel training of image-segmentation networks.",
        subcommands: [BenchCommand.self],
        defaultSubcommand: BenchCommand.self)
}
