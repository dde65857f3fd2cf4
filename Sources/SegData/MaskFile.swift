import Foundation

/// How the pixels of a mask file become class labels.
public struct MaskRule: Sendable, Equatable {
    public var classes: Int
    /// The mask value of unlabelled pixels (PASCAL VOC's 255): left out of losses and metrics.
    /// nil: every value must be a class.
    public var ignoreIndex: Int?
    /// RGB colour of each class, for colour masks (class i has colour i).
    public var classColors: [[UInt8]]?
    /// An RGB colour meaning "unlabelled" in colour masks.
    public var ignoreColor: [UInt8]?

    public init(classes: Int, ignoreIndex: Int? = 255, classColors: [[UInt8]]? = nil, ignoreColor: [UInt8]? = nil) {
        self.classes = classes; self.ignoreIndex = ignoreIndex; self.classColors = classColors; self.ignoreColor = ignoreColor
    }
}

/// A mask file's labels: PNG only (JPEG's lossy compression changes class values). Grey masks
/// (8 or 16 bits) hold class indices, or 0/255 for two classes; palette masks hold their class
/// in the palette index (PASCAL VOC); colour masks are mapped through `class_colors`.
public struct MaskFile {
    public let width: Int, height: Int
    /// Class per pixel, `Sample.ignored` where unlabelled.
    public let labels: [UInt8]

    public init(path: String, rule: MaskRule) throws {
        func fail(_ problem: String) -> ImageError { ImageError(path: path, problem: problem) }
        guard FileManager.default.fileExists(atPath: path) else { throw fail("no such file") }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw fail("cannot be read (\(error.localizedDescription))")
        }
        guard data.starts(with: [0x89, 0x50, 0x4E, 0x47]) else {
            throw fail(data.starts(with: [0xFF, 0xD8, 0xFF]) ? "is a JPEG; masks must be PNG (JPEG compression changes class values)"
                                                             : "is not a PNG")
        }
        let png = try PNGFile.read(data, path: path, as: .mask)
        (width, height) = (png.width, png.height)
        let n = png.width * png.height
        if png.channels == 3 {
            guard let colours = rule.classColors else {
                throw fail("is a colour image; masks are grey PNGs of class indices (or 0/255), palette PNGs, or colour PNGs with class_colors in the config")
            }
            var lookup: [UInt32: UInt8] = [:]
            let key = { (r: UInt16, g: UInt16, b: UInt16) in UInt32(r) << 16 | UInt32(g) << 8 | UInt32(b) }
            for (i, c) in colours.enumerated() { lookup[key(UInt16(c[0]), UInt16(c[1]), UInt16(c[2]))] = UInt8(i) }
            if let c = rule.ignoreColor { lookup[key(UInt16(c[0]), UInt16(c[1]), UInt16(c[2]))] = Sample.ignored }
            let s = png.is16Bit ? png.samples.map { $0 / 257 } : png.samples
            var labels = [UInt8](repeating: 0, count: n)
            for p in 0..<n {
                guard let label = lookup[key(s[3 * p], s[3 * p + 1], s[3 * p + 2])] else {
                    throw fail(String(format: "holds the colour #%02X%02X%02X at (%d, %d), which is none of class_colors%@", s[3 * p], s[3 * p + 1],
                                      s[3 * p + 2], p % png.width, p / png.width, rule.ignoreColor == nil ? " (and there is no ignore_color)" : " nor ignore_color"))
                }
                labels[p] = label
            }
            self.labels = labels
            return
        }
        // indices (grey or palette)
        let values = png.samples
        let binary = !png.isPalette && rule.classes <= 2 && values.contains(255) && values.allSatisfy { $0 == 0 || $0 == 255 }
        var labels = [UInt8](repeating: 0, count: n)
        for p in 0..<n {
            let v = Int(values[p])
            if binary { labels[p] = v == 255 ? 1 : 0; continue }
            if v == rule.ignoreIndex { labels[p] = Sample.ignored; continue }
            guard v < max(rule.classes, 2) else {
                throw fail("holds the value \(v) at (\(p % png.width), \(p / png.width)), outside the \(rule.classes) classes 0..<\(max(rule.classes, 2))"
                           + (rule.ignoreIndex.map { " and not the ignore_index \($0)" } ?? ""))
            }
            labels[p] = UInt8(v)
        }
        self.labels = labels
    }
}
