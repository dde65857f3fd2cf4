import Foundation
import SegCore

/// Your own images: `images/` and `masks/` in one directory (or two directories named
/// separately), paired by file stem (`images/cat-01.jpg` with `masks/cat-01.png`), and
/// optionally `val/images/`, `val/masks/` for validation (otherwise a seeded
/// `validationFraction` of the pairs is held out). Images are PNG or JPEG (`ImageFile`),
/// converted to the model's channels and scaled to [0, 1]; masks are PNGs read by `rule`
/// (`MaskFile`), what 255 means decided once for all of them (`check`). Samples keep their
/// file's own size: resizing (`ResizedDataset`) and cropping (`AugmentedDataset`) are the
/// recipe's explicit choices.
public struct FolderDataset: SegmentationDataset {
    public let directory: String
    public let channels: Int
    public private(set) var rule: MaskRule
    /// Each image stretched to [0, 1] instead of divided by 255.
    public let minMax: Bool
    public let training: [(image: String, mask: String)], validation: [(image: String, mask: String)]
    let seed: UInt64
    private let order = EpochOrder()
    /// What `check` found (nil before it ran).
    public private(set) var census: Census?

    public var classes: Int { rule.classes }
    public var trainingCount: Int { training.count }
    public var validationCount: Int { validation.count }
    public var imageSize: (height: Int, width: Int) {
        census?.trainingSizes.first.map { ($0.height, $0.width) } ?? (0, 0)
    }
    public var trainingSizes: Set<ImageSize>? {
        guard let sizes = census?.trainingSizes, sizes.count > 1 else { return nil }
        return Set(sizes)
    }
    public var summary: String {
        var text = "\(directory): \(training.count) training and \(validation.count) validation pairs, \(channels) channel(s), \(classes) classes"
        if let census {
            let sizes = Set(census.trainingSizes + census.validationSizes)
            text += sizes.count == 1 ? ", all \(sizes.first!)" : ", \(sizes.count) sizes (\(sizes.map(\.height).min()!)-\(sizes.map(\.height).max()!) high, \(sizes.map(\.width).min()!)-\(sizes.map(\.width).max()!) wide)"
            let total = Double(max(1, census.classPixels.reduce(0, +) + census.ignoredPixels))
            text += "; pixels per class " + census.classPixels.prefix(max(classes, 2)).enumerated()
                .map { "\($0.offset): \(String(format: "%.1f%%", 100 * Double($0.element) / total))" }.joined(separator: ", ")
            if census.ignoredPixels > 0 { text += String(format: ", ignored %.1f%%", 100 * Double(census.ignoredPixels) / total) }
            if let note = census.maskNote { text += "\n# " + note.replacingOccurrences(of: "\nwarning", with: "\nsegdist: warning") }
            if let first = census.unlabelledMasks.first {
                text += "\nwarning: \(census.unlabelledMasks.count) mask(s) have no labelled pixel (all ignore_index), e.g. \(first): they add nothing to training"
            }
        }
        return text
    }

    static let imageExtensions = ["png", "jpg", "jpeg"]

    /// - Parameters:
    ///   - directory: holds `images/` and `masks/` (and maybe `val/`); or give `imagesDirectory`
    ///     and `masksDirectory` instead.
    public init(directory: String, imagesDirectory: String? = nil, masksDirectory: String? = nil, channels: Int, rule: MaskRule,
                minMax: Bool = false, validationFraction: Float, seed: UInt64) throws {
        self.directory = directory.isEmpty ? (imagesDirectory ?? "") : directory
        self.channels = channels; self.rule = rule; self.minMax = minMax; self.seed = seed
        let all = try Self.pairs(imagesDirectory ?? directory + "/images", masksDirectory ?? directory + "/masks")
        if !directory.isEmpty && FileManager.default.fileExists(atPath: directory + "/val/images") {
            training = all
            validation = try Self.pairs(directory + "/val/images", directory + "/val/masks")
        } else {
            guard all.count >= 2 else { throw ImageError(path: self.directory, problem: "holds \(all.count) image/mask pair(s); training and validation need at least 2") }
            var indices = Array(0..<all.count)
            var rng = SeededGenerator(seed: seed, stream: 0xDA7A)
            fisherYates(&indices, &rng)
            let held = min(all.count - 1, max(1, Int((Double(all.count) * Double(validationFraction)).rounded())))
            validation = indices[..<held].sorted().map { all[$0] }
            training = indices[held...].sorted().map { all[$0] }
        }
        guard !training.isEmpty, !validation.isEmpty else { throw ImageError(path: self.directory, problem: "needs training and validation pairs") }
    }

