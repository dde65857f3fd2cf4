import ArgumentParser
import Foundation
import SegCore
import SegTrain

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a checkpoint's model as ONNX (opset 17): raw pixels in, logits and probabilities out.",
        discussion: """
        The graph scales and normalises the pixels as training did, so `image` is (batch, channels, height, width) \
        float pixel values as stored in the files (0..255). Batch is dynamic, and height and width are too unless \
        the model has a fixed-size step (PSPNet): then they are --height x --width.
        """)

    @OptionGroup var source: ModelSource
    @OptionGroup var recipe: ConfigOptions
    @Option(help: "The .onnx file to write.") var output: String
    @Option(help: "Height the model is traced at (default: the training size: resize, crop or image_size).") var height: Int?
    @Option(help: "Width the model is traced at (default: the training size: resize, crop or image_size).") var width: Int?

    func run() throws {
        try reportingErrors {
            let loaded = try loadModels(source, recipe: recipe, checkingData: false)
            guard loaded.models.count == 1 else { throw ValidationError("export writes one model; give one --checkpoint or --weights") }
            let (config, model, step, source) = (loaded.config, loaded.models[0], loaded.step, loaded.files[0])
            let trained = config.resize.fixedSize ?? config.augmentation.crop.map { ($0, $0) } ?? (config.imageSize, config.imageSize)
            let (h, w) = (height ?? trained.0, width ?? trained.1)
            let minSide = 1 << config.model.downsamplings
            guard h >= minSide, w >= minSide, h <= 4096, w <= 4096 else {
                throw ValidationError("--height/--width \(h)x\(w): \(config.model.rawValue) is traced at \(minSide)..4096 pixels a side")
            }
            let result = try ONNXExport.export(
                model: model, traceHeight: h, traceWidth: w, inputScaling: config.inputScaling, normalization: config.normalization,
                activation: config.loss.outputActivation,
                metadata: [("model", config.model.rawValue), ("classes", "\(config.classes)"), ("source", source),
                           ("step", step.map(String.init) ?? ""),
                           ("resize", config.resize.text)])
            try writeFileAtomically(Data(result.bytes), to: output)
            let size = result.dynamicSpatial ? "any height and width" : "\(h)x\(w) only"
            if config.resize != .none {
                FileHandle.standardError.write("segdist: note: the recipe resizes images (resize: \(config.resize.text)); the ONNX graph does not: resize the image before it and the probabilities back after it, as segdist predict does\n".data(using: .utf8)!)
            }
            print("wrote \(output): \(config.model.rawValue), \(result.nodeCount) nodes, \(String(format: "%.1f", Double(result.bytes.count) / 1e6)) MB, batch dynamic, \(size)")
        }
    }
}
