/// Per-channel (x - mean) / std on images already scaled to [0, 1]: what torchvision's
/// pretrained models expect (ImageNet's mean and std). The same values apply in training,
/// evaluation and prediction.
public struct Normalization: Sendable, Equatable {
    public var mean: [Float], std: [Float]

    public init(mean: [Float], std: [Float]) {
        precondition(mean.count == std.count && std.allSatisfy { $0 > 0 }, "Normalization needs positive std and one mean per std")
        self.mean = mean; self.std = std
    }

    /// `image` is (channels, pixels) in row-major order.
    public func apply(to image: inout [Float], channels: Int) {
        precondition(channels == mean.count, "Normalization of \(mean.count) channel(s) applied to \(channels)")
        let pixels = image.count / max(channels, 1)
        for c in 0..<channels {
            let m = mean[c], s = 1 / std[c]
            for i in (c * pixels)..<((c + 1) * pixels) { image[i] = (image[i] - m) * s }
        }
    }
}

/// A dataset whose training images are normalised on the way out (validation samples stay in
/// [0, 1]: the evaluation normalises them as `predict` normalises a file).
public struct NormalizedDataset: TrainingTransform {
    public let base: SegmentationDataset
    public let normalization: Normalization

    public init(_ base: SegmentationDataset, _ normalization: Normalization) { self.base = base; self.normalization = normalization }

    public var summary: String { base.summary + "; normalised by mean \(normalization.mean), std \(normalization.std)" }

    public func trainingSample(epoch: Int, index: Int) -> Sample { normalized(base.trainingSample(epoch: epoch, index: index)) }

    func normalized(_ s: Sample) -> Sample {
        var s = s
        normalization.apply(to: &s.image, channels: s.channels)
        return s
    }
}
