import SegCore
import SegData
import SegNN

extension TrainingConfig {
    /// The generator this config trains on; validation uses its separate stream.
    public var dataset: SyntheticShapes {
        var g = SyntheticShapes(size: imageSize, border: effectiveBorder, seed: UInt64(seed) &+ 0x5EED)
        g.discs = discs; g.radiusMin = radiusMin; g.radiusMax = radiusMax; g.noise = noise
        g.squares = squares; g.rgb = data == .rgb_shapes
        return g
    }

    /// Indices of the validation images: a fixed set disjoint from every training index.
    public var validationIndices: [UInt64] { (0..<UInt64(valImages)).map { SyntheticShapes.validationStream + $0 } }
}

/// The given samples as batches of at most `batch` images (images, one-hot targets).
public func makeBatches(data: SyntheticShapes, indices: [UInt64], batch: Int) -> [(Tensor, Tensor)] {
    stride(from: 0, to: indices.count, by: max(1, batch)).map {
        data.batch(Array(indices[$0..<min(indices.count, $0 + batch)]))
    }
}

/// Scores the model (in evaluation mode: batch-norm running statistics) on prepared batches.
public func evaluate(model: SegmentationModel, batches: [(Tensor, Tensor)], rule: PredictionRule) -> SegmentationScores {
    var scores = SegmentationScores(classes: model.classes)
    for (images, targets) in batches {
        scores.add(logits: model.forward(images, training: false), targets: targets, rule: rule)
    }
    return scores
}
