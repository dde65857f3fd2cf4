import XCTest
import SegCore
import SegData
import SegNN
import SegTrain

/// Pixels with no label (a mask's ignore_index) count in no loss, no gradient and no metric:
/// every loss on a batch with ignored pixels equals the same loss on the labelled pixels alone.
final class IgnoredPixelTests: XCTestCase {
    /// Logits (1, 3, 1, 6) and one-hot targets where pixels 1 and 4 are ignored.
    let logits = Tensor(shape: [1, 3, 1, 6], storage: [0.3, -1.2, 2.0, 0.1, -0.4, 0.8, 1.5, 0.2, -0.7, 0.9, 0.0, -2.1, -0.3, 0.6, 0.4, -1.0, 1.1, 0.5])
    let labels: [UInt8] = [0, Sample.ignored, 2, 1, Sample.ignored, 2]
    let kept = [0, 2, 3, 5]

    func oneHot(_ labels: [UInt8], classes: Int) -> Tensor {
        let sample = Sample(image: [Float](repeating: 0, count: labels.count), labels: labels, channels: 1, height: 1, width: labels.count)
        return OneSample(sample: sample, classes: classes).batch(count: 1) { _ in sample }.targets
    }

    struct OneSample: SegmentationDataset {
        let sample: Sample
        let classes: Int
        var channels: Int { 1 }
        var trainingCount: Int { 1 }
        var validationCount: Int { 1 }
        var summary: String { "one sample" }
        var imageSize: (height: Int, width: Int) { (sample.height, sample.width) }
        func trainingSample(epoch: Int, index: Int) -> Sample { sample }
        func validationSample(_ index: Int) -> Sample { sample }
    }

    /// The logits of the labelled pixels only.
    func keptLogits(_ l: Tensor) -> Tensor {
        let (_, c, _, w) = l.nchw
        return Tensor(shape: [1, c, 1, kept.count], storage: (0..<c).flatMap { ch in kept.map { l.storage[ch * w + $0] } })
    }

    func lossAndGradient(_ kind: LossKind, _ l: Tensor, _ t: Tensor, weights: [Float]? = nil) throws -> (Float, [Float]) {
        let tape = Tape(backend: CPUBackend.shared)
        let pass = Pass.training(tape: tape)
        let x = tape.watch(l)
        let loss = try kind.apply(x, oneHot: t, pass, classWeights: weights)
        tape.backward(from: loss)
        return (loss.scalar, tape.gradient(of: x)!.storage)
    }

    func testEveryLossLeavesIgnoredPixelsOut() throws {
        let targets = oneHot(labels, classes: 3)
        XCTAssertEqual(Array(targets.storage[0..<6]), [1, -1, 0, 0, -1, 0], "ignored pixels are -1 in every channel")
        let keptTargets = oneHot(kept.map { labels[$0] }, classes: 3)
        for (kind, weights) in [(LossKind.ce, nil), (.ce, [0.5, 2, 1] as [Float]?), (.bce, nil), (.dice, nil), (.bceDice, nil)] {
            let (full, grad) = try lossAndGradient(kind, logits, targets, weights: weights)
            let (alone, keptGrad) = try lossAndGradient(kind, keptLogits(logits), keptTargets, weights: weights)
            XCTAssertEqual(full, alone, accuracy: 1e-6, "\(kind.rawValue) \(weights ?? [])")
            for ch in 0..<3 {
                for (j, p) in kept.enumerated() { XCTAssertEqual(grad[ch * 6 + p], keptGrad[ch * kept.count + j], accuracy: 1e-6) }
                for p in [1, 4] { XCTAssertEqual(grad[ch * 6 + p], 0, "\(kind.rawValue): no gradient at an ignored pixel") }
            }
        }
        // metrics count labelled pixels only
        let counts = CPUBackend.shared.overlapCounts(logits: logits, targets: targets, activation: .softmax)
        let keptCounts = CPUBackend.shared.overlapCounts(logits: keptLogits(logits), targets: keptTargets, activation: .softmax)
        XCTAssertEqual(counts, keptCounts)
        XCTAssertEqual(classIndices(targets), [0, -1, 2, 1, -1, 2])
        // a batch with every pixel ignored has loss 0 and no gradient, not NaN
        let (none, noGrad) = try lossAndGradient(.bce, logits, oneHot([UInt8](repeating: Sample.ignored, count: 6), classes: 3))
        XCTAssertEqual(none, 0)
        XCTAssertTrue(noGrad.allSatisfy { $0 == 0 })
    }
}
