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

    @Option(help: "Checkpoint to predict with.") var checkpoint: String
    @Option(help: "Input image (PNG, grey or RGB).") var input: String
    @Option(help: "Ground-truth mask (PNG) to show beside the prediction.") var mask: String?
    @Option(help: "Output directory.") var output: String

    func run() throws {
        try reportingErrors {
            let ckpt = try Checkpoint(path: checkpoint)
            var config = TrainingConfig()
            try config.apply(text: ckpt.configText, source: checkpoint)
            configureThreads(config.threads)
            let model = config.makeModel()
            try ckpt.restore(model: model, optimizer: nil)
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
            let x = modelInput(png, channels: config.inChannels)
            let logits = model.forward(x, training: false)
            let probabilities = activate(logits, loss: config.loss)
            try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
            let (_, k, h, w) = logits.nchw
            var classes = [UInt8](repeating: 0, count: h * w)
            for p in 0..<(h * w) {
                var best = 0
                for c in 1..<k where probabilities.storage[c * h * w + p] > probabilities.storage[best * h * w + p] { best = c }
                classes[p] = maskValue(class: best, classes: k)
            }
            try PNGImage(width: w, height: h, channels: 1, pixels: classes).write(to: output + "/mask.png")
            try writeNPY(probabilities.reshaped([k, h, w]), to: output + "/probabilities.npy")
            try drawPanel(input: png, truth: truth, probabilities: probabilities, classes: k).write(to: output + "/panel.png")
            print("wrote \(output)/mask.png, \(output)/probabilities.npy and \(output)/panel.png")
        }
    }

    /// (1, channels, H, W) in [0, 1], min-max normalised like the training images.
    func modelInput(_ png: PNGImage, channels: Int) -> Tensor {
        let n = png.width * png.height
        var x = Tensor(zeros: [1, channels, png.height, png.width])
        for p in 0..<n {
            for c in 0..<channels {
                let v: Float
                if png.channels == channels { v = Float(png.pixels[p * png.channels + c]) }
                else if png.channels == 1 { v = Float(png.pixels[p]) }
                else { v = 0.299 * Float(png.pixels[p * 3]) + 0.587 * Float(png.pixels[p * 3 + 1]) + 0.114 * Float(png.pixels[p * 3 + 2]) }
                x.storage[c * n + p] = v
            }
        }
        if channels == 1 {
            let lo = x.storage.min()!, hi = x.storage.max()!
            x.storage = x.storage.map { hi > lo ? ($0 - lo) / (hi - lo) : 0 }
        } else {
            x.storage = x.storage.map { $0 / 255 }
        }
        return x
    }

    func activate(_ logits: Tensor, loss: LossKind) -> Tensor {
        var p = logits
        let (_, k, h, w) = logits.nchw, n = h * w
        if loss == .ce {
            // softmax over the class planes, pixel by pixel
            logits.ptr { l in p.mutPtr { out in
                for q in 0..<n {
                    var m = -Float.infinity
                    for c in 0..<k { m = max(m, l[c * n + q]) }
                    var sum: Float = 0
                    for c in 0..<k { out[c * n + q] = expf(l[c * n + q] - m); sum += out[c * n + q] }
                    for c in 0..<k { out[c * n + q] /= sum }
                }
            } }
        } else {
            p.storage = logits.storage.map(sigmoid)
        }
        return p
    }

    /// Input, ground truth (when given), heat map of the foreground probability, thresholded
    /// prediction — side by side with titles, as the lab draws them.
    func drawPanel(input: PNGImage, truth: PNGImage?, probabilities: Tensor, classes: Int) -> PNGImage {
        let w = input.width, h = input.height, n = w * h, gap = 10, title = 24
        var tiles: [(String, PNGImage)] = [("INPUT", input)]
        if let truth { tiles.append(("TRUTH", truth)) }
        var heat = [UInt8](repeating: 0, count: n * 3), thresholded = [UInt8](repeating: 0, count: n)
        for p in 0..<n {
            // foreground = every class but the background
            let fg = classes == 2 ? probabilities.storage[n + p] : 1 - probabilities.storage[p]
            let c = heatColor(fg)
            heat[p * 3] = c.0; heat[p * 3 + 1] = c.1; heat[p * 3 + 2] = c.2
            thresholded[p] = fg > 0.5 ? 255 : 0
        }
        tiles.append(("PROBABILITY", PNGImage(width: w, height: h, channels: 3, pixels: heat)))
        tiles.append(("PREDICTION", PNGImage(width: w, height: h, channels: 1, pixels: thresholded)))
        let column = max(w, 96)   // room for the longest title
        var canvas = Canvas(width: tiles.count * (column + gap) + gap, height: h + title + gap)
        for (i, (name, tile)) in tiles.enumerated() {
            let x = gap + i * (column + gap)
            canvas.text(name, x: x, y: 6)
            canvas.blit(tile, x: x, y: title)
        }
        return canvas.image
    }
}
