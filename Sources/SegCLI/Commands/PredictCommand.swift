import ArgumentParser
import Foundation
import SegCore
import SegData
import SegNN
import SegTrain

struct PredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract: "Segment images (PNG or JPEG, any size; a file or a folder): mask.png, probabilities.npy and panel.png per image.",
        discussion: """
        A large image is predicted window by window (--tile, overlapping by --overlap, --batch windows per pass, \
        blended), so memory stays bounded whatever its size. mask.png holds 0/255 for two classes, the class index \
        for more, or the class_colors of the recipe.
        """)

    @OptionGroup var source: ModelSource
    @OptionGroup var recipe: ConfigOptions
    @Option(help: "Input image (PNG or JPEG), or a folder of them.") var input: String
    @Option(help: "Ground-truth mask (PNG) to show beside the prediction (single image).") var mask: String?
    @Option(help: "Output directory (for a folder: one subdirectory per image, named by its stem).") var output: String
    @Option(help: "Window side for tiled prediction; 0 = the whole image when it fits in memory, else windows of max(image_size, 256).")
    var tile: Int = 0
    @Option(help: "Overlap of neighbouring windows in pixels (default: a quarter of the window).") var overlap: Int?
    @Option(help: "Windows per forward pass.") var batch: Int = 4
    @Flag(inversion: .prefixedNo, help: "Write probabilities.npy (float32, classes x H x W).") var probabilities = true

    func run() throws {
        try reportingErrors {
            let loaded = try loadModels(source, recipe: recipe, checkingData: false)
            let config = loaded.config
            guard tile >= 0, batch >= 1, (overlap ?? 0) >= 0 else { throw ValidationError("--tile, --overlap and --batch must not be negative (--batch at least 1)") }
            let pipeline = InferencePipeline(config: config, models: loaded.models)
            pipeline.tile = tile; pipeline.overlap = overlap; pipeline.windowBatch = batch
            pipeline.progress = { h, w, done, all in
                if all >= 8 && (done == all || done % max(1, all / 10) < self.batch) {
                    FileHandle.standardError.write("  windows \(done)/\(all)\n".data(using: .utf8)!)
                }
            }
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: input, isDirectory: &isDirectory) else {
                throw ImageError(path: input, problem: "no such file or directory")
            }
            let files: [(path: String, output: String)]
            if isDirectory.boolValue {
                guard mask == nil else { throw ValidationError("--mask goes with a single --input image, not a folder") }
                let names: [String]
                do {
                    names = try FileManager.default.contentsOfDirectory(atPath: input).sorted()
                        .filter { ["png", "jpg", "jpeg"].contains(URL(fileURLWithPath: $0).pathExtension.lowercased()) && !$0.hasPrefix(".") }
                } catch {
                    throw ImageError(path: input, problem: "cannot be listed: \(describeFileProblem(at: input, error))")
                }
                guard !names.isEmpty else { throw ImageError(path: input, problem: "holds no .png, .jpg or .jpeg image") }
                // one output folder per image: by stem, or by the whole name where two share a stem (a.png, a.jpg)
                let stems = names.map { URL(fileURLWithPath: $0).deletingPathExtension().lastPathComponent }
                let shared = Set(stems.filter { stem in stems.filter { $0 == stem }.count > 1 })
                files = zip(names, stems).map { (input + "/" + $0, output + "/" + (shared.contains($1) ? $0 : $1)) }
            } else {
                files = [(input, output)]
            }
            FileHandle.standardError.write("# \(pipeline.summary)\n".data(using: .utf8)!)
            // each image's files are written while the next one is computed; whatever ends the
            // loop, every image before it is on disk before the command says so
            let writer = BackgroundWriter()
            do {
                for (i, file) in files.enumerated() {
                    try predictOne(path: file.path, output: file.output, config: config, pipeline: pipeline, writer: writer)
                    if files.count > 1 { FileHandle.standardError.write("[\(i + 1)/\(files.count)] \(file.path)\n".data(using: .utf8)!) }
                }
            } catch {
                try? writer.finish()
                throw error
            }
            try writer.finish()
        }
    }

    func predictOne(path: String, output: String, config: TrainingConfig, pipeline: InferencePipeline, writer: BackgroundWriter) throws {
        let image = try ImageFile(path: path)
        let k = pipeline.classes
        let truth = try mask.map { maskPath -> PNGImage in
            // the recipe's decision (mask_255) when it made one, else this file's
            let m = try MaskFile(path: maskPath, rule: config.whiteIsForeground == nil ? config.maskRule.decided(for: [maskPath]).rule : config.maskRule)
            guard m.width == image.width, m.height == image.height else {
                throw ImageError(path: maskPath, problem: "is \(m.width)x\(m.height) but the image is \(image.width)x\(image.height)")
            }
            return PNGImage(width: m.width, height: m.height, channels: 1,
                            pixels: m.labels.map { $0 == Sample.ignored ? 128 : maskValue(class: Int($0), classes: k) })
        }
        // the pipeline refuses an image that cannot fit in memory, with the estimate
        let (memory, plan) = pipeline.memory(height: image.height, width: image.width)
        if let plan {
            FileHandle.standardError.write("\(path): \(image.width)x\(image.height) in \(plan.origins.count) windows of \(plan.tileWidth)x\(plan.tileHeight) (overlap \(plan.overlap), \(plan.batch) per pass; \(memory.summary))\n".data(using: .utf8)!)
        }
        let prediction: Prediction
        do { prediction = try pipeline.predict(pipeline.pixels(of: image), height: image.height, width: image.width) } catch let e as TrainingError {
            throw ImageError(path: path, problem: "is \(image.width)x\(image.height): \(e.description)")
        }
        try createDirectory(output)
        let probabilities = self.probabilities
        let bytes = prediction.probabilities.count * 4 + prediction.classes.count * 4 + image.values.count * 4
        try writer.submit(bytes: bytes) {
            try writeOutputs(of: prediction, for: image, truth: truth, colours: config.classColors, classes: k, to: output,
                             probabilities: probabilities)
        }
    }
}

