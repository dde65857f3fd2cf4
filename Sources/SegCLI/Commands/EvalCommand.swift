import ArgumentParser
import Foundation
import SegCore
import SegTrain

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Dice and Jaccard of a checkpoint on the validation set; printed and written as JSON.")

    @OptionGroup var source: ModelSource
    @OptionGroup var recipe: ConfigOptions
    @Option(help: "Where to write the JSON (default: eval.json beside the checkpoint).") var output: String?

    func run() throws {
        try reportingErrors {
            let (config, model, step, source) = try loadModel(source, recipe: recipe)
            let data = try config.makeDataset()
            let batches = validationBatches(data: data, indices: 0..<data.validationCount, batch: config.batchSize)
            let scores = evaluate(model: model, batches: batches, activation: config.loss.outputActivation)
            let path = output ?? URL(fileURLWithPath: source).deletingLastPathComponent().appendingPathComponent("eval.json").path
            try printJSON(["checkpoint": source, "step": step as Any, "images": scores.images, "dice": scores.dice,
                           "jaccard": scores.jaccard, "foreground_dice": scores.foregroundDice,
                           "pooled_foreground_dice": scores.pooledForegroundDice,
                           "foreground_jaccard": scores.foregroundJaccard], to: path)
            FileHandle.standardError.write("wrote \(path)\n".data(using: .utf8)!)
        }
    }
}
