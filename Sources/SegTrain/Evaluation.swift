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
                                           size: imageSize, validationFraction: valFraction, seed: UInt64(seed) &+ 0x5EED)
            classPixels = try folder.check().classPixels
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
        if !augmentation.isIdentity { dataset = AugmentedDataset(dataset, augmentation, seed: UInt64(seed) &+ 0xA06) }
        return normalization.map { NormalizedDataset(dataset, $0) } ?? dataset
    }

    /// How mask files become labels (folder data).
    public var maskRule: MaskRule {
        MaskRule(classes: classes, ignoreIndex: ignoreIndex, classColors: classColors, ignoreColor: ignoreColor)
    }

    /// The per-channel normalisation of the inputs (mean 0 / std 1 where only one is given).
    public var normalization: Normalization? {
        guard normalizeMean != nil || normalizeStd != nil else { return nil }
        return Normalization(mean: normalizeMean ?? .init(repeating: 0, count: inChannels),
                             std: normalizeStd ?? .init(repeating: 1, count: inChannels))
    }

    /// How training saw 8-bit pixels: the grey synthetic images are min-max stretched, RGB ones
    /// and uint8 arrays divided by 255.
    public var inputScaling: InputScaling { data == .shapes ? .minMax : .divideBy255 }

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

/// Validation samples `indices` as batches of at most `batch` images (images, one-hot targets).
public func validationBatches(data: SegmentationDataset, indices: Range<Int>, batch: Int) -> [(Tensor, Tensor)] {
    stride(from: indices.lowerBound, to: indices.upperBound, by: max(1, batch)).map {
        data.validationBatch(Array($0..<min(indices.upperBound, $0 + batch)))
    }
}

/// Scores the model in evaluation mode (batch-norm running statistics, nothing recorded) on
/// prepared batches, on the model's backend.
public func evaluate(model: SegmentationModel, batches: [(Tensor, Tensor)], activation: OutputActivation) -> SegmentationScores {
    let backend = model.store.backend
    let pass = Pass.inference(backend: backend)
    var scores = SegmentationScores(classes: model.classes)
    for (images, targets) in batches {
        let logits = model.forward(backend.upload(images), pass)
        scores.add(logits: logits, targets: backend.upload(targets), activation: activation, backend: backend)
    }
    return scores
}
