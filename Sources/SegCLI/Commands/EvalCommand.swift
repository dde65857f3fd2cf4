import ArgumentParser
import Foundation
import SegCore
import SegTrain

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Dice and Jaccard on the validation set, as training's validation and predict compute them; printed and written as JSON.",
        discussion: """
        Every validation image is predicted whole at its own size through predict's pipeline (the recipe's scaling, \
        resize, normalisation, tta) and scored at its mask's own resolution. Several --checkpoint (or --weights) \
        make an ensemble: the mean of their probabilities.
        """)

    @OptionGroup var source: ModelSource
    @OptionGroup var recipe: ConfigOptions
    @Option(help: "Where to write the JSON (default: eval.json beside the (first) checkpoint).") var output: String?

    func run() throws {
        try reportingErrors {
            let loaded = try loadModels(source, recipe: recipe)
            let config = loaded.config
            let data = try config.makeDataset()
            let pipeline = InferencePipeline(config: config, models: loaded.models)
            FileHandle.standardError.write("# \(data.validationCount) validation images; \(pipeline.summary)\n".data(using: .utf8)!)
            let scores = try evaluate(pipeline, data: data, indices: 0..<data.validationCount, batch: config.batchSize)
            let path = output ?? URL(fileURLWithPath: loaded.files[0]).deletingLastPathComponent().appendingPathComponent("eval.json").path
            try printJSON(["checkpoint": loaded.files.count == 1 ? loaded.files[0] as Any : loaded.files as Any, "step": loaded.step as Any,
                           "images": scores.images, "dice": scores.dice,
                           "jaccard": scores.jaccard, "foreground_dice": scores.foregroundDice,
                           "pooled_foreground_dice": scores.pooledForegroundDice,
                                             "pixel_counts": scores.classPixelCounts,
                           "foreground_jaccard": scores.foregroundJaccard, "tta": config.ttaFlip ? "flip" : "none"], to: path)
            FileHandle.standardError.write("wrote \(path)\n".data(using: .utf8)!)
        }
    }
}
