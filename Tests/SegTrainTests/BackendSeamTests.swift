import XCTest
import Foundation
import SegCore
import SegNN
import SegData
import SegTrain
import SegDist
import SegTestSupport

/// Training, evaluation, prediction and checkpoints on a backend whose memory the host may not
/// touch: everything must go through the backend, and give exactly the CPU's numbers.
final class BackendSeamTests: XCTestCase {
    func squares() -> (Tensor, Tensor) {
        var x = [Float](repeating: 0.1, count: 2 * 16 * 16), y = [Float](repeating: 0, count: 2 * 2 * 16 * 16)
        for b in 0..<2 { for i in 0..<16 { for j in 0..<16 {
            let inside = (3 + b..<13).contains(i) && (4..<12).contains(j)
            if inside { x[(b * 16 + i) * 16 + j] = 0.9 }
            y[((b * 2 + (inside ? 1 : 0)) * 16 + i) * 16 + j] = 1
        } } }
        return (Tensor(shape: [2, 1, 16, 16], storage: x), Tensor(shape: [2, 2, 16, 16], storage: y))
    }

    struct Outcome { var parameters: [Float], statistics: [Float], dice: [Double], probabilities: [Float], classes: [Int32] }

    func train(on backend: Backend?, loss: LossKind, checkpoint: String) throws -> Outcome {
        let (x, y) = squares()
        let model = UNet(inputChannels: 1, classes: 2, width: 2, depth: 2, seed: 3)
        if let backend { model.store.move(to: backend) }
        let trainer = Trainer(model: model, optimizer: try Adam(), loss: loss, schedule: LearningRateSchedule(base: 1e-2))
        let step = try DataParallelStep(trainer: trainer, communicator: LocalCommunicator(), globalBatch: 2, microBatch: 1,
                                        bucketElements: 64)
        for _ in 0..<3 { _ = try step.step { self.slice(x, y, $0) } }
        var config = TrainingConfig()
        config.loss = loss
        config.model = .unet_shallow
        let samples = (0..<2).map { b in
            Sample(image: Array(x.storage[(b * 256)..<((b + 1) * 256)]), labels: (0..<256).map { y.storage[(b * 2 + 1) * 256 + $0] > 0.5 ? 1 : 0 },
                   channels: 1, height: 16, width: 16)
        }
        let scores = try evaluate(InferencePipeline(config: config, models: [model]), samples: samples, batch: 2)
        let prediction = Predictor.predict(model: model, input: slice(x, y, 0..<1).0, activation: loss.outputActivation)
        try Checkpoint.write(to: checkpoint, model: model, optimizer: trainer.optimizer, config: config, step: 3, epoch: 1,
                             dataCursor: 6, bestDice: nil)
        let store = model.store
        return Outcome(parameters: store.backend.download(store.parameters).storage,
                       statistics: store.backend.download(store.buffers).storage, dice: scores.dice,
                       probabilities: prediction.probabilities.storage, classes: prediction.classes)
    }

    func slice(_ x: Tensor, _ y: Tensor, _ r: Range<Int>) -> (Tensor, Tensor) {
        let px = x.count / x.shape[0], py = y.count / y.shape[0]
        return (Tensor(shape: [r.count] + x.shape.dropFirst(), storage: Array(x.storage[(r.lowerBound * px)..<(r.upperBound * px)])),
                Tensor(shape: [r.count] + y.shape.dropFirst(), storage: Array(y.storage[(r.lowerBound * py)..<(r.upperBound * py)])))
    }

    func testADeviceBackendGivesTheCPUsNumbersThroughTheSeamAlone() throws {
        let dir = NSTemporaryDirectory() + "segdist-seam-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for loss in [LossKind.bceDice, .ce] {
            let device = DeviceStandIn()
            let cpu = try train(on: nil, loss: loss, checkpoint: "\(dir)/cpu.safetensors")
            let other = try train(on: device, loss: loss, checkpoint: "\(dir)/device.safetensors")
            XCTAssertGreaterThan(device.calls, 200, "the work ran on the stand-in")
            XCTAssertEqual(other.parameters, cpu.parameters, "\(loss): parameters after 3 steps (micro-batches, Adam)")
            XCTAssertEqual(other.statistics, cpu.statistics, "\(loss): running statistics")
            XCTAssertEqual(other.dice, cpu.dice, "\(loss): evaluation")
            XCTAssertEqual(other.probabilities, cpu.probabilities, "\(loss): prediction")
            XCTAssertEqual(other.classes, cpu.classes, "\(loss): predicted classes")
            // the checkpoint written from device memory holds the same tensors, optimizer state included
            let a = try SafeTensorsFile(path: "\(dir)/cpu.safetensors"), b = try SafeTensorsFile(path: "\(dir)/device.safetensors")
            XCTAssertEqual(Set(a.names), Set(b.names))
            for name in a.names where a.entry(name)?.dtype == .F32 { XCTAssertEqual(try a.tensor(name), try b.tensor(name), name) }
        }
    }
}
