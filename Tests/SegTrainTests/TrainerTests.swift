import XCTest
import SegCore
import SegNN
import SegTrain
import SegDist

extension Trainer {
    /// One step on a fixed batch in this process.
    @discardableResult
    func step(images: Tensor, targets: Tensor) throws -> Float {
        let parallel = try DataParallelStep(trainer: self, communicator: LocalCommunicator(), globalBatch: images.shape[0],
                                            microBatch: 0, bucketElements: 1 << 20)
        return try parallel.step { _ in (images, targets) }
    }
}

final class TrainerTests: XCTestCase {
    /// A tiny batch: a bright square on a dark background, labelled as two one-hot channels.
    func squares(batch: Int, size: Int) -> (Tensor, Tensor) {
        var x = Tensor(zeros: [batch, 1, size, size]), y = Tensor(zeros: [batch, 2, size, size])
        for b in 0..<batch {
            let lo = 2 + b % 3, hi = size - 3
            for i in 0..<size { for j in 0..<size {
                let inside = (lo..<hi).contains(i) && (lo..<hi).contains(j)
                x.storage[(b * size + i) * size + j] = inside ? 0.9 : 0.1
                y.storage[((b * 2 + 1) * size + i) * size + j] = inside ? 1 : 0
                y.storage[((b * 2) * size + i) * size + j] = inside ? 0 : 1
            } }
        }
        return (x, y)
    }

    func testEveryLossDrivesTrainingDownOnAFixedBatch() throws {
        let (x, y) = squares(batch: 2, size: 16)
        for loss in LossKind.allCases {
            let model = UNet(inputChannels: 1, classes: 2, width: 2, depth: 2, seed: 1)
            let trainer = Trainer(model: model, optimizer: try Adam(), loss: loss, schedule: LearningRateSchedule(base: 1e-2))
            let first = try trainer.step(images: x, targets: y)
            var last = first
            for _ in 0..<15 { last = try trainer.step(images: x, targets: y) }
            XCTAssertLessThan(last, first * 0.8, "\(loss.rawValue): \(first) -> \(last)")
            XCTAssertEqual(trainer.optimizer.stepCount, 16)
        }
    }

    func testSameSeedSameTrajectory() throws {
        let (x, y) = squares(batch: 2, size: 16)
        func run() throws -> [Float] {
            let model = UNet(inputChannels: 1, classes: 2, width: 2, depth: 2, seed: 5)
            let trainer = Trainer(model: model, optimizer: try SGD(momentum: 0.9, weightDecay: 5e-4), loss: .bce,
                                  schedule: LearningRateSchedule(base: 1e-2))
            for _ in 0..<3 { try trainer.step(images: x, targets: y) }
            return model.store.parameters.storage
        }
        XCTAssertEqual(try run(), try run())
    }

    func testClassIndicesFromOneHot() {
        let t = Tensor(shape: [1, 3, 1, 2], storage: [0, 0, 1, 0, 0, 1])
        XCTAssertEqual(classIndices(t), [1, 2])
    }
}
