import XCTest
import Foundation
import SegCore
import SegNN
import SegTrain

final class TrainingRunTests: XCTestCase {
    var dir: String!
    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "segdist-run-\(UUID().uuidString)"
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func tinyConfig(_ sub: String) throws -> TrainingConfig {
        var c = TrainingConfig()
        for o in ["model=unet_shallow", "width=2", "image_size=16", "discs=3", "radius_min=2", "radius_max=6",
                  "batch_size=2", "epochs=2", "steps_per_epoch=4", "val_images=3", "log_every=1", "keep_checkpoints=2",
                  "optimizer=adam", "lr=0.01", "checkpoint_dir=\(dir!)/\(sub)"] { try c.override(o) }
        try c.validate(source: "test")
        return c
    }

    func parameters(_ run: TrainingRun) -> [Float] {
        run.model.store.parameters.storage + run.model.store.buffers.storage
    }

    func testAShortRunWritesItsOutputsAndTheLossFalls() throws {
        let config = try tinyConfig("a")
        let run = try TrainingRun(config: config)
        let summary = try run.run()
        XCTAssertEqual(summary.steps, 8)
        let files = Set(try FileManager.default.contentsOfDirectory(atPath: config.checkpointDir))
        XCTAssertEqual(files, ["config.cfg", "metrics.jsonl", "loss.png", "best.safetensors",
                               "step-000004.safetensors", "step-000008.safetensors"])
        XCTAssertEqual(try String(contentsOfFile: config.checkpointDir + "/config.cfg", encoding: .utf8), config.rendered())
        let lines = try String(contentsOfFile: config.checkpointDir + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        let records = try lines.map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        let losses = records.filter { $0["kind"] as? String == "train" }.map { $0["loss"] as! Double }
        XCTAssertEqual(losses.count, 8)
        XCTAssertLessThan(losses.last!, losses.first!)
        let evals = records.filter { $0["kind"] as? String == "eval" }
        XCTAssertEqual(evals.map { $0["step"] as! Int }, [4, 8])
        XCTAssertEqual(evals.last?["images"] as? Int, 3)
        XCTAssertEqual(summary.finalDice, evals.last?["foreground_dice"] as? Double)
    }

    func testResumingGivesTheSameWeightsAsOneRun() throws {
        let straight = try TrainingRun(config: try tinyConfig("straight"))
        try straight.run()

        let config = try tinyConfig("split")
        let first = try TrainingRun(config: config)
        let stopped = try first.run(stopAfter: 3)
        XCTAssertEqual(stopped.steps, 3)
        let checkpoint = try Checkpoint(path: stopped.lastCheckpoint!)
        XCTAssertEqual(checkpoint.step, 3)
        XCTAssertEqual(checkpoint.dataCursor, 6)
        let resumed = try TrainingRun(config: config, resume: checkpoint)
        try resumed.run()
        XCTAssertEqual(resumed.step, 8)
        XCTAssertEqual(parameters(resumed), parameters(straight), "k + n steps in two runs equal k + n in one")
        XCTAssertEqual(resumed.model.store.counters, straight.model.store.counters)
        // the metrics file holds each step once
        let lines = try String(contentsOfFile: config.checkpointDir + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        let steps = lines.compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]).flatMap { $0 } }
            .filter { $0["kind"] as? String == "train" }.map { $0["step"] as! Int }
        XCTAssertEqual(steps, Array(1...8))
    }

    func testCheckpointsUseTheReferenceNamesAndRestoreExactly() throws {
        let config = try tinyConfig("c")
        let run = try TrainingRun(config: config)
        let summary = try run.run(stopAfter: 2)
        let file = try SafeTensorsFile(path: summary.lastCheckpoint!)
        let names = Set(file.names)
        XCTAssertTrue(names.contains("inc.conv.conv.0.weight"))
        XCTAssertTrue(names.contains("down2.mpconv.1.conv.4.running_var"))
        XCTAssertTrue(names.contains("outc.conv.bias"))
        XCTAssertEqual(file.entry("inc.conv.conv.1.num_batches_tracked")?.dtype, .I64)
        XCTAssertEqual(try file.int64s("inc.conv.conv.1.num_batches_tracked"), [2])
        XCTAssertEqual(Set(names.filter { $0.hasPrefix("optimizer.") }), ["optimizer.exp_avg", "optimizer.exp_avg_sq"])
        XCTAssertEqual(file.metadata["config"], config.rendered())
        XCTAssertEqual(file.metadata["step"], "2")

        let fresh = config.makeModel()
        try Checkpoint(path: summary.lastCheckpoint!).restore(model: fresh, optimizer: nil)
        XCTAssertEqual(fresh.store.floatStateDict().map(\.tensor), run.model.store.floatStateDict().map(\.tensor))

        // a checkpoint of another architecture is refused, naming the tensor
        let deeper = ModelArchitecture.unet.make(inputChannels: 1, classes: 2, width: 2, seed: 0)
        XCTAssertThrowsError(try Checkpoint(path: summary.lastCheckpoint!).restore(model: deeper, optimizer: nil)) {
            XCTAssertTrue("\($0)".contains("tensor 'down2.mpconv.1.conv.0.weight' has shape [4, 4, 3, 3], the model expects [8, 4, 3, 3]"), "\($0)")
        }
        let wider = ModelArchitecture.unet_shallow.make(inputChannels: 1, classes: 2, width: 3, seed: 0)
        XCTAssertThrowsError(try Checkpoint(path: summary.lastCheckpoint!).restore(model: wider, optimizer: nil)) {
            XCTAssertTrue("\($0)".contains("'inc.conv.conv.0.weight'"), "\($0)")
        }
    }
}
