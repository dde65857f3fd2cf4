import ArgumentParser
import Foundation
import SegCore
import SegData
import SegTrain

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Write synthetic images and their masks as PNG files (images/, masks/).")

    @OptionGroup var recipe: ConfigOptions
    @Option(help: "How many samples.") var count: Int
    @Option(help: "Output directory.") var output: String

    func run() throws {
        try reportingErrors {
            guard count >= 1 else { throw ValidationError("--count must be at least 1") }
            let config = try recipe.resolve()
            guard config.data != .npy else { throw ValidationError("generate writes the synthetic data (data: shapes or rgb_shapes), not data: npy") }
            configureThreads(config.threads)
            let data = config.syntheticShapes
            for sub in ["images", "masks"] {
                try FileManager.default.createDirectory(atPath: output + "/" + sub, withIntermediateDirectories: true)
            }
            // The validation stream: files a model trained on this config has not seen.
            for i in 0..<count {
                let (image, labels) = data.sample(SyntheticShapes.validationStream + UInt64(i))
                let n = data.size * data.size, c = data.channels
                var pixels = [UInt8](repeating: 0, count: n * c)
                for p in 0..<n { for k in 0..<c { pixels[p * c + k] = UInt8((image[k * n + p] * 255).rounded()) } }
                let name = String(format: "%06d.png", i)
                try PNGImage(width: data.size, height: data.size, channels: c, pixels: pixels).write(to: "\(output)/images/\(name)")
                try PNGImage(width: data.size, height: data.size, channels: 1,
                             pixels: labels.map { maskValue(class: Int($0), classes: data.classes) }).write(to: "\(output)/masks/\(name)")
            }
            print("wrote \(count) images to \(output)/images and masks to \(output)/masks")
        }
    }
}

/// Masks store class k of K as round(255 * k / (K - 1)): 0/255 for two classes, visible as is.
/// A class as a mask pixel: 0/255 for two classes (visible, and read back as binary), else the
/// class index itself (what a folder dataset reads).
func maskValue(class k: Int, classes: Int) -> UInt8 { classes <= 2 ? (k == 0 ? 0 : 255) : UInt8(k) }
