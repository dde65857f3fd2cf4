import ArgumentParser
import Foundation
import SegCore
import SegTrain

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Dice and Jaccard of a checkpoint on the validation set; printed and written as JSON.")

    @Option(help: "Checkpoint to evaluate.") var checkpoint: String
    @OptionGroup var recipe: ConfigOptions
    @Option(help: "Where to write the JSON (default: eval.json beside the checkpoint).") var output: String?

    func run() throws {
        try reportingErrors {
            let ckpt = try Checkpoint(path: checkpoint)
            let config = try recipe.resolve(fallback: (ckpt.configText, checkpoint))
            configureThreads(config.threads)
            let model = config.makeModel()
            try ckpt.restore(model: model, optimizer: nil)
            let data = config.dataset
            let batches = validationBatches(data: data, indices: 0..<data.validationCount, batch: config.batchSize)
            let scores = evaluate(model: model, batches: batches, activation: config.loss.outputActivation)
            let path = output ?? URL(fileURLWithPath: checkpoint).deletingLastPathComponent().appendingPathComponent("eval.json").path
            try printJSON(["checkpoint": checkpoint, "step": ckpt.step, "images": scores.images, "dice": scores.dice,
                           "jaccard": scores.jaccard, "foreground_dice": scores.foregroundDice,
                           "foreground_jaccard": scores.foregroundJaccard], to: path)
        }
    }
}
