import SegCore

/// How file images are resized before the model sees them: not at all (the default: the model
/// sees the pixels at the file's own resolution), to a fixed size, or with the shorter side at
/// N and the aspect kept. Training resizes image and mask; evaluation and prediction resize the
/// image, run the model, and resize the probabilities back, so masks are always scored and
/// written at their own resolution.
public enum ResizeRule: Equatable, Sendable {
    case none
    case to(height: Int, width: Int)
    case shorterSide(Int)

    /// The size an image of `height` x `width` is given to the model at.
    public func size(height: Int, width: Int) -> (height: Int, width: Int) {
        switch self {
        case .none: return (height, width)
        case let .to(h, w): return (h, w)
        case let .shorterSide(n):
            let shorter = min(height, width)
            return (max(1, (height * n + shorter / 2) / shorter), max(1, (width * n + shorter / 2) / shorter))
        }
    }

    /// `none`, `HxW` (e.g. `128x128`) or `shorter:N`.
    public init?(_ text: String) {
        if text == "none" { self = .none; return }
        if text.hasPrefix("shorter:"), let n = Int(text.dropFirst(8)), n >= 1 { self = .shorterSide(n); return }
        let parts = text.lowercased().split(separator: "x", omittingEmptySubsequences: false)
        guard parts.count == 2, let h = Int(parts[0]), let w = Int(parts[1]), h >= 1, w >= 1 else { return nil }
        self = .to(height: h, width: w)
    }

    public var text: String {
        switch self {
        case .none: return "none"
        case let .to(h, w): return "\(h)x\(w)"
        case let .shorterSide(n): return "shorter:\(n)"
        }
    }

    /// The smallest side this rule can give (nil: the file's own).
    public var fixedSize: (height: Int, width: Int)? {
        if case let .to(h, w) = self { return (h, w) }
        return nil
    }
}

/// Bilinear (half-pixel, as PyTorch's `align_corners=False`) resampling of (planes, h, w) values.
public func resizedPlanes(_ values: [Float], planes: Int, height: Int, width: Int, toHeight oh: Int, toWidth ow: Int) -> [Float] {
    guard oh != height || ow != width else { return values }
    var out = [Float](repeating: 0, count: planes * oh * ow)
    values.withUnsafeBufferPointer { src in out.withUnsafeMutableBufferPointer { dst in
        bilinearForward(x: src.baseAddress!, y: dst.baseAddress!, planes: planes, inH: height, inW: width, outH: oh, outW: ow,
                        alignCorners: false)
    } }
    return out
}

/// Nearest-pixel resampling of a mask (labels keep their values).
public func resizedLabels(_ labels: [UInt8], height h: Int, width w: Int, toHeight oh: Int, toWidth ow: Int) -> [UInt8] {
    guard oh != h || ow != w else { return labels }
    var out = [UInt8](repeating: 0, count: oh * ow)
    for y in 0..<oh {
        let sy = min(h - 1, y * h / oh)
        for x in 0..<ow { out[y * ow + x] = labels[sy * w + min(w - 1, x * w / ow)] }
    }
    return out
}

/// A dataset whose training samples are resized by `rule` (validation samples stay as the
/// files are: the evaluation resizes for the model and back).
public struct ResizedDataset: TrainingTransform {
    public let base: SegmentationDataset
    public let rule: ResizeRule

    public init(_ base: SegmentationDataset, _ rule: ResizeRule) { self.base = base; self.rule = rule }

    public var imageSize: (height: Int, width: Int) { rule.size(height: base.imageSize.height, width: base.imageSize.width) }
    public var summary: String { base.summary + "; resized to \(rule == .none ? "-" : rule.text) for the model" }
    public var trainingSizes: Set<ImageSize>? { base.trainingSizes.map { Set($0.map { ImageSize(rule.size(height: $0.height, width: $0.width)) }) } }

    public func trainingSample(epoch: Int, index: Int) -> Sample { resized(base.trainingSample(epoch: epoch, index: index)) }

    func resized(_ s: Sample) -> Sample {
        let (oh, ow) = rule.size(height: s.height, width: s.width)
        guard oh != s.height || ow != s.width else { return s }
        return Sample(image: resizedPlanes(s.image, planes: s.channels, height: s.height, width: s.width, toHeight: oh, toWidth: ow),
                      labels: resizedLabels(s.labels, height: s.height, width: s.width, toHeight: oh, toWidth: ow),
                      channels: s.channels, height: oh, width: ow)
    }
}

/// A height and width, hashable (the sizes a dataset's images come in).
public struct ImageSize: Hashable, Sendable, CustomStringConvertible {
    public let height: Int, width: Int
    public init(height: Int, width: Int) { self.height = height; self.width = width }
    public init(_ size: (height: Int, width: Int)) { height = size.height; width = size.width }
    public var description: String { "\(width)x\(height)" }
}
