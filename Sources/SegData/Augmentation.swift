import Foundation
import SegCore

/// Training-time augmentation, every draw a pure function of (seed, epoch, index) — so any rank
/// count and any resume see the same augmented samples. Geometry (scale, rotation, random crop
/// or placement) is one affine resampling: bilinear for the image (zero outside), nearest for
/// the mask, whose pixels from outside the source are ignored (`Sample.ignored`) rather than
/// called background. Then flips, then brightness/contrast and Gaussian noise on the image
/// (in [0, 1] units, before any normalisation). Validation samples are left alone: they are
/// evaluated whole, at their own size.
public struct Augmentation: Sendable, Equatable {
    public var flipHorizontal = false, flipVertical = false
    /// Random zoom factor range (1...1: none).
    public var scaleMin: Float = 1, scaleMax: Float = 1
    /// Largest rotation either way, in degrees.
    public var rotation: Float = 0
    /// Largest brightness shift either way (added) and contrast change (factor 1 ± contrast).
    public var brightness: Float = 0, contrast: Float = 0
    /// Standard deviation of the Gaussian noise added to every image value.
    public var noise: Float = 0
    /// Output side of the random training crops (images smaller than it are padded, the mask
    /// ignored there); nil: the input's size.
    public var crop: Int?

    public init() {}

    public var isIdentity: Bool { self == Augmentation() }

    var geometric: Bool { scaleMin != 1 || scaleMax != 1 || rotation != 0 }

    public var summary: String {
        var parts: [String] = []
        if flipHorizontal { parts.append("horizontal flips") }
        if flipVertical { parts.append("vertical flips") }
        if geometric { parts.append("scale \(scaleMin)-\(scaleMax), rotation ±\(rotation)°") }
        if let crop { parts.append("crops of \(crop)x\(crop)") }
        if brightness > 0 || contrast > 0 { parts.append("brightness ±\(brightness), contrast ±\(contrast)") }
        if noise > 0 { parts.append("noise σ \(noise)") }
        return parts.joined(separator: ", ")
    }

    /// Training sample `index` of `epoch`, augmented.
    public func training(_ s: Sample, seed: UInt64, epoch: Int, index: Int) -> Sample {
        var rng = SeededGenerator(seed: seed ^ 0xA065_0A7E, stream: UInt64(epoch) << 32 | UInt64(index))
        let flipH = flipHorizontal && rng.nextUnit() < 0.5, flipV = flipVertical && rng.nextUnit() < 0.5
        let scale = scaleMax > scaleMin ? rng.uniform(scaleMin, scaleMax) : scaleMin
        let angle = rotation > 0 ? rng.uniform(-rotation, rotation) * .pi / 180 : 0
        let (oh, ow) = (crop ?? s.height, crop ?? s.width)
        // the crop's place: anywhere the scaled image covers the output, or the output the image
        let ry = abs(scale * Float(s.height) - Float(oh)) / 2, rx = abs(scale * Float(s.width) - Float(ow)) / 2
        let ty = ry > 0 ? rng.uniform(-ry, ry) : 0, tx = rx > 0 ? rng.uniform(-rx, rx) : 0
        let gain = contrast > 0 ? 1 + rng.uniform(-contrast, contrast) : 1
        let shift = brightness > 0 ? rng.uniform(-brightness, brightness) : 0
        var out = resample(s, height: oh, width: ow, scale: scale, angle: angle, ty: ty, tx: tx)
        if flipH || flipV { out = flipped(out, horizontal: flipH, vertical: flipV) }
        if gain != 1 || shift != 0 { for i in out.image.indices { out.image[i] = out.image[i] * gain + shift } }
        if noise > 0 { for i in out.image.indices { out.image[i] += noise * Float(rng.normal()) } }
        return out
    }

