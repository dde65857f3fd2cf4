import Foundation
import SegCore

/// A dataset in two NumPy arrays: images (N, H, W) or (N, H, W, C) — uint8 scaled to [0, 1], or
/// floats as they are — and masks (N, H, W) of class indices or (N, H, W, K) one-hot (the
/// M2NIST Kaggle layout: `combined.npy`, `segmented.npy`, whose last channel is the background).
/// Both are memory-mapped. A seeded `validationFraction` of the samples is held out; training
/// visits the rest in a seeded order that changes every epoch: sample (epoch, index) is a pure
/// function of (seed, epoch, index).
public struct NPYDataset: SegmentationDataset {
    /// Which one-hot channel is the background, which segdist numbers class 0.
    public enum Background: String, CaseIterable, Sendable { case first, last }

    public let images: NPYArray, masks: NPYArray
    public let channels: Int, classes: Int, height: Int, width: Int
    public let background: Background
    let oneHot: Bool
    let imageScale: Double
    let training: [Int], validation: [Int]
    let seed: UInt64
    private let order = EpochOrder()

    public var trainingCount: Int { training.count }
    public var validationCount: Int { validation.count }

    public init(imagesPath: String, masksPath: String, classes: Int, validationFraction: Float, seed: UInt64,
                background: Background = .last) throws {
        let images = try NPYArray(path: imagesPath), masks = try NPYArray(path: masksPath)
        func fail(_ path: String, _ problem: String) -> ImageError { ImageError(path: path, problem: problem) }
        guard images.shape.count == 3 || images.shape.count == 4 else {
            throw fail(imagesPath, "has shape \(images.shape); images must be (N, H, W) or (N, H, W, C)")
        }
        guard masks.shape.count == 3 || masks.shape.count == 4 else {
            throw fail(masksPath, "has shape \(masks.shape); masks must be (N, H, W) class indices or (N, H, W, K) one-hot")
        }
        guard masks.shape[0] == images.shape[0], masks.shape[1] == images.shape[1], masks.shape[2] == images.shape[2] else {
            throw fail(masksPath, "has shape \(masks.shape) but the images are \(images.shape): N, H and W must agree")
        }
        let n = images.shape[0]
        guard n >= 2 else { throw fail(imagesPath, "holds \(n) image(s); training and validation need at least 2") }
        self.images = images; self.masks = masks
        height = images.shape[1]; width = images.shape[2]
        channels = images.shape.count == 4 ? images.shape[3] : 1
        oneHot = masks.shape.count == 4
        if oneHot && masks.shape[3] != classes {
            throw fail(masksPath, "is one-hot over \(masks.shape[3]) classes but the config has classes: \(classes)")
        }
        self.classes = classes; self.background = background; self.seed = seed
        imageScale = images.dtype == .u1 ? 1.0 / 255 : 1
        // a seeded split: the first `validation` of a fixed shuffle are held out
        var all = Array(0..<n)
        var rng = SeededGenerator(seed: seed, stream: 0xDA7A)
        fisherYates(&all, &rng)
        let held = min(n - 1, max(1, Int((Double(n) * Double(validationFraction)).rounded())))
        validation = Array(all[..<held]).sorted()
        training = Array(all[held...]).sorted()
    }

    public var imageSize: (height: Int, width: Int) { (height, width) }

    public var summary: String {
        "\(images.path) \(images.shape) \(images.dtype.rawValue), \(masks.path) \(masks.shape) " +
            (oneHot ? "one-hot (background \(background.rawValue))" : "class indices") +
            ": \(training.count) training, \(validation.count) validation samples of \(height)x\(width), \(channels) channel(s), \(classes) classes"
    }

    public func trainingSample(epoch: Int, index: Int) -> Sample {
        load(training[order.order(epoch: epoch, count: training.count, seed: seed)[index]])
    }

    public func validationSample(_ index: Int) -> Sample { load(validation[index]) }

    /// Sample `i` of the arrays.
    public func load(_ i: Int) -> Sample {
        let p = height * width
        var image = [Float](repeating: 0, count: channels * p)
        let base = i * p * channels
        for q in 0..<p {
            for c in 0..<channels { image[c * p + q] = Float(images.value(base + q * channels + c) * imageScale) }
        }
        var labels = [UInt8](repeating: 0, count: p)
        if oneHot {
            let k = classes, mbase = i * p * k
            for q in 0..<p {
                var best = 0, bestValue = masks.value(mbase + q * k)
                for c in 1..<k { let v = masks.value(mbase + q * k + c); if v > bestValue { best = c; bestValue = v } }
                labels[q] = UInt8(background == .last ? (best + 1) % k : best)
            }
        } else {
            for q in 0..<p { labels[q] = UInt8(clamping: Int(masks.value(i * p + q))) }
        }
        return Sample(image: image, labels: labels, channels: channels, height: height, width: width)
    }

    /// Checks every index mask holds classes below `classes`; returns per-class pixel counts.
    public func classFrequencies() throws -> [Int] {
        var counts = [Int](repeating: 0, count: classes)
        for i in 0..<images.shape[0] {
            for label in load(i).labels {
                guard Int(label) < classes else {
                    throw ImageError(path: masks.path, problem: "mask \(i) holds class \(label), outside 0..<\(classes) (classes: \(classes))")
                }
                counts[Int(label)] += 1
            }
        }
        return counts
    }
}

/// The training order of one epoch (a seeded shuffle), kept for the epoch in progress: batches
/// ask for it from several threads.
final class EpochOrder: @unchecked Sendable {
    private let lock = NSLock()
    private var epoch = -1
    private var cached: [Int] = []

    func order(epoch: Int, count: Int, seed: UInt64) -> [Int] {
        lock.lock(); defer { lock.unlock() }
        if epoch != self.epoch || cached.count != count {
            var o = Array(0..<count)
            var rng = SeededGenerator(seed: seed, stream: 0xE90C_0000 &+ UInt64(epoch))
            fisherYates(&o, &rng)
            self.epoch = epoch; cached = o
        }
        return cached
    }
}

/// Fisher-Yates with our generator: the same order on every machine and Swift version
/// (the standard library does not promise its shuffle algorithm).
func fisherYates(_ a: inout [Int], _ rng: inout SeededGenerator) {
    guard a.count > 1 else { return }
    for i in stride(from: a.count - 1, to: 0, by: -1) { a.swapAt(i, rng.integer(0, i + 1)) }
}
