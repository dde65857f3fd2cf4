import Foundation
import CPNG
import SegCore

/// An 8-bit image with 1 (grey) or 3 (RGB) interleaved channels, read and written with libpng.
public struct PNGImage: Equatable {
    public let width: Int, height: Int, channels: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        precondition(channels == 1 || channels == 3, "PNG images here are grey or RGB")
        precondition(pixels.count == width * height * channels, "Pixel count does not match \(width)x\(height)x\(channels)")
        self.width = width; self.height = height; self.channels = channels; self.pixels = pixels
    }

    /// Reads any PNG, converting it to grey (when it has no colour) or RGB; alpha is dropped.
    public init(path: String) throws {
        guard FileManager.default.fileExists(atPath: path) else { throw ImageError(path: path, problem: "no such file") }
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        guard png_image_begin_read_from_file(&image, path) != 0 else {
            throw ImageError(path: path, problem: "is not a readable PNG (\(Self.message(&image)))")
        }
        let grey = image.format & UInt32(PNG_FORMAT_FLAG_COLOR) == 0
        image.format = grey ? UInt32(PNG_FORMAT_GRAY) : UInt32(PNG_FORMAT_RGB)
        let channels = grey ? 1 : 3
        let w = Int(image.width), h = Int(image.height)
        var buffer = [UInt8](repeating: 0, count: w * h * channels)
        let ok = buffer.withUnsafeMutableBytes { png_image_finish_read(&image, nil, $0.baseAddress, 0, nil) }
        guard ok != 0 else {
            let problem = "could not be decoded (\(Self.message(&image)))"
            png_image_free(&image)
            throw ImageError(path: path, problem: problem)
        }
        self.init(width: w, height: h, channels: channels, pixels: buffer)
    }

    /// The PNG file's bytes, compressed as `compression` says.
    public func encoded(_ compression: PNGCompression = .smallest) throws -> Data {
        var sink = segdist_png_sink()
        defer { free(sink.bytes) }
        let ok = pixels.withUnsafeBufferPointer {
            segdist_png_encode($0.baseAddress, Int32(width), Int32(height), Int32(channels), compression.level,
                               compression.strategy, compression.filters, &sink)
        }
        guard ok == 0 else {
            let problem = withUnsafeBytes(of: &sink.problem) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            throw ImageError(path: "PNG", problem: "could not be encoded (\(problem))")
        }
        return Data(bytes: sink.bytes, count: sink.count)
    }

    /// Writes atomically (see `writeFileAtomically`).
    public func write(to path: String, _ compression: PNGCompression = .smallest) throws {
        try writeFileAtomically(try encoded(compression), to: path)
    }

    private static func message(_ image: inout png_image) -> String {
        withUnsafeBytes(of: &image.message) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}

/// How a PNG is compressed: zlib's level and strategy and libpng's row filters.
public struct PNGCompression: Sendable {
    public let level: Int32, strategy: Int32, filters: Int32

    public init(level: Int32, strategy: Int32 = Z_DEFAULT_STRATEGY, filters: Int32) {
        self.level = level; self.strategy = strategy; self.filters = filters
    }

    /// What libpng's simplified writer does (zlib level 6 with Z_FILTERED, each row's filter
    /// chosen by trying them all), byte for byte: the smallest files, for images that are data
    /// (generated datasets) or kept (loss curves).
    public static let smallest = PNGCompression(level: 6, strategy: Z_FILTERED, filters: segdist_png_all_filters)
    /// zlib level 1 on Sub-filtered rows: pictures to look at (prediction panels). A 1256x418
    /// panel of a 768-pixel image: 8.5 ms and 368 kB, against 18 ms and 329 kB with libpng's
    /// own fast setting (level 3, no filter) and 48 ms and 539 kB with `smallest`.
    public static let fast = PNGCompression(level: 1, filters: PNG_FILTER_SUB)
    /// Run lengths of Sub-filtered rows: label images (predicted masks), whose rows are a few
    /// values in long runs. A 768x768 mask: 0.8 ms against 3.4 ms with `smallest`, 10% larger.
    public static let labels = PNGCompression(level: 1, strategy: Z_RLE, filters: PNG_FILTER_SUB)
}

public struct ImageError: Error, CustomStringConvertible, Equatable {
    public let path: String, problem: String
    public init(path: String, problem: String) { self.path = path; self.problem = problem }
    public var description: String { "\(path): \(problem)" }
}
