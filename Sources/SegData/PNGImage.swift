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

    /// The PNG file's bytes, compressed once: into a buffer of the worst case's size (libpng
    /// says the size it needs when that is short, and then it is written again). `fast` trades
    /// size for speed (libpng's PNG_IMAGE_FLAG_FAST: pictures to look at, not data).
    public func encoded(fast: Bool = false) throws -> Data {
        func describe() -> png_image {
            var image = png_image()
            image.version = UInt32(PNG_IMAGE_VERSION)
            image.width = UInt32(width); image.height = UInt32(height)
            image.format = channels == 1 ? UInt32(PNG_FORMAT_GRAY) : UInt32(PNG_FORMAT_RGB)
            if fast { image.flags |= UInt32(PNG_IMAGE_FLAG_FAST) }
            return image
        }
        let raw = height * (width * channels + 1)
        var size = png_alloc_size_t(raw + raw / 64 + 4096)
        for _ in 0..<2 {
            var image = describe()
            var data = Data(count: Int(size))
            var capacity = size
            let ok = data.withUnsafeMutableBytes { out in
                pixels.withUnsafeBytes { png_image_write_to_memory(&image, out.baseAddress, &capacity, 0, $0.baseAddress, 0, nil) }
            }
            if ok != 0 { return data.prefix(Int(capacity)) }
            guard capacity > size else { throw ImageError(path: "PNG", problem: "could not be encoded (\(Self.message(&image)))") }
            size = capacity
        }
        throw ImageError(path: "PNG", problem: "could not be encoded")
    }

    /// Writes atomically (see `writeFileAtomically`).
    public func write(to path: String, fast: Bool = false) throws {
        try writeFileAtomically(try encoded(fast: fast), to: path)
    }

    private static func message(_ image: inout png_image) -> String {
        withUnsafeBytes(of: &image.message) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}

public struct ImageError: Error, CustomStringConvertible, Equatable {
    public let path: String, problem: String
    public init(path: String, problem: String) { self.path = path; self.problem = problem }
    public var description: String { "\(path): \(problem)" }
}
