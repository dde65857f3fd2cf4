import SegCore
import SegData
import SegNN

extension TrainingConfig {
    /// The dataset this config trains on (validation is its held-out or separate part).
    public func makeDataset() throws -> SegmentationDataset {
        let base: SegmentationDataset
        switch data {
        case .shapes, .rgb_shapes: base = syntheticShapes
        case .npy:
            base = try NPYDataset(imagesPath: imagesNPY, masksPath: masksNPY, classes: classes, validationFraction: valFraction,
                                  seed: UInt64(seed) &+ 0x5EED, background: onehotBackground)
        case .folder:
            let folder = try FolderDataset(directory: dataDir, channels: inChannels, classes: classes, size: imageSize,
                                           validationFraction: valFraction, seed: UInt64(seed) &+ 0x5EED,
                                           flipHorizontal: flipHorizontal, flipVertical: flipVertical)
            _ = try folder.check()
            base = folder
        }
        return normalization.map { NormalizedDataset(base, $0) } ?? base
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
