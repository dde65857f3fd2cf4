import ArgumentParser

@main
struct Segdist: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "segdist",
        abstract: "Data-parallel training of image-segmentation networks.",
        subcommands: [Bench.self],
        defaultSubcommand: Bench.self)
}
