import CPNG
import Foundation
import SegCore

/// An image file as a model input: PNG (grey, grey + alpha, RGB, RGBA, palette; 8 or 16 bits)
/// or JPEG (grey or colour), told apart by their first bytes. Alpha is dropped; 16-bit samples
/// are scaled to the 8-bit range (v / 257, no gamma curve), so every image reads on the same
/// 0...255 scale whatever its depth.
public struct ImageFile {
    public let width: Int, height: Int
    /// 1 (grey) or 3 (RGB).
    public let channels: Int
    /// Interleaved samples on the 0...255 scale (whole numbers for 8-bit files).
    public let values: [Float]
    public let path: String

    public init(path: String) throws {
        guard FileManager.default.fileExists(atPath: path) else { throw ImageError(path: path, problem: "no such file") }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw ImageError(path: path, problem: "cannot be read: \(systemMessage(error))")
        }
        self.path = path
        if data.starts(with: [0xFF, 0xD8, 0xFF]) {
            let jpeg = try JPEG.decode(data, path: path)
            (width, height, channels) = (jpeg.width, jpeg.height, jpeg.channels)
            values = jpeg.pixels.map { Float($0) }
        } else if data.starts(with: [0x89, 0x50, 0x4E, 0x47]) {
            let png = try PNGFile.read(data, path: path, as: .image)
            (width, height, channels) = (png.width, png.height, png.channels)
            values = png.is16Bit ? png.samples.map { Float($0) / 257 } : png.samples.map { Float($0) }
        } else {
            throw ImageError(path: path, problem: "is neither a PNG nor a JPEG")
        }
    }

    /// (channels, height, width) planes divided by 255, converted to `channels`: grey is
    /// repeated, RGB to grey by the ITU-R 601 luma weights.
    public func planes(channels wanted: Int) -> [Float] {
        let n = width * height
        var planes = [Float](repeating: 0, count: wanted * n)
        for p in 0..<n {
            for c in 0..<wanted {
                let v: Float = channels == wanted ? values[p * channels + c]
                    : channels == 1 ? values[p]
                    : 0.299 * values[p * 3] + 0.587 * values[p * 3 + 1] + 0.114 * values[p * 3 + 2]
                planes[c * n + p] = v / 255
            }
        }
        return planes
    }

    /// The 8-bit picture (for panels).
    public var picture: PNGImage {
        PNGImage(width: width, height: height, channels: channels, pixels: values.map { UInt8(max(0, min(255, $0.rounded()))) })
    }
}

/// libpng's simplified reader, keeping what a dataset needs: 16-bit samples as they are (no
/// gamma curve) and, for masks, palette indices as they are.
enum PNGFile {
    enum Purpose { case image, mask }
    struct Decoded {
        let width: Int, height: Int, channels: Int
        let samples: [UInt16]
        let is16Bit: Bool
        /// Palette images read as masks: the samples are the palette indices.
        let isPalette: Bool
    }

    static func read(_ data: Data, path: String, as purpose: Purpose) throws -> Decoded {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        let begun = data.withUnsafeBytes { png_image_begin_read_from_memory(&image, $0.baseAddress, data.count) }
        guard begun != 0 else { throw ImageError(path: path, problem: "is not a readable PNG (\(message(&image)))") }
        let format = image.format
        let colour = format & UInt32(PNG_FORMAT_FLAG_COLOR) != 0
        let wide = format & UInt32(PNG_FORMAT_FLAG_LINEAR) != 0
        let palette = purpose == .mask && format & UInt32(PNG_FORMAT_FLAG_COLORMAP) != 0
        let (w, h) = (Int(image.width), Int(image.height))
        guard w > 0, h > 0, w * h <= 1 << 28 else {
            png_image_free(&image)
            throw ImageError(path: path, problem: "is \(w)x\(h), too large to read")
        }
        let channels = palette ? 1 : colour ? 3 : 1
        let ok: Int32
        var samples: [UInt16]
        if palette {
            // the indices themselves (libpng keeps the file's palette order)
            image.format = UInt32(PNG_FORMAT_RGB) | UInt32(PNG_FORMAT_FLAG_COLORMAP)
            var indices = [UInt8](repeating: 0, count: w * h)
            var colourMap = [UInt8](repeating: 0, count: 256 * 3)
            ok = indices.withUnsafeMutableBytes { buffer in
                colourMap.withUnsafeMutableBytes { png_image_finish_read(&image, nil, buffer.baseAddress, 0, $0.baseAddress) }
            }
            samples = indices.map { UInt16($0) }
        } else if wide {
            image.format = UInt32(PNG_FORMAT_FLAG_LINEAR) | (colour ? UInt32(PNG_FORMAT_FLAG_COLOR) : 0)
            samples = [UInt16](repeating: 0, count: w * h * channels)
            ok = samples.withUnsafeMutableBytes { png_image_finish_read(&image, nil, $0.baseAddress, 0, nil) }
        } else {
            image.format = colour ? UInt32(PNG_FORMAT_RGB) : UInt32(PNG_FORMAT_GRAY)
            var bytes = [UInt8](repeating: 0, count: w * h * channels)
            ok = bytes.withUnsafeMutableBytes { png_image_finish_read(&image, nil, $0.baseAddress, 0, nil) }
            samples = bytes.map { UInt16($0) }
        }
        guard ok != 0 else {
            let problem = "could not be decoded (\(message(&image)))"
            png_image_free(&image)
            throw ImageError(path: path, problem: problem)
        }
        return Decoded(width: w, height: h, channels: channels, samples: samples, is16Bit: wide && !palette, isPalette: palette)
    }

    static func message(_ image: inout png_image) -> String {
        withUnsafeBytes(of: &image.message) { raw in String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self) }
    }
}

/// How 8-bit pixels become the model's inputs, the same in training, evaluation and prediction.
public enum InputScaling: String, Sendable, CaseIterable {
    /// Each image stretched to [0, 1] (the synthetic grey discs).
    case minMax = "min_max"
    /// Divided by 255 (photographs, RGB synthetic data, uint8 arrays; torchvision's models).
    case divideBy255 = "divide_255"

    public init(minMax: Bool) { self = minMax ? .minMax : .divideBy255 }

    /// The file as (channels, height, width) planes scaled by this rule; an RGB file for a grey
    /// model is converted with the ITU-R 601 luma weights (`ImageFile.planes`).
    public func planes(of file: ImageFile, channels: Int) -> [Float] {
        var values = file.planes(channels: channels)     // divided by 255
        if self == .minMax {
            let lo = values.min() ?? 0, hi = values.max() ?? 0
            values = values.map { hi > lo ? ($0 - lo) / (hi - lo) : 0 }
        }
        return values
    }
}
