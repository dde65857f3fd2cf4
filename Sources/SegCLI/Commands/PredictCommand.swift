import ArgumentParser
import Foundation
import SegCore
import SegData
import SegNN
import SegTrain

struct PredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract: "Segment one PNG: writes mask.png, probabilities.npy and panel.png.")

    @Option(help: "Checkpoint to predict with.") var checkpoint: String?
    @Option(help: "A plain state_dict (safetensors, e.g. converted torchvision weights) for the model named by --config/--set, instead of a checkpoint.")
    var weights: String?
    @OptionGroup var recipe: ConfigOptions
    @Option(help: "Input image (PNG, grey or RGB).") var input: String
    @Option(help: "Ground-truth mask (PNG) to show beside the prediction.") var mask: String?
    @Option(help: "Output directory.") var output: String

    func run() throws {
        try reportingErrors {
            let (config, model, _, _) = try loadModel(checkpoint: checkpoint, weights: weights, recipe: recipe, checkingData: false)
            let png = try PNGImage(path: input)
            let minSide = 1 << config.model.downsamplings
            guard png.width >= minSide, png.height >= minSide else {
                throw ImageError(path: input, problem: "is \(png.width)x\(png.height); \(config.model.rawValue) needs at least \(minSide)x\(minSide)")
            }
            let truth = try mask.map { path -> PNGImage in
                let m = try PNGImage(path: path)
                guard m.width == png.width, m.height == png.height else {
                    throw ImageError(path: path, problem: "is \(m.width)x\(m.height) but the image is \(png.width)x\(png.height)")
                }
                return m
            }
            let memory = MemoryEstimate.prediction(model: model, architecture: config.model, height: png.height, width: png.width)
            if let available = MemoryEstimate.availableBytes, memory.totalBytes > available {
                throw ImageError(path: input, problem: String(format: "is %dx%d: predicting it needs %@, but %.2f GB is available; downscale it (tiled prediction is not there yet)", png.width, png.height, memory.summary, Double(available) / 1e9))
            }
            let prediction = Predictor.predict(model: model, input: Predictor.input(from: png, channels: config.inChannels, scaling: config.inputScaling,
                                                                                  normalization: config.normalization),
                                               activation: config.loss.outputActivation)
            try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
            let k = prediction.classCount, h = png.height, w = png.width
            let classes = prediction.classes.map { maskValue(class: Int($0), classes: k) }
            try PNGImage(width: w, height: h, channels: 1, pixels: classes).write(to: output + "/mask.png")
            try writeNPY(prediction.probabilities, to: output + "/probabilities.npy")
            try drawPredictionPanel(input: png, truth: truth, foreground: prediction.foreground,
                          predicted: prediction.classCount == 1 ? prediction.classes : prediction.classes.map { $0 == 0 ? 0 : 1 }).write(to: output + "/panel.png")
            print("wrote \(output)/mask.png, \(output)/probabilities.npy and \(output)/panel.png")
        }
    }
}
