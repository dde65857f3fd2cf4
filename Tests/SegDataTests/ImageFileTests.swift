import XCTest
import Foundation
import CPNG
import SegCore
import SegData
import SegTestSupport

/// Image and mask files as people have them: PNG in every colour type and depth, JPEG, palette
/// masks with PASCAL VOC's ignore value, colour masks; and every malformed case named.
final class ImageFileTests: XCTestCase {
    var dir: String!
    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "segdist-images-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    static func writePNG(_ path: String, width: Int, height: Int, format: UInt32, bytes: [UInt8], colormap: [UInt8] = []) throws {
        XCTAssertTrue(writeTestPNG(path, width: width, height: height, format: format, bytes: bytes, colormap: colormap), "writing \(path)")
    }

    static func bytes16(_ v: [UInt16]) -> [UInt8] { v.withUnsafeBytes { Array($0) } }

    func testEveryPNGKindReadsOnTheSameScale() throws {
        let grey = UInt32(PNG_FORMAT_GRAY), colour = UInt32(PNG_FORMAT_FLAG_COLOR), alpha = UInt32(PNG_FORMAT_FLAG_ALPHA)
        let linear = UInt32(PNG_FORMAT_FLAG_LINEAR), palette = UInt32(PNG_FORMAT_FLAG_COLORMAP)
        try Self.writePNG(dir + "/g8.png", width: 2, height: 1, format: grey, bytes: [10, 250])
        try Self.writePNG(dir + "/ga8.png", width: 2, height: 1, format: grey | alpha, bytes: [10, 255, 250, 255])
        try Self.writePNG(dir + "/rgb8.png", width: 2, height: 1, format: colour, bytes: [1, 2, 3, 4, 5, 6])
        try Self.writePNG(dir + "/rgba8.png", width: 2, height: 1, format: colour | alpha, bytes: [1, 2, 3, 255, 4, 5, 6, 255])
        try Self.writePNG(dir + "/g16.png", width: 2, height: 1, format: linear, bytes: Self.bytes16([257 * 10, 65535]))
        try Self.writePNG(dir + "/rgb16.png", width: 1, height: 1, format: linear | colour, bytes: Self.bytes16([0, 257 * 128, 65535]))
        try Self.writePNG(dir + "/pal.png", width: 3, height: 1, format: colour | palette, bytes: [0, 1, 2],
                          colormap: [0, 0, 0, 200, 100, 50, 255, 255, 255])
        func read(_ name: String) throws -> ImageFile { try ImageFile(path: dir + "/" + name) }
        XCTAssertEqual(try read("g8.png").values, [10, 250])
        XCTAssertEqual(try read("ga8.png").values, [10, 250], "alpha dropped")
        XCTAssertEqual(try read("rgb8.png").values, [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(try read("rgba8.png").values, [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(try read("g16.png").values, [10, 255], "16-bit as v / 257, no gamma curve")
        XCTAssertEqual(try read("rgb16.png").values, [0, 128, 255])
        let p = try read("pal.png")
        XCTAssertEqual(p.channels, 3)
        XCTAssertEqual(p.values, [0, 0, 0, 200, 100, 50, 255, 255, 255], "a palette image reads as its colours")
        // grey <-> RGB for the model
        XCTAssertEqual(try read("g8.png").planes(channels: 3), [10, 250, 10, 250, 10, 250].map { Float($0) / 255 })
        XCTAssertEqual(try read("rgb8.png").planes(channels: 1)[0], (0.299 * 1 + 0.587 * 2 + 0.114 * 3) / 255, accuracy: 1e-6)
    }

    func testJPEG() throws {
        guard JPEG.isAvailable else {
            throw XCTSkip("JPEG reading did not run: libturbojpeg.so.0 is not installed here (apt-get install libturbojpeg0)")
        }
        // smooth content: 4:4:4 at quality 100 comes back within a few levels
        let (w, h) = (16, 8)
        let rgb = PNGImage(width: w, height: h, channels: 3, pixels: (0..<(w * h * 3)).map { UInt8(($0 % 3) * 60 + ($0 / 3 % w) * 4) })
        let greyImage = PNGImage(width: w, height: h, channels: 1, pixels: (0..<(w * h)).map { UInt8(($0 % w) * 10 + $0 / w) })
        try JPEG.encode(rgb, quality: 100).write(to: URL(fileURLWithPath: dir + "/c.jpg"))
        try JPEG.encode(greyImage, quality: 100).write(to: URL(fileURLWithPath: dir + "/g.JPEG"))
        let c = try ImageFile(path: dir + "/c.jpg"), g = try ImageFile(path: dir + "/g.JPEG")
        XCTAssertEqual([c.width, c.height, c.channels, g.channels], [w, h, 3, 1])
        XCTAssertLessThanOrEqual(zip(c.values, rgb.pixels).map { abs($0 - Float($1)) }.max()!, 4)
        XCTAssertLessThanOrEqual(zip(g.values, greyImage.pixels).map { abs($0 - Float($1)) }.max()!, 2)
        // a broken JPEG is named
        var data = try Data(contentsOf: URL(fileURLWithPath: dir + "/c.jpg"))
        data = data.prefix(40)
        try data.write(to: URL(fileURLWithPath: dir + "/broken.jpg"))
        XCTAssertThrowsError(try ImageFile(path: dir + "/broken.jpg")) { XCTAssertTrue("\($0)".hasPrefix(self.dir + "/broken.jpg: "), "\($0)") }
        // and a JPEG mask is refused
        XCTAssertThrowsError(try MaskFile(path: dir + "/g.JPEG", rule: MaskRule(classes: 2))) {
            XCTAssertTrue("\($0)".contains("is a JPEG; masks must be PNG"), "\($0)")
        }
    }

    func testMasksEveryWayTheyComeAndTheirMistakes() throws {
        let grey = UInt32(PNG_FORMAT_GRAY), colour = UInt32(PNG_FORMAT_FLAG_COLOR), linear = UInt32(PNG_FORMAT_FLAG_LINEAR)
        let palette = UInt32(PNG_FORMAT_FLAG_COLORMAP)
        func mask(_ name: String, _ rule: MaskRule) throws -> [UInt8] { try MaskFile(path: dir + "/" + name, rule: rule).labels }
        func problem(_ name: String, _ rule: MaskRule) -> String {
            do { _ = try MaskFile(path: dir + "/" + name, rule: rule); return "accepted" } catch { return "\(error)" }
        }
        let ig = Sample.ignored
        // class indices, 0/255 binary, and VOC's 255 border
        try Self.writePNG(dir + "/idx.png", width: 4, height: 1, format: grey, bytes: [0, 1, 2, 255])
        try Self.writePNG(dir + "/bin.png", width: 3, height: 1, format: grey, bytes: [0, 255, 0])
        XCTAssertEqual(try mask("idx.png", MaskRule(classes: 3)), [0, 1, 2, ig])
        // what 255 means is decided once for all the masks of a dataset, never file by file
        let binary = try MaskRule(classes: 2).decided(for: [dir + "/bin.png"])
        XCTAssertEqual(try mask("bin.png", binary.rule), [0, 1, 0], "0/255 masks, two classes: 255 is class 1")
        XCTAssertEqual(binary.note, "masks: all 1 hold only 0 and 255: 255 read as class 1")
        XCTAssertEqual(try mask("bin.png", try MaskRule(classes: 21).decided(for: [dir + "/bin.png"]).rule), [0, ig, 0],
                       "with more classes 255 is the ignore value")
        let mixed = try MaskRule(classes: 2).decided(for: [dir + "/bin.png", dir + "/idx.png"])
        XCTAssertEqual(try mask("bin.png", mixed.rule), [0, ig, 0], "beside a mask holding 1, 255 is ignored in every mask")
        XCTAssertTrue(mixed.note?.contains("warning: 1 of 2 masks hold only 0 and 255 (e.g. \(dir!)/bin.png)") == true, mixed.note ?? "no note")
        XCTAssertEqual(problem("idx.png", MaskRule(classes: 2)), "\(dir!)/idx.png: holds the value 2 at (2, 0), outside the 2 classes 0..<2 and not the ignore_index 255")
        XCTAssertEqual(problem("idx.png", MaskRule(classes: 3, ignoreIndex: nil)), "\(dir!)/idx.png: holds the value 255 at (3, 0), outside the 3 classes 0..<3")
        // 16-bit indices
        try Self.writePNG(dir + "/idx16.png", width: 3, height: 1, format: linear, bytes: Self.bytes16([0, 4, 255]))
        XCTAssertEqual(try mask("idx16.png", MaskRule(classes: 5)), [0, 4, ig])
        // palette masks: the index is the class, whatever the colours (duplicates included)
        var voc = [UInt8](repeating: 0, count: 256 * 3)
        voc[3...5] = [128, 0, 0]; voc[6...8] = [128, 0, 0]; voc[765...767] = [224, 224, 192]
        try Self.writePNG(dir + "/voc.png", width: 4, height: 1, format: colour | palette, bytes: [0, 1, 2, 255], colormap: voc)
        XCTAssertEqual(try mask("voc.png", MaskRule(classes: 21)), [0, 1, 2, ig])
        // colour masks through class_colors (and an ignore colour)
        try Self.writePNG(dir + "/rgb.png", width: 3, height: 1, format: colour, bytes: [0, 0, 0, 255, 0, 0, 9, 9, 9])
        let colours: [[UInt8]] = [[0, 0, 0], [255, 0, 0]]
        XCTAssertEqual(try mask("rgb.png", MaskRule(classes: 2, classColors: colours, ignoreColor: [9, 9, 9])), [0, 1, ig])
        XCTAssertEqual(problem("rgb.png", MaskRule(classes: 2, classColors: colours)),
                       "\(dir!)/rgb.png: holds the colour #090909 at (2, 0), which is none of class_colors (and there is no ignore_color)")
        XCTAssertTrue(problem("rgb.png", MaskRule(classes: 2)).contains("is a colour image; masks are grey PNGs of class indices"))
        XCTAssertEqual(problem("none.png", MaskRule(classes: 2)), "\(dir!)/none.png: no such file")
        try Data("not an image".utf8).write(to: URL(fileURLWithPath: dir + "/text.png"))
        XCTAssertEqual(problem("text.png", MaskRule(classes: 2)), "\(dir!)/text.png: is not a PNG")
        XCTAssertThrowsError(try ImageFile(path: dir + "/text.png")) { XCTAssertEqual("\($0)", "\(self.dir!)/text.png: is neither a PNG nor a JPEG") }
    }

    /// Every compression gives back the same pixels (grey and RGB, smooth, noisy and flat rows),
    /// `smallest` is libpng's simplified writer byte for byte, and a failure inside libpng comes
    /// back as an error naming the problem (its longjmp never crosses Swift).
    func testEveryPNGCompressionKeepsThePixels() throws {
        var rng = SeededGenerator(seed: 3)
        for channels in [1, 3] {
            let (w, h) = (37, 23)
            let pixels = (0..<(w * h * channels)).map { i -> UInt8 in
                let y = i / (w * channels)
                return y < 8 ? UInt8(i % 251) : y < 16 ? UInt8(truncatingIfNeeded: rng.next()) : (i / channels % w < 20 ? 0 : 255)
            }
            let image = PNGImage(width: w, height: h, channels: channels, pixels: pixels)
            for (name, compression) in [("smallest", PNGCompression.smallest), ("fast", .fast), ("labels", .labels)] {
                let path = dir + "/\(name)-\(channels).png"
                try image.write(to: path, compression)
                XCTAssertEqual(try PNGImage(path: path), image, "\(name), \(channels) channel(s)")
            }
            var simplified = png_image()
            simplified.version = UInt32(PNG_IMAGE_VERSION)
            simplified.width = UInt32(w); simplified.height = UInt32(h)
            simplified.format = channels == 1 ? UInt32(PNG_FORMAT_GRAY) : UInt32(PNG_FORMAT_RGB)
            var size = png_alloc_size_t(1 << 16)
            var bytes = [UInt8](repeating: 0, count: Int(size))
            let ok = bytes.withUnsafeMutableBytes { out in
                pixels.withUnsafeBytes { png_image_write_to_memory(&simplified, out.baseAddress, &size, 0, $0.baseAddress, 0, nil) }
            }
            XCTAssertNotEqual(ok, 0)
            XCTAssertEqual([UInt8](try image.encoded(.smallest)), Array(bytes.prefix(Int(size))), "libpng's simplified writer's bytes")
        }
        XCTAssertThrowsError(try PNGImage(width: 0, height: 4, channels: 1, pixels: []).encoded(.fast)) {
            XCTAssertEqual("\($0)", "PNG: could not be encoded (Invalid IHDR data)")
        }
    }
}
