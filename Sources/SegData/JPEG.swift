import CJPEG
import Foundation

/// JPEG through libjpeg-turbo's TurboJPEG library, loaded at first use (see CJPEG): a machine
/// without it reads and trains on PNG as before and names the package when a JPEG turns up.
public enum JPEG {
    private struct Loaded: @unchecked Sendable { let api: segdist_turbojpeg? }
    private static let loaded: Loaded = {
        var api = segdist_turbojpeg()
        return Loaded(api: segdist_turbojpeg_load(&api) != 0 ? api : nil)
    }()

    /// Whether libturbojpeg.so.0 could be loaded.
    public static var isAvailable: Bool { loaded.api != nil }

    static func api(_ path: String) throws -> segdist_turbojpeg {
        guard let api = loaded.api else {
            throw ImageError(path: path, problem: "is a JPEG, and reading JPEG needs libjpeg-turbo's libturbojpeg.so.0 (apt-get install libturbojpeg0)")
        }
        return api
    }

    /// Decodes to 8-bit grey (grey JPEGs) or RGB, interleaved.
    static func decode(_ data: Data, path: String) throws -> (width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        let api = try api(path)
        guard let handle = api.initDecompress() else { throw ImageError(path: path, problem: "could not start the JPEG decoder") }
        defer { _ = api.destroy(handle) }
        func failure(_ what: String) -> ImageError {
            ImageError(path: path, problem: "\(what) (\(api.errorString(handle).map { String(cString: $0) } ?? "unknown error"))")
        }
        return try data.withUnsafeBytes { raw -> (Int, Int, Int, [UInt8]) in
            let bytes = raw.bindMemory(to: UInt8.self).baseAddress!
            var w: Int32 = 0, h: Int32 = 0, subsampling: Int32 = 0, colourspace: Int32 = 0
            guard api.decompressHeader3(handle, bytes, UInt(data.count), &w, &h, &subsampling, &colourspace) == 0 else {
                throw failure("is not a readable JPEG")
            }
            guard w > 0, h > 0, Int(w) * Int(h) <= 1 << 28 else { throw ImageError(path: path, problem: "is \(w)x\(h), too large to read") }
            let grey = colourspace == Int32(SEGDIST_TJCS_GRAY), channels = grey ? 1 : 3
            var pixels = [UInt8](repeating: 0, count: Int(w) * Int(h) * channels)
            let ok = pixels.withUnsafeMutableBufferPointer {
                api.decompress2(handle, bytes, UInt(data.count), $0.baseAddress, w, 0, h,
                                Int32(grey ? SEGDIST_TJPF_GRAY : SEGDIST_TJPF_RGB), Int32(SEGDIST_TJFLAG_ACCURATEDCT))
            }
            guard ok == 0 else { throw failure("could not be decoded") }
            return (Int(w), Int(h), channels, pixels)
        }
    }

    /// The JPEG file's bytes for an 8-bit grey or RGB image (4:4:4, quality 1-100).
    public static func encode(_ image: PNGImage, quality: Int = 95) throws -> Data {
        let api = try api("JPEG")
        guard let handle = api.initCompress() else { throw ImageError(path: "JPEG", problem: "could not start the JPEG encoder") }
        defer { _ = api.destroy(handle) }
        var out: UnsafeMutablePointer<UInt8>?
        var size: UInt = 0
        let ok = image.pixels.withUnsafeBufferPointer {
            api.compress2(handle, $0.baseAddress, Int32(image.width), 0, Int32(image.height),
                          Int32(image.channels == 1 ? SEGDIST_TJPF_GRAY : SEGDIST_TJPF_RGB), &out, &size,
                          Int32(image.channels == 1 ? SEGDIST_TJSAMP_GRAY : SEGDIST_TJSAMP_444), Int32(quality),
                          Int32(SEGDIST_TJFLAG_ACCURATEDCT))
        }
        defer { if let out { api.free(out) } }
        guard ok == 0, let out else {
            throw ImageError(path: "JPEG", problem: "could not be encoded (\(api.errorString(handle).map { String(cString: $0) } ?? "unknown error"))")
        }
        return Data(bytes: out, count: Int(size))
    }
}