    /// Images and masks paired by stem; a file without its partner is an error naming it.
    static func pairs(_ imagesDir: String, _ masksDir: String) throws -> [(image: String, mask: String)] {
        func listing(_ dir: String, extensions: [String], what: String) throws -> [String: String] {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw ImageError(path: dir, problem: "no such directory (a folder dataset has images/ and masks/)")
            }
            let names: [String]
            do { names = try FileManager.default.contentsOfDirectory(atPath: dir).filter { !$0.hasPrefix(".") } } catch {
                throw ImageError(path: dir, problem: "cannot be read: \(systemMessage(error))")
            }
            var byStem: [String: String] = [:]
            for name in names {
                let url = URL(fileURLWithPath: name)
                guard extensions.contains(url.pathExtension.lowercased()) else {
                    throw ImageError(path: dir + "/" + name, problem: "is not \(what)")
                }
                let stem = url.deletingPathExtension().lastPathComponent
                if let other = byStem[stem] {
                    throw ImageError(path: dir + "/" + name, problem: "has the same name as \(other); pairs are matched by name, so it must be unique")
                }
                byStem[stem] = dir + "/" + name
            }
            return byStem
        }
        let images = try listing(imagesDir, extensions: imageExtensions, what: "a PNG or JPEG image (.png, .jpg, .jpeg)")
        let masks = try listing(masksDir, extensions: ["png"], what: "a PNG mask (.png)")
        for (stem, path) in images where masks[stem] == nil { throw ImageError(path: path, problem: "has no mask \(masksDir)/\(stem).png") }
        for (stem, path) in masks where images[stem] == nil { throw ImageError(path: path, problem: "has no image \(imagesDir)/\(stem).png (or .jpg)") }
        return images.keys.sorted().map { (images[$0]!, masks[$0]!) }
    }

    public func trainingSample(epoch: Int, index: Int) -> Sample {
        load(training[order.order(epoch: epoch, count: training.count, seed: seed)[index]])
    }

    public func validationSample(_ index: Int) -> Sample { load(validation[index]) }

    /// A sample; an unreadable file traps with its name — the pairs were read once at start
    /// (`check`), so this means the file changed under a running job.
    func load(_ pair: (image: String, mask: String)) -> Sample {
        do { return try read(pair) } catch { fatalError("segdist: error: \(error)") }
    }

    func read(_ pair: (image: String, mask: String)) throws -> Sample {
        let file = try ImageFile(path: pair.image), mask = try MaskFile(path: pair.mask, rule: rule)
        guard mask.width == file.width, mask.height == file.height else {
            throw ImageError(path: pair.mask, problem: "is \(mask.width)x\(mask.height) but its image is \(file.width)x\(file.height)")
        }
        var labels = mask.labels
        if classes == 1 { labels = labels.map { $0 == Sample.ignored ? $0 : $0 != 0 ? 1 : 0 } }
        return Sample(image: InputScaling(minMax: minMax).planes(of: file, channels: channels), labels: labels, channels: channels,
                      height: file.height, width: file.width)
    }

    /// What `check` found.
    public struct Census: Sendable {
        /// Pixels per class (at the files' size), over training and validation masks.
        public var classPixels: [Int]
        /// The distinct sizes of the training and of the validation images, in file order.
        public var trainingSizes: [ImageSize] = [], validationSizes: [ImageSize] = []
        /// What 255 in grey masks was decided to mean (and a warning when masks disagree).
        public var maskNote: String?
        public var ignoredPixels = 0
        /// Masks with no labelled pixel at all.
        public var unlabelledMasks: [String] = []
    }

    /// Reads every pair once: unreadable files, colour masks without class_colors, size
    /// mismatches and values outside the classes are errors naming the file, before any work.
    /// With `decidingWhite`, first decides what 255 means in the grey masks, once for all of
    /// them (`MaskRule.decided(for:)`); otherwise the rule's `whiteIsForeground` stands.
    @discardableResult
    public mutating func check(decidingWhite: Bool = true) throws -> Census {
        var census = Census(classPixels: [Int](repeating: 0, count: max(classes, 2)))
        if decidingWhite {
            let decision = try rule.decided(for: (training + validation).map(\.mask))
            rule = decision.rule
            census.maskNote = decision.note
        } else if rule.classColors == nil {
            census.maskNote = "masks: 255 read as " + (rule.whiteIsForeground ? "class 1" : rule.ignoreIndex == 255 ? "ignored (ignore_index: 255)" : "a value") + " (mask_255 of the recipe)"
        }
        for (i, pair) in (training + validation).enumerated() {
            let sample = try read(pair), labels = sample.labels
            let size = ImageSize(height: sample.height, width: sample.width)
            if i < training.count {
                if !census.trainingSizes.contains(size) { census.trainingSizes.append(size) }
            } else if !census.validationSizes.contains(size) { census.validationSizes.append(size) }
            var labelled = false
            for label in labels {
                if label == Sample.ignored { census.ignoredPixels += 1 } else { census.classPixels[Int(label)] += 1; labelled = true }
            }
            if !labelled { census.unlabelledMasks.append(pair.mask) }
        }
        self.census = census
        return census
    }
}