    /// Output pixel centre p maps to source point c_in + R(-angle) (p - c_out - t) / scale.
    /// Without scale and rotation the offset is rounded to whole pixels: a plain copy, no blur.
    func resample(_ s: Sample, height oh: Int, width ow: Int, scale: Float, angle: Float, ty: Float, tx: Float) -> Sample {
        let (h, w, c) = (s.height, s.width, s.channels)
        var image = [Float](repeating: 0, count: c * oh * ow)
        var labels = [UInt8](repeating: Sample.ignored, count: oh * ow)
        if scale == 1 && angle == 0 {
            let y0 = (h - oh) / 2 + Int(ty.rounded()), x0 = (w - ow) / 2 + Int(tx.rounded())
            for y in 0..<oh where (0..<h).contains(y + y0) {
                for x in 0..<ow where (0..<w).contains(x + x0) {
                    labels[y * ow + x] = s.labels[(y + y0) * w + x + x0]
                    for k in 0..<c { image[(k * oh + y) * ow + x] = s.image[(k * h + y + y0) * w + x + x0] }
                }
            }
            return Sample(image: image, labels: labels, channels: c, height: oh, width: ow)
        }
        let cosA = cos(angle) / scale, sinA = sin(angle) / scale
        for y in 0..<oh {
            for x in 0..<ow {
                let u = Float(x) + 0.5 - Float(ow) / 2 - tx, v = Float(y) + 0.5 - Float(oh) / 2 - ty
                let sx = cosA * u + sinA * v + Float(w) / 2 - 0.5, sy = -sinA * u + cosA * v + Float(h) / 2 - 0.5
                let nx = Int(sx.rounded()), ny = Int(sy.rounded())
                if (0..<w).contains(nx) && (0..<h).contains(ny) { labels[y * ow + x] = s.labels[ny * w + nx] }
                let x0 = Int(sx.rounded(.down)), y0 = Int(sy.rounded(.down))
                let fx = sx - Float(x0), fy = sy - Float(y0)
                for k in 0..<c {
                    func at(_ yy: Int, _ xx: Int) -> Float {
                        (0..<h).contains(yy) && (0..<w).contains(xx) ? s.image[(k * h + yy) * w + xx] : 0
                    }
                    image[(k * oh + y) * ow + x] = (at(y0, x0) * (1 - fx) + at(y0, x0 + 1) * fx) * (1 - fy)
                        + (at(y0 + 1, x0) * (1 - fx) + at(y0 + 1, x0 + 1) * fx) * fy
                }
            }
        }
        return Sample(image: image, labels: labels, channels: c, height: oh, width: ow)
    }

    func flipped(_ s: Sample, horizontal: Bool, vertical: Bool) -> Sample {
        var out = s
        let (h, w) = (s.height, s.width)
        for y in 0..<h {
            let sy = vertical ? h - 1 - y : y
            for x in 0..<w {
                let sx = horizontal ? w - 1 - x : x
                out.labels[y * w + x] = s.labels[sy * w + sx]
                for k in 0..<s.channels { out.image[(k * h + y) * w + x] = s.image[(k * h + sy) * w + sx] }
            }
        }
        return out
    }
}

/// A dataset whose training samples are augmented (validation samples pass unchanged).
public struct AugmentedDataset: TrainingTransform {
    public let base: SegmentationDataset
    public let augmentation: Augmentation
    let seed: UInt64

    public init(_ base: SegmentationDataset, _ augmentation: Augmentation, seed: UInt64) {
        self.base = base; self.augmentation = augmentation; self.seed = seed
    }

    public var imageSize: (height: Int, width: Int) { augmentation.crop.map { ($0, $0) } ?? base.imageSize }
    public var summary: String { base.summary + "; augmented: " + augmentation.summary }
    public var trainingSizes: Set<ImageSize>? { augmentation.crop == nil ? base.trainingSizes : nil }

    public func trainingSample(epoch: Int, index: Int) -> Sample {
        augmentation.training(base.trainingSample(epoch: epoch, index: index), seed: seed, epoch: epoch, index: index)
    }
}
