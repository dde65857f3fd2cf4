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

/// Scores the model (in evaluation mode: batch-norm running statistics) on the given samples,
/// in chunks of `batch` images.
public func evaluate(model: SegmentationModel, data: SyntheticShapes, indices: [UInt64], batch: Int,
                     rule: PredictionRule) -> SegmentationScores {
    var scores = SegmentationScores(classes: model.classes)
    var start = 0
    while start < indices.count {
        let chunk = Array(indices[start..<min(indices.count, start + batch)])
        let (images, targets) = data.batch(chunk)
        scores.add(logits: model.forward(images, training: false), targets: targets, rule: rule)
        start += chunk.count
    }
    return scores
}
