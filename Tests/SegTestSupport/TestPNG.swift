import CPNG

/// Writes PNG files of every kind for the data tests, with libpng's simplified writer:
/// `format` as png_image's (PNG_FORMAT_FLAG_*), `bytes` the pixels (16-bit samples in host
/// order), `colormap` RGB entries for palettes. Returns whether libpng wrote it.
@discardableResult
public func writeTestPNG(_ path: String, width: Int, height: Int, format: UInt32, bytes: [UInt8], colormap: [UInt8] = []) -> Bool {
    var image = png_image()
    image.version = UInt32(PNG_IMAGE_VERSION)
    image.width = UInt32(width); image.height = UInt32(height); image.format = format
    image.colormap_entries = UInt32(colormap.count / 3)
    let ok = bytes.withUnsafeBytes { b in
        colormap.withUnsafeBytes { png_image_write_to_file(&image, path, 0, b.baseAddress, 0, colormap.isEmpty ? nil : $0.baseAddress) }
    }
    return ok != 0
}
