import SegCore
import SegData
import SegNN

extension TrainingConfig {
    /// The dataset this config trains on (validation is its held-out or separate part).
    /// The recipe's data as training reads it: the dataset, augmented (training samples) and
    /// normalised. `auto` values still in the recipe are measured first (see `prepareData`).
    public func makeDataset() throws -> SegmentationDataset {
        var resolved = self
        return try resolved.prepareData()
    }

    /// `makeDataset`, measuring `normalize_*: auto` (per-channel mean and std of the training
    /// images) and `class_weights: auto` (balanced: labelled pixels / (classes x pixels of the
    /// class)) over the training set and writing the numbers into this config — so the
    /// effective config, and every checkpoint, carries them and predict uses the same.
    public mutating func prepareData() throws -> SegmentationDataset {
        let base: SegmentationDataset
        var classPixels: [Int]?
        switch data {
        case .shapes, .rgb_shapes: base = syntheticShapes
        case .npy:
            base = try NPYDataset(imagesPath: imagesNPY, masksPath: masksNPY, classes: classes, validationFraction: valFraction,
                                  seed: UInt64(seed) &+ 0x5EED, background: onehotBackground)
        case .folder:
            var folder = try FolderDataset(directory: dataDir, imagesDirectory: imagesDir.isEmpty ? nil : imagesDir,
                                           masksDirectory: masksDir.isEmpty ? nil : masksDir, channels: inChannels, rule: maskRule,
                                           minMax: inputScaling == .minMax, validationFraction: valFraction, seed: UInt64(seed) &+ 0x5EED)
            classPixels = try folder.check(decidingWhite: whiteIsForeground == nil).classPixels
            whiteIsForeground = folder.rule.whiteIsForeground
            base = folder
        }
        if normalizeAuto {
            let (mean, std) = DatasetStatistics.channelMeanAndStd(base)
            normalizeMean = mean; normalizeStd = std.map { max($0, 1e-6) }; normalizeAuto = false
        }
        if classWeightsAuto {
            let counts = classPixels ?? DatasetStatistics.classPixels(base)
            let total = Float(counts.reduce(0, +))
            classWeights = counts.prefix(classes).map { $0 > 0 ? total / (Float(classes) * Float($0)) : 0 }
            classWeightsAuto = false
        }
        var dataset = base
        if resize != .none { dataset = ResizedDataset(dataset, resize) }
        if !augmentation.isIdentity { dataset = AugmentedDataset(dataset, augmentation, seed: UInt64(seed) &+ 0xA06) }
        try checkTrainingSizes(dataset)
        return normalization.map { NormalizedDataset(dataset, $0) } ?? dataset
    }

    /// A batch needs one size: images of several sizes train on crops (or resized to one size);
    /// training samples must be large enough for the model's downsamplings.
    func checkTrainingSizes(_ data: SegmentationDataset) throws {
        let source = data.summary.split(separator: ":").first.map(String.init) ?? "the data"
        if let sizes = data.trainingSizes, sizes.count > 1 {
            let examples = sizes.prefix(3).map(\.description).joined(separator: ", ")
            let smallest = sizes.map { min($0.height, $0.width) }.min()!
            throw ConfigError(source: source, line: nil, key: "crop",
                              problem: "the training images come in \(sizes.count) sizes (\(examples)\(sizes.count > 3 ? ", ..." : "")), but a batch needs one size: set crop: N (random N x N patches; smaller images padded, their padding ignored; e.g. crop: \(max(1 << model.downsamplings, smallest / 32 * 32))) or resize: HxW")
        }
        let (h, w) = data.imageSize, factor = 1 << model.downsamplings
        if min(h, w) < factor {
            throw ConfigError(source: source, line: nil, key: augmentation.crop == nil ? "resize" : "crop",
                              problem: "the training samples are \(w)x\(h), but \(model.rawValue) halves the image \(model.downsamplings) times and needs at least \(factor)x\(factor): set crop: \(factor) (smaller images padded) or resize")
        }
    }

    /// How mask files become labels (folder data).
    public var maskRule: MaskRule {
        var rule = MaskRule(classes: classes, ignoreIndex: ignoreIndex, classColors: classColors, ignoreColor: ignoreColor)
        rule.whiteIsForeground = whiteIsForeground ?? false
        return rule
    }

    /// The per-channel normalisation of the inputs (mean 0 / std 1 where only one is given).
    public var normalization: Normalization? {
        guard normalizeMean != nil || normalizeStd != nil else { return nil }
        return Normalization(mean: normalizeMean ?? .init(repeating: 0, count: inChannels),
                             std: normalizeStd ?? .init(repeating: 1, count: inChannels))
    }

    /// How training saw 8-bit pixels: `input_scaling`, or with `auto` the grey synthetic images
    /// min-max stretched and everything else divided by 255.
    public var inputScaling: InputScaling { inputScalingChoice ?? (data == .shapes ? .minMax : .divideBy255) }

    /// The synthetic generator behind `dataset`, with the recipe's sizes.
    public var syntheticShapes: SyntheticShapes {
        var g = SyntheticShapes(size: imageSize, border: effectiveBorder, seed: UInt64(seed) &+ 0x5EED)
        g.discs = discs; g.radiusMin = radiusMin; g.radiusMax = radiusMax; g.noise = noise
        g.squares = squares; g.rgb = data == .rgb_shapes; g.foregroundOnly = classes == 1
        // one epoch = steps_per_epoch global batches, so sample positions run on across epochs
        g.trainingCount = stepsPerEpoch * batchSize
        g.validationCount = valImages
        return g
    }
}


/// Scores `pipeline` on validation samples (as `validationSample` gives them: each at its own
/// size): runs of consecutive samples of one size go through together, at most `batch` at a
/// time; each image's predicted classes are counted against its mask.
public func evaluate(_ pipeline: InferencePipeline, samples: [Sample], batch: Int) throws -> SegmentationScores {
    try evaluate(pipeline, count: samples.count, batch: batch) { samples[$0] }
}

/// The same over validation samples `indices` of `data`, read a group at a time (a folder's
/// images at their own size may not all fit in memory at once).
public func evaluate(_ pipeline: InferencePipeline, data: SegmentationDataset, indices: Range<Int>, batch: Int) throws -> SegmentationScores {
    try evaluate(pipeline, count: indices.count, batch: batch) { data.validationSample(indices.lowerBound + $0) }
}

func evaluate(_ pipeline: InferencePipeline, count: Int, batch: Int, sample: (Int) -> Sample) throws -> SegmentationScores {
    var scores = SegmentationScores(classes: pipeline.classes)
    var next: Sample? = count > 0 ? sample(0) : nil, i = 0
    while let first = next {
        var group = [first]
        i += 1
        next = nil
        while i < count {
            let s = sample(i)
            guard group.count < max(1, batch), s.height == first.height, s.width == first.width else { next = s; break }
            group.append(s)
            i += 1
        }
        let predictions = try pipeline.predict(group.map(\.image), height: first.height, width: first.width)
        for (s, prediction) in zip(group, predictions) { scores.add(predicted: prediction.classes, labels: s.labels) }
    }
    return scores
}
