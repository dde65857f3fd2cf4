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
            try drawPanel(input: png, truth: truth, foreground: prediction.foreground,
                          predicted: prediction.classCount == 1 ? prediction.classes : prediction.classes.map { $0 == 0 ? 0 : 1 }).write(to: output + "/panel.png")
            print("wrote \(output)/mask.png, \(output)/probabilities.npy and \(output)/panel.png")
        }
    }

    /// Input, ground truth (when given), heat map of the foreground probability, predicted
    /// foreground — side by side with titles, as the lab draws them.
    /// `predicted` is 1 where mask.png has a foreground class, so the two agree pixel for pixel.
    func drawPanel(input: PNGImage, truth: PNGImage?, foreground: [Float], predicted: [Int32]) -> PNGImage {
        let w = input.width, h = input.height, n = w * h, gap = 10, title = 24
        var tiles: [(String, PNGImage)] = [("INPUT", input)]
        if let truth { tiles.append(("TRUTH", truth)) }
        var heat = [UInt8](repeating: 0, count: n * 3), thresholded = [UInt8](repeating: 0, count: n)
        for p in 0..<n {
            let fg = foreground[p]
            let c = heatColor(fg)
            heat[p * 3] = c.0; heat[p * 3 + 1] = c.1; heat[p * 3 + 2] = c.2
            thresholded[p] = predicted[p] != 0 ? 255 : 0
        }
        tiles.append(("PROBABILITY", PNGImage(width: w, height: h, channels: 3, pixels: heat)))
        tiles.append(("PREDICTION", PNGImage(width: w, height: h, channels: 1, pixels: thresholded)))
        let column = max(w, 96)   // room for the longest title
        let scale = 64             // the heat map's colour scale, at the right
        let height = max(h, 60) + title + gap
        var canvas = Canvas(width: tiles.count * (column + gap) + gap + scale, height: height)
        for (i, (name, tile)) in tiles.enumerated() {
            let x = gap + i * (column + gap)
            canvas.text(name, x: x, y: 6)
            canvas.blit(tile, x: x, y: title)
        }
        // colour scale: probability 1 at the top, 0 at the bottom, labelled
        let barX = tiles.count * (column + gap) + gap, barHeight = max(h, 60)
        for y in 0..<barHeight {
            canvas.fill(x: barX, y: title + y, w: 14, h: 1, color: heatColor(1 - Float(y) / Float(max(barHeight - 1, 1))))
        }
        canvas.text("1", x: barX + 20, y: title)
        canvas.text("0.5", x: barX + 20, y: title + barHeight / 2 - 5)
        canvas.text("0", x: barX + 20, y: title + barHeight - 10)
        canvas.text("P", x: barX + 2, y: 6)
        return canvas.image
    }
}
