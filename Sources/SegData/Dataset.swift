import SegCore

/// One labelled image: `image` (channels, height, width) in row-major order and `labels`
/// (height, width) holding class indices, or `Sample.ignored` where a pixel has no label.
public struct Sample: Sendable {
    /// The label of a pixel that no loss or metric counts (a mask's `ignore_index`).
    public static let ignored: UInt8 = 255

    public var image: [Float]
    public var labels: [UInt8]
    public var channels: Int, height: Int, width: Int

    public init(image: [Float], labels: [UInt8], channels: Int, height: Int, width: Int) {
        precondition(image.count == channels * height * width && labels.count == height * width,
                     "A sample of \(channels)x\(height)x\(width) needs matching image and label sizes")
        self.image = image; self.labels = labels; self.channels = channels; self.height = height; self.width = width
    }
}

/// What the trainer, the evaluation and the data-parallel step read data from. Every sample is
/// a pure function of (seed, epoch, index) — the seed is the dataset's own — so any number of
/// ranks, and any resume, sees exactly the same data.
public protocol SegmentationDataset: Sendable {
    var channels: Int { get }
    var classes: Int { get }
    /// Training samples per epoch.
    var trainingCount: Int { get }
    var validationCount: Int { get }
    /// Training sample `index` (0..<trainingCount) of `epoch` (0-based).
    func trainingSample(epoch: Int, index: Int) -> Sample
    /// Validation sample `index` (0..<validationCount), the same in every epoch, as its file
    /// holds it: the image's own size, pixels scaled to [0, 1] as training scales them, not
    /// resized, normalised or cropped — the evaluation (`InferencePipeline`) does what
    /// `predict` does to a file, and scores the mask at its own resolution.
    func validationSample(_ index: Int) -> Sample
    /// One line saying what the data is, printed at the start of a run.
    var summary: String { get }
    /// The size of the training samples as the model sees them (the first one's when they vary).
    var imageSize: (height: Int, width: Int) { get }
    /// Every size the training samples come in (nil: one size, `imageSize`).
    var trainingSizes: Set<ImageSize>? { get }
}

/// A dataset that changes only `base`'s training samples (resizing, augmentation,
/// normalisation): validation samples, counts and channels are `base`'s.
public protocol TrainingTransform: SegmentationDataset {
    var base: SegmentationDataset { get }
}

extension TrainingTransform {
    public var channels: Int { base.channels }
    public var classes: Int { base.classes }
    public var trainingCount: Int { base.trainingCount }
    public var validationCount: Int { base.validationCount }
    public var imageSize: (height: Int, width: Int) { base.imageSize }
    public var trainingSizes: Set<ImageSize>? { base.trainingSizes }
    public func validationSample(_ index: Int) -> Sample { base.validationSample(index) }
}

extension SegmentationDataset {
    public var trainingSizes: Set<ImageSize>? { nil }

    /// The training sample at position `cursor` of the endless sequence of epochs.
    public func trainingSample(at cursor: Int) -> Sample {
        trainingSample(epoch: cursor / trainingCount, index: cursor % trainingCount)
    }

    /// Training samples at positions `cursors` as one batch.
    public func trainingBatch(_ cursors: [Int]) -> (images: Tensor, targets: Tensor) {
        batch(count: cursors.count) { trainingSample(at: cursors[$0]) }
    }

    /// Validation samples `indices` as one batch.
    public func validationBatch(_ indices: [Int]) -> (images: Tensor, targets: Tensor) {
        batch(count: indices.count) { validationSample(indices[$0]) }
    }

    /// Images (N, channels, H, W) and one-hot targets (N, classes, H, W) of `count` samples of
    /// one size, made in parallel. With one class the target is the foreground: labels other
    /// than 0. Ignored pixels get `ignoredTarget` (-1) in every channel.
    public func batch(count: Int, _ make: (Int) -> Sample) -> (images: Tensor, targets: Tensor) {
        precondition(count > 0, "A batch needs at least one sample")
        let first = make(0)
        let (h, w, c, k) = (first.height, first.width, channels, classes)
        let n = h * w
        var images = Tensor(uninitialized: [count, c, h, w])
        var targets = Tensor(zeros: [count, k, h, w])
        images.mutPtr { ip in targets.mutPtr { tp in
            Parallel.forEach(count) { b in
                let s = b == 0 ? first : make(b)
                precondition(s.channels == c && s.height == h && s.width == w,
                             "Sample \(b) of a batch is \(s.channels)x\(s.height)x\(s.width), the first is \(c)x\(h)x\(w)")
                (ip + b * c * n).update(from: s.image, count: c * n)
                let t = tp + b * k * n
                for p in 0..<n {
                    let label = s.labels[p]
                    if label == Sample.ignored {
                        for c in 0..<k { t[c * n + p] = ignoredTarget }
                    } else if k == 1 {
                        if label != 0 { t[p] = 1 }
                    } else if Int(label) < k {
                        t[Int(label) * n + p] = 1
                    }
                }
            }
        } }
        return (images, targets)
    }
}
