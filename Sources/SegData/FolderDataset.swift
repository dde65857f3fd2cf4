import Foundation
import SegCore

/// Your own images: `images/` and `masks/` in one directory, paired by file stem
/// (`images/cat-01.png` with `masks/cat-01.png`), and optionally `val/images/`, `val/masks/`
/// for validation (otherwise a seeded `validationFraction` of the pairs is held out). Images are
/// PNG (grey, RGB, palette, 16-bit or with alpha, which is dropped), converted to the model's
/// channels and scaled to [0, 1]; masks are grey PNGs of class indices, or 0/255 for two
/// classes. Every sample is resized to `size` x `size` (bilinear for images, nearest for masks)
/// and, in training, flipped as asked, with the flips a pure function of (seed, epoch, index).
public struct FolderDataset: SegmentationDataset {
    public let directory: String
    public let channels: Int, classes: Int, size: Int
    public let flipHorizontal: Bool, flipVertical: Bool
    public let training: [(image: String, mask: String)], validation: [(image: String, mask: String)]
    let seed: UInt64
    private let order = EpochOrder()

    public var trainingCount: Int { training.count }
    public var validationCount: Int { validation.count }
    public var imageSize: (height: Int, width: Int) { (size, size) }
    public var summary: String {
        "\(directory): \(training.count) training and \(validation.count) validation pairs, resized to \(size)x\(size), \(channels) channel(s), \(classes) classes" +
            (flipHorizontal || flipVertical ? ", random \([flipHorizontal ? "horizontal" : nil, flipVertical ? "vertical" : nil].compactMap { $0 }.joined(separator: " and ")) flips" : "")
    }

    public init(directory: String, channels: Int, classes: Int, size: Int, validationFraction: Float, seed: UInt64,
                flipHorizontal: Bool = false, flipVertical: Bool = false) throws {
        self.directory = directory; self.channels = channels; self.classes = classes; self.size = size
        self.flipHorizontal = flipHorizontal; self.flipVertical = flipVertical; self.seed = seed
        let all = try Self.pairs(directory + "/images", directory + "/masks")
        if FileManager.default.fileExists(atPath: directory + "/val/images") {
            training = all
            validation = try Self.pairs(directory + "/val/images", directory + "/val/masks")
        } else {
            guard all.count >= 2 else { throw ImageError(path: directory, problem: "holds \(all.count) image/mask pair(s); training and validation need at least 2") }
            var indices = Array(0..<all.count)
            var rng = SeededGenerator(seed: seed, stream: 0xDA7A)
            fisherYates(&indices, &rng)
            let held = min(all.count - 1, max(1, Int((Double(all.count) * Double(validationFraction)).rounded())))
            validation = indices[..<held].sorted().map { all[$0] }
            training = indices[held...].sorted().map { all[$0] }
        }
        guard !training.isEmpty, !validation.isEmpty else { throw ImageError(path: directory, problem: "needs training and validation pairs") }
    }

