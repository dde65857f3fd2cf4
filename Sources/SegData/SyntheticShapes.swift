import Foundation
import SegCore

/// tf_unet's synthetic generator (`image_gen.create_image_and_label`, see
/// shared/reference/shapes.py): `discs` discs of random radius in [radiusMin, radiusMax) and grey
/// level in [1, 255) on a background of 1, centres kept `border` pixels from the edges, Gaussian
/// noise of std `noise`, then min-max normalised to [0, 1]. Label: 0 background, 1 discs, and with
/// `squares`, cnt/2 squares as class 2. `rgb` maps the grey image through tf_unet's colour map.
///
/// Every sample is a pure function of (seed, index), so any machine, and any number of ranks,
/// sees the same images.
public struct SyntheticShapes: SegmentationDataset {
    public var size: Int
    public var discs = 10, radiusMin = 5, radiusMax = 50
    public var border: Int
    public var noise: Float = 20
    public var squares = false
    public var rgb = false
    public var seed: UInt64
    /// Samples per training epoch: epoch e, index i is sample e * trainingCount + i of the stream.
    public var trainingCount = 1 << 20
    public var validationCount = 50

    public init(size: Int, border: Int, seed: UInt64) {
        self.size = size; self.border = border; self.seed = seed
    }

    public var channels: Int { rgb ? 3 : 1 }
    /// One target channel, the foreground (discs), instead of one per class.
    public var foregroundOnly = false
    public var classes: Int { foregroundOnly ? 1 : squares ? 3 : 2 }

    /// Validation samples come from a stream that training indices never reach.
    public static let validationStream: UInt64 = 1 << 62

    /// Image (channels, size, size) in [0, 1] and per-pixel class labels (size, size).
    public func sample(_ index: UInt64) -> (image: [Float], labels: [UInt8]) {
        var rng = SeededGenerator(seed: seed, stream: index)
        let n = size, count = n * n
        var grey = [Float](repeating: 1, count: count)
        var labels = [UInt8](repeating: 0, count: count)
        func centre() -> Int { n - border > border ? rng.integer(border, n - border) : rng.integer(0, n) }
        for _ in 0..<discs {
            let a = centre(), b = centre()
            let r = rng.integer(radiusMin, radiusMax)
            let h = Float(rng.integer(1, 255))
            for y in max(0, a - r)..<min(n, a + r + 1) {
                let dy = y - a
                for x in max(0, b - r)..<min(n, b + r + 1) where dy * dy + (x - b) * (x - b) <= r * r {
                    grey[y * n + x] = h
                    labels[y * n + x] = 1
                }
            }
        }
        if squares {
            for _ in 0..<(discs / 2) {
                let a = rng.integer(0, n), b = rng.integer(0, n)
                let r = rng.integer(radiusMin, radiusMax)
                let h = Float(rng.integer(1, 255))
                for y in a..<min(n, a + r) { for x in b..<min(n, b + r) { grey[y * n + x] = h; labels[y * n + x] = 2 } }
            }
        }
        for i in 0..<count { grey[i] += Float(rng.normal()) * noise }
        let lo = grey.min() ?? 0, hi = grey.max() ?? 1
        let scale: Float = hi > lo ? 1 / (hi - lo) : 0
        for i in 0..<count { grey[i] = (grey[i] - lo) * scale }
        guard rgb else { return (grey, labels) }
        // tf_unet's to_rgb colour map
        var image = [Float](repeating: 0, count: 3 * count)
        for i in 0..<count {
            let v = grey[i]
            image[i] = min(max(4 * (v - 0.25), 0), 1)                   // red
            image[count + i] = min(max(44 * abs(v - 0.5) - 1, 0), 1)   // green
            image[2 * count + i] = min(max(4 * (0.75 - v), 0), 1)       // blue
        }
        return (image, labels)
    }

    public func trainingSample(epoch: Int, index: Int) -> Sample {
        labelled(UInt64(epoch) * UInt64(trainingCount) + UInt64(index))
    }

    public var imageSize: (height: Int, width: Int) { (size, size) }

    public var summary: String {
        "synthetic \(rgb ? "RGB " : "")shapes \(size)x\(size), \(classes) class(es), \(discs) discs\(squares ? " and \(discs / 2) squares" : ""), noise \(noise); \(validationCount) validation images"
    }

    /// Validation images hold whole 8-bit levels (/ 255), as the PNG files `segdist generate`
    /// writes of them: evaluating a sample and predicting its file see the same pixels.
    public func validationSample(_ index: Int) -> Sample {
        var s = labelled(Self.validationStream + UInt64(index))
        for i in s.image.indices { s.image[i] = Float(UInt8((s.image[i] * 255).rounded())) / 255 }
        return s
    }

    func labelled(_ index: UInt64) -> Sample {
        let (image, labels) = sample(index)
        return Sample(image: image, labels: labels, channels: channels, height: size, width: size)
    }
}
