import XCTest
import SegCore

final class OptimizerAndScheduleTests: XCTestCase {
    func testHyperparametersAreCheckedUpFront() {
        XCTAssertThrowsError(try SGD(momentum: -1)) { XCTAssertTrue("\($0)".contains("momentum")) }
        XCTAssertThrowsError(try SGD(weightDecay: -1)) { XCTAssertTrue("\($0)".contains("weight_decay")) }
        XCTAssertThrowsError(try Adam(beta1: 1)) { XCTAssertTrue("\($0)".contains("betas")) }
    }

    func testPlainSGDWithoutMomentum() throws {
        let sgd = try SGD()
        let p = Tensor(shape: [2], storage: [1, 2]), g = Tensor(shape: [2], storage: [0.5, -1])
        sgd.step(parameters: p, gradients: g, learningRate: 0.1)
        XCTAssertEqual(p.storage, [0.95, 2.1])
    }

    func testSchedules() {
        let constant = LearningRateSchedule(base: 0.1)
        XCTAssertEqual(constant.learningRate(at: 1000), 0.1)
        let step = LearningRateSchedule(base: 1, kind: .step(stepSize: 10, gamma: 0.5))
        XCTAssertEqual(step.learningRate(at: 9), 1)
        XCTAssertEqual(step.learningRate(at: 10), 0.5)
        XCTAssertEqual(step.learningRate(at: 25), 0.25)
        let cosine = LearningRateSchedule(base: 1, kind: .cosine(totalSteps: 100, minLR: 0.1), warmupSteps: 4)
        XCTAssertEqual(cosine.learningRate(at: 0), 0.25, accuracy: 1e-7)   // warm-up: 1/4, 2/4, 3/4, 4/4
        XCTAssertEqual(cosine.learningRate(at: 3), 1, accuracy: 1e-7)
        XCTAssertEqual(cosine.learningRate(at: 4), 1, accuracy: 1e-7)      // cosine starts at the base
        XCTAssertEqual(cosine.learningRate(at: 54), 0.55, accuracy: 1e-6)  // half way
        XCTAssertEqual(cosine.learningRate(at: 104), 0.1, accuracy: 1e-7)
        XCTAssertEqual(cosine.learningRate(at: 500), 0.1, accuracy: 1e-7)
    }

    func testSeededGeneratorIsReproducibleAndStreamsDiffer() {
        var a = SeededGenerator(seed: 5), b = SeededGenerator(seed: 5), c = SeededGenerator(seed: 5, stream: 1)
        let xa = (0..<5).map { _ in a.next() }, xb = (0..<5).map { _ in b.next() }, xc = (0..<5).map { _ in c.next() }
        XCTAssertEqual(xa, xb)
        XCTAssertNotEqual(xa, xc)
        var u = SeededGenerator(seed: 1)
        let values = (0..<10_000).map { _ in u.nextUnit() }
        XCTAssertTrue(values.allSatisfy { $0 >= 0 && $0 < 1 })
        XCTAssertEqual(Double(values.reduce(0, +)) / 10_000, 0.5, accuracy: 0.02)
    }
}
