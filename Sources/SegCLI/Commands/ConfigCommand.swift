import ArgumentParser
import SegTrain

struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Print every config key with its value in the built-in recipe (or --config/--set), its range and its meaning.")

    @OptionGroup var recipe: ConfigOptions

    func run() throws {
        try reportingErrors {
            print(TrainingConfig.documented(try recipe.resolve()))
        }
    }
}