/// mask.png, probabilities.npy (when asked for) and panel.png of one image's prediction in
/// `output`, then the line that says so.
func writeOutputs(of prediction: Prediction, for image: ImageFile, truth: PNGImage?, colours: [[UInt8]]?, classes k: Int,
                  to output: String, probabilities: Bool) throws {
    let (h, w) = (image.height, image.width)
    let maskImage: PNGImage
    if let colours {
        maskImage = PNGImage(width: w, height: h, channels: 3, pixels: prediction.classes.flatMap { colours[Int($0)] })
    } else {
        maskImage = PNGImage(width: w, height: h, channels: 1, pixels: prediction.classes.map { maskValue(class: Int($0), classes: k) })
    }
    try maskImage.write(to: output + "/mask.png", .labels)
    var written = ["mask.png"]
    if probabilities {
        try writeNPY(prediction.probabilities, to: output + "/probabilities.npy")
        written.append("probabilities.npy")
    }
    // the panel is a preview: each of its pictures at most 512 pixels a side (encoding a
    // full-size panel of a 1024-pixel image took 0.2 s, a third of the whole prediction);
    // mask.png and probabilities.npy are full size
    let step = max(1, (max(w, h) + 511) / 512)
    func shrink(_ p: PNGImage) -> PNGImage { step == 1 ? p : subsampled(p, step) }
    let foreground = prediction.foreground, predicted = prediction.classCount == 1 ? prediction.classes : prediction.classes.map { $0 == 0 ? 0 : 1 }
    let (sh, sw) = ((h + step - 1) / step, (w + step - 1) / step)
    let pick = { (i: Int) in (i / sw) * step * w + (i % sw) * step }
    try drawPredictionPanel(input: shrink(image.picture), truth: truth.map(shrink), foreground: (0..<(sh * sw)).map { foreground[pick($0)] },
                            predicted: (0..<(sh * sw)).map { predicted[pick($0)] }).write(to: output + "/panel.png", .fast)
    written.append("panel.png")
    print("wrote " + written.map { output + "/" + $0 }.joined(separator: ", "))
}

/// Every `step`-th pixel in both directions.
func subsampled(_ p: PNGImage, _ step: Int) -> PNGImage {
    let (h, w) = ((p.height + step - 1) / step, (p.width + step - 1) / step)
    var pixels = [UInt8]()
    pixels.reserveCapacity(h * w * p.channels)
    for y in 0..<h { for x in 0..<w { for c in 0..<p.channels { pixels.append(p.pixels[((y * step) * p.width + x * step) * p.channels + c]) } } }
    return PNGImage(width: w, height: h, channels: p.channels, pixels: pixels)
}

/// mkdir -p, with the message naming the directory.
func createDirectory(_ path: String) throws {
    do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
        throw ImageError(path: path, problem: "cannot create this directory: \(describeFileProblem(at: path, error))")
    }
}
