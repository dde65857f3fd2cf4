import XCTest
import SegCore
import SegTrain

final class MetricsTests: XCTestCase {
    func testTheLabsFormulaOnHandCases() {
        // identical masks
        XCTAssertEqual(SegmentationScores.dice(intersection: 10, predicted: 10, truth: 10), 1)
        XCTAssertEqual(SegmentationScores.jaccard(intersection: 10, predicted: 10, truth: 10), 1)
        // two empty masks score 1
        XCTAssertEqual(SegmentationScores.dice(intersection: 0, predicted: 0, truth: 0), 1)
        XCTAssertEqual(SegmentationScores.jaccard(intersection: 0, predicted: 0, truth: 0), 1)
        // disjoint masks score (almost) 0
        XCTAssertEqual(SegmentationScores.dice(intersection: 0, predicted: 5, truth: 5), 1e-4 / (10 + 1e-4))
        XCTAssertEqual(SegmentationScores.jaccard(intersection: 0, predicted: 5, truth: 5), 1e-4 / (10 + 1e-4))
        // half overlap: |A| = |B| = 4, |A∩B| = 2
        XCTAssertEqual(SegmentationScores.dice(intersection: 2, predicted: 4, truth: 4), (4 + 1e-4) / (8 + 1e-4))
        XCTAssertEqual(SegmentationScores.jaccard(intersection: 2, predicted: 4, truth: 4), (2 + 1e-4) / (6 + 1e-4))
    }

    func testScoresFromLogitsAverageOverImages() {
        // two 1x2 images, 2 classes, one-hot targets; logits > 0 predict a class (sigmoid rule)
        let targets = Tensor(shape: [2, 2, 1, 2], storage: [1, 0, 0, 1, /* image 2 */ 1, 1, 0, 0])
        let logits = Tensor(shape: [2, 2, 1, 2], storage: [3, -3, -3, 3, /* image 2: predicts foreground everywhere */ -1, -1, 1, 1])
        var s = SegmentationScores(classes: 2)
        s.add(logits: logits, targets: targets, activation: .sigmoid)
        XCTAssertEqual(s.images, 2)
        // image 1 perfect (1, 1); image 2: background empty prediction vs 2 pixels, foreground 2 predicted vs none
        let miss = SegmentationScores.dice(intersection: 0, predicted: 0, truth: 2)
        XCTAssertEqual(s.dice[0], (1 + miss) / 2, accuracy: 1e-12)
        XCTAssertEqual(s.dice[1], (1 + miss) / 2, accuracy: 1e-12)
        XCTAssertEqual(s.foregroundDice, s.dice[1])
        var argmax = SegmentationScores(classes: 2)
        argmax.add(logits: logits, targets: targets, activation: .softmax)
        XCTAssertEqual(argmax.dice, s.dice)
        var merged = SegmentationScores(classes: 2)
        merged.merge(s); merged.merge(s)
        XCTAssertEqual(merged.dice, s.dice)
        XCTAssertEqual(merged.images, 4)
        // pooled over both images' pixels: foreground |A∩B| = 1, |A| = 1 + 2, |B| = 1 + 0
        let pooled: Double = (2 + 1e-4) / (4 + 1e-4)
        XCTAssertEqual(s.pooledForegroundDice, pooled, accuracy: 1e-12)
        XCTAssertEqual(merged.pixelCounts, s.pixelCounts.map { 2 * $0 })
        XCTAssertEqual(SegmentationScores(classes: 2, sums: merged.sums), merged, "the sums rank reduction adds round-trip")
    }

    func testASingleChannelIsTheForeground() {
        // one image 1x4, one sigmoid channel: predicted {0, 1}, truth {1, 2}
        let logits = Tensor(shape: [1, 1, 1, 4], storage: [2, 2, -2, -2])
        let targets = Tensor(shape: [1, 1, 1, 4], storage: [0, 1, 1, 0])
        var s = SegmentationScores(classes: 1)
        s.add(logits: logits, targets: targets, activation: .sigmoid)
        XCTAssertEqual(s.foregroundDice, SegmentationScores.dice(intersection: 1, predicted: 2, truth: 2), accuracy: 1e-12)
        XCTAssertEqual(s.foregroundJaccard, s.jaccard[0])
    }
}