    /// Images and masks paired by stem; a file without its partner is an error naming it.
    static func pairs(_ imagesDir: String, _ masksDir: String) throws -> [(image: String, mask: String)] {
        func listing(_ dir: String) throws -> [String: String] {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw ImageError(path: dir, problem: "no such directory (a folder dataset has images/ and masks/)")
            }
            let names = try FileManager.default.contentsOfDirectory(atPath: dir).filter { !$0.hasPrefix(".") }
            var byStem: [String: String] = [:]
            for name in names {
                guard name.lowercased().hasSuffix(".png") else {
                    throw ImageError(path: dir + "/" + name, problem: "is not a PNG (folder datasets read PNG files)")
                }
                byStem[String(name.dropLast(4))] = dir + "/" + name
            }
            return byStem
        }
        let images = try listing(imagesDir), masks = try listing(masksDir)
        for (stem, path) in images where masks[stem] == nil { throw ImageError(path: path, problem: "has no mask \(masksDir)/\(stem).png") }
        for (stem, path) in masks where images[stem] == nil { throw ImageError(path: path, problem: "has no image \(imagesDir)/\(stem).png") }
        return images.keys.sorted().map { (images[$0]!, masks[$0]!) }
    }

    public func trainingSample(epoch: Int, index: Int) -> Sample {
        let pair = training[order.order(epoch: epoch, count: training.count, seed: seed)[index]]
        var rng = SeededGenerator(seed: seed ^ 0xF11F, stream: UInt64(epoch) << 32 | UInt64(index))
        let h = flipHorizontal && rng.nextUnit() < 0.5, v = flipVertical && rng.nextUnit() < 0.5
        return load(pair, flipH: h, flipV: v)
    }

    public func validationSample(_ index: Int) -> Sample { load(validation[index], flipH: false, flipV: false) }

    /// A sample; an unreadable file traps with its name — the pairs were read once at start
    /// (`check`), so this means the file changed under a running job.
    func load(_ pair: (image: String, mask: String), flipH: Bool, flipV: Bool) -> Sample {
        do { return try read(pair, flipH: flipH, flipV: flipV) } catch { fatalError("segdist: error: \(error)") }
    }

    func read(_ pair: (image: String, mask: String), flipH: Bool, flipV: Bool) throws -> Sample {
        let png = try PNGImage(path: pair.image), maskPNG = try PNGImage(path: pair.mask)
        guard maskPNG.channels == 1 else {
            throw ImageError(path: pair.mask, problem: "is a colour image; masks are grey PNGs of class indices (or 0/255)")
        }
        guard maskPNG.width == png.width, maskPNG.height == png.height else {
            throw ImageError(path: pair.mask, problem: "is \(maskPNG.width)x\(maskPNG.height) but its image is \(png.width)x\(png.height)")
        }
        // masks: class indices, or 0/255 for two classes
        var labels = maskPNG.pixels
        if classes <= 2 && labels.contains(255) && labels.allSatisfy({ $0 == 0 || $0 == 255 }) {
            labels = labels.map { $0 == 255 ? 1 : 0 }
        }
        if let bad = labels.first(where: { Int($0) >= max(classes, 2) }) {
            throw ImageError(path: pair.mask, problem: "holds the value \(bad), outside the \(classes) classes 0..<\(max(classes, 2))")
        }
        // image: the model's channels, [0, 1], resized bilinearly; the mask by nearest pixel
        let (w, h) = (png.width, png.height), n = w * h
        var planes = [Float](repeating: 0, count: channels * n)
        for p in 0..<n {
            for c in 0..<channels {
                let v: Float = png.channels == channels ? Float(png.pixels[p * png.channels + c])
                    : png.channels == 1 ? Float(png.pixels[p])
                    : 0.299 * Float(png.pixels[p * 3]) + 0.587 * Float(png.pixels[p * 3 + 1]) + 0.114 * Float(png.pixels[p * 3 + 2])
                planes[c * n + p] = v / 255
            }
        }
        var image = [Float](repeating: 0, count: channels * size * size)
        planes.withUnsafeBufferPointer { src in image.withUnsafeMutableBufferPointer { dst in
            bilinearForward(x: src.baseAddress!, y: dst.baseAddress!, planes: channels, inH: h, inW: w, outH: size, outW: size,
                            alignCorners: false)
        } }
        var resized = [UInt8](repeating: 0, count: size * size)
        for y in 0..<size {
            let sy = min(h - 1, y * h / size)
            for x in 0..<size { resized[y * size + x] = labels[sy * w + min(w - 1, x * w / size)] }
        }
        if flipH || flipV {
            func flipped<T>(_ a: [T], planes: Int) -> [T] {
                var out = a
                for p in 0..<planes { for y in 0..<size { for x in 0..<size {
                    out[(p * size + y) * size + x] = a[(p * size + (flipV ? size - 1 - y : y)) * size + (flipH ? size - 1 - x : x)]
                } } }
                return out
            }
            image = flipped(image, planes: channels)
            resized = flipped(resized, planes: 1)
        }
        if classes == 1 { resized = resized.map { $0 != 0 ? 1 : 0 } }
        return Sample(image: image, labels: resized, channels: channels, height: size, width: size)
    }

    /// Reads every pair once: unreadable files, colour masks, size mismatches and classes out
    /// of range are errors naming the file, before any work. Returns pixel counts per class.
    public func check() throws -> [Int] {
        var counts = [Int](repeating: 0, count: max(classes, 2))
        for pair in training + validation {
            for label in try read(pair, flipH: false, flipV: false).labels { counts[Int(label)] += 1 }
        }
        return counts
    }
}
