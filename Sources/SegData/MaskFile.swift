import Foundation
import SegCore

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
    /// Grey masks: 255 is class 1 (0/255 masks of two classes), not `ignoreIndex`. Decided once
    /// for a whole dataset (`MaskRule.decided(for:)`), never file by file.
    public var whiteIsForeground = false

    public init(classes: Int, ignoreIndex: Int? = 255, classColors: [[UInt8]]? = nil, ignoreColor: [UInt8]? = nil) {
        self.classes = classes; self.ignoreIndex = ignoreIndex; self.classColors = classColors; self.ignoreColor = ignoreColor
    }
}

/// A mask file's labels: PNG only (JPEG's lossy compression changes class values). Grey masks
/// (8 or 16 bits) hold class indices, or 0/255 for two classes (`whiteIsForeground`, decided
/// for the whole dataset); palette masks hold their class
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
            throw fail("cannot be read: \(systemMessage(error))")
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
        let binary = !png.isPalette && rule.whiteIsForeground
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

extension MaskFile {
    /// Which values a grey (non-palette, non-colour) mask holds, as a 256-entry table (values
    /// above 255 of 16-bit masks count as 255); nil for palette and colour masks.
    public static func greyValues(path: String) throws -> [Bool]? {
        guard FileManager.default.fileExists(atPath: path) else { throw ImageError(path: path, problem: "no such file") }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw ImageError(path: path, problem: "cannot be read: \(systemMessage(error))")
        }
        guard data.starts(with: [0x89, 0x50, 0x4E, 0x47]) else { return nil }
        let png = try PNGFile.read(data, path: path, as: .mask)
        guard png.channels == 1, !png.isPalette else { return nil }
        var seen = [Bool](repeating: false, count: 256)
        for v in png.samples { seen[Int(min(v, 255))] = true }
        return seen
    }
}

extension MaskRule {
    /// What 255 means in the grey masks of a dataset, decided once from all of them: with at
    /// most two classes and every grey mask holding only 0 and 255, 255 is class 1; otherwise
    /// 255 keeps its meaning (ignore_index, or an error). Returns the rule and a line saying
    /// what was decided, and warns when masks of only 0/255 sit beside masks holding 1 (their
    /// 255 would then be read as ignored, so they would have no foreground).
    public func decided(for maskPaths: [String]) throws -> (rule: MaskRule, note: String?) {
        guard classColors == nil else { return (self, nil) }
        var onlyBlackWhite: [String] = [], others = 0
        for path in maskPaths {
            guard let seen = try MaskFile.greyValues(path: path) else { others += 1; continue }
            let values = seen.indices.filter { seen[$0] }
            if values.contains(255) && values.allSatisfy({ $0 == 0 || $0 == 255 }) { onlyBlackWhite.append(path) } else { others += 1 }
        }
        var rule = self
        if classes <= 2 && !onlyBlackWhite.isEmpty && others == 0 {
            rule.whiteIsForeground = true
            return (rule, "masks: all \(onlyBlackWhite.count) hold only 0 and 255: 255 read as class 1")
        }
        guard !onlyBlackWhite.isEmpty else {
            return (rule, ignoreIndex.map { "masks: value \($0) read as ignored (ignore_index)" })
        }
        let meaning = ignoreIndex == 255 ? "ignored (ignore_index: 255)" : "a value outside the classes"
        return (rule, "masks: 255 read as \(meaning) in every mask\nwarning: \(onlyBlackWhite.count) of \(maskPaths.count) masks hold only 0 and 255 (e.g. \(onlyBlackWhite[0])) while others hold other values: there 255 is \(meaning) too, so those masks have no foreground; if 255 means class 1 in them, write 1 instead")
    }
}
