import XCTest
import Foundation
import SegCore
import SegNN
@testable import SegTrain

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
        XCTAssertEqual(files, [".lock", "config.cfg", "metrics.jsonl", "loss.png", "best.safetensors",
                               "step-000004.safetensors", "step-000008.safetensors"])
        XCTAssertEqual(try String(contentsOfFile: config.checkpointDir + "/config.cfg", encoding: .utf8),
                       "# run: \(run.runID)\n" + config.rendered())
        let lines = try String(contentsOfFile: config.checkpointDir + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        let records = try lines.map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        let losses = records.filter { $0["kind"] as? String == "train" }.map { $0["loss"] as! Double }
        XCTAssertEqual(losses.count, 8)
        XCTAssertTrue(records.filter { $0["kind"] as? String == "train" }.allSatisfy { ($0["data_wait_s"] as? Double ?? -1) >= 0 },
                      "each logged step says how long it waited for its (prefetched) data")
        XCTAssertLessThan(losses.last!, losses.first!)
        let evals = records.filter { $0["kind"] as? String == "eval" }
        XCTAssertEqual(evals.map { $0["step"] as! Int }, [4, 8])
        XCTAssertEqual(evals.last?["images"] as? Int, 3)
        XCTAssertEqual(summary.finalDice ?? -1, evals.last?["foreground_dice"] as? Double ?? -2, accuracy: 1e-12)
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

    // MARK: A run directory belongs to one run

    func testANewRunNeverOverwritesAnEarlierOne() throws {
        let config = try tinyConfig("own")
        let first = try TrainingRun(config: config)
        try first.run()
        let before = try FileManager.default.contentsOfDirectory(atPath: config.checkpointDir).sorted()
        let best = try Data(contentsOf: URL(fileURLWithPath: config.checkpointDir + "/best.safetensors"))
        let metrics = try Data(contentsOf: URL(fileURLWithPath: config.checkpointDir + "/metrics.jsonl"))
        XCTAssertThrowsError(try TrainingRun(config: config)) {
            XCTAssertTrue("\($0)".contains("already holds a run") && "\($0)".contains("--resume \(config.checkpointDir)"), "\($0)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: config.checkpointDir).sorted(), before)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: config.checkpointDir + "/best.safetensors")), best)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: config.checkpointDir + "/metrics.jsonl")), metrics)
        // a checkpoint of another run may not be resumed into this directory
        var other = config
        other.checkpointDir = dir + "/other"
        let otherRun = try TrainingRun(config: other)
        let stopped = try otherRun.run(stopAfter: 2)
        var into = other
        into.checkpointDir = config.checkpointDir
        // (resumed into another directory it is a branch, and that directory is taken)
        XCTAssertThrowsError(try TrainingRun(config: into, resume: try Checkpoint(path: stopped.lastCheckpoint!))) {
            XCTAssertTrue("\($0)".contains("already holds a run"), "\($0)")
        }
    }

    func testResumeFromADirectoryTakesItsNewestCheckpointByStep() throws {
        var config = try tinyConfig("dir")
        config.keepCheckpoints = 5
        config.checkpointEvery = 1
        let run = try TrainingRun(config: config)
        try run.run(stopAfter: 3)
        // a leftover temporary and a misleadingly named copy do not fool it
        try Data("x".utf8).write(to: URL(fileURLWithPath: config.checkpointDir + "/.step-000002.safetensors.tmp-4242"))
        try FileManager.default.copyItem(atPath: config.checkpointDir + "/step-000001.safetensors",
                                        toPath: config.checkpointDir + "/step-999999.safetensors")
        let newest = try Checkpoint.resolve(config.checkpointDir)
        XCTAssertEqual(newest.step, 3)
        XCTAssertEqual(newest.runID, run.runID)
        let resumed = try TrainingRun(config: config, resume: newest)
        XCTAssertEqual(resumed.runID, run.runID, "a resumed run keeps its id")
        try resumed.run()
        XCTAssertEqual(resumed.step, 8)
        XCTAssertFalse(FileManager.default.fileExists(atPath: config.checkpointDir + "/.step-000002.safetensors.tmp-4242"),
                       "leftover temporaries are removed")
        XCTAssertThrowsError(try Checkpoint.resolve(dir + "/nothing-here-\(UUID())"))
    }

    func testACheckpointWithNonFiniteWeightsIsRefused() throws {
        let config = try tinyConfig("nan")
        let run = try TrainingRun(config: config)
        let summary = try run.run(stopAfter: 1)
        let file = try SafeTensorsFile(path: summary.lastCheckpoint!)
        var writer = SafeTensorsWriter(metadata: file.metadata)
        for e in file.entries {
            if e.dtype == .F32 {
                var t = try file.tensor(e.name)
                if e.name == "down1.mpconv.1.conv.0.weight" { var v = t.storage; v[3] = .nan; t.storage = v }
                writer.add(e.name, t)
            } else {
                writer.add(e.name, int64s: try file.int64s(e.name), shape: e.shape)
            }
        }
        try writer.write(to: dir + "/nan.safetensors")
        let model = config.makeModel()
        XCTAssertThrowsError(try Checkpoint(path: dir + "/nan.safetensors").restore(model: model, optimizer: nil)) {
            XCTAssertTrue("\($0)".contains("'down1.mpconv.1.conv.0.weight' holds nan"), "\($0)")
        }
    }

    // MARK: A full disk

    /// On a 96 KiB tmpfs the run fills the disk: metrics stop with a warning and keep only whole
    /// lines, the checkpoint that does not fit ends the run with the file named, and the
    /// checkpoint written before it stays valid.
    func testAFullDiskEndsTheRunWithTheFileNamedAndEarlierResultsIntact() throws {
        let mountPoint = dir + "/small"
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        let mount = Process()
        mount.executableURL = URL(fileURLWithPath: "/bin/mount")
        mount.arguments = ["-t", "tmpfs", "-o", "size=96k", "tmpfs", mountPoint]
        mount.standardError = FileHandle.nullDevice
        try mount.run(); mount.waitUntilExit()
        guard mount.terminationStatus == 0 else {
            throw XCTSkip("cannot mount a tmpfs here (needs root)")
        }
        defer {
            let umount = Process()
            umount.executableURL = URL(fileURLWithPath: "/bin/umount")
            umount.arguments = [mountPoint]
            try? umount.run(); umount.waitUntilExit()
        }
        var config = try tinyConfig("unused")
        config.checkpointDir = mountPoint + "/run"
        config.checkpointEvery = 1
        config.keepCheckpoints = 100
        config.epochs = 20
        let run = try TrainingRun(config: config)
        XCTAssertThrowsError(try run.run()) { XCTAssertTrue("\($0)".contains("No space left on device") && ("\($0)".contains("step-") || "\($0)".contains("best.safetensors")), "\($0)") }
        XCTAssertGreaterThan(run.step, 1)
        // a metrics line that does not fit is dropped whole, with a warning, and nothing throws
        let metricsBefore = (try? String(contentsOfFile: config.checkpointDir + "/metrics.jsonl", encoding: .utf8)) ?? ""
        XCTAssertNoThrow(try run.recorder.append(["kind": "test", "step": 999, "padding": String(repeating: "x", count: 64_000)]))
        XCTAssertEqual((try? String(contentsOfFile: config.checkpointDir + "/metrics.jsonl", encoding: .utf8)) ?? "", metricsBefore)
        // every metrics line is whole JSON, and every checkpoint left there loads
        let text = (try? String(contentsOfFile: config.checkpointDir + "/metrics.jsonl", encoding: .utf8)) ?? ""
        for line in text.split(separator: "\n") { XCTAssertNoThrow(try JSONSerialization.jsonObject(with: Data(line.utf8)), String(line)) }
        let checkpoints = try FileManager.default.contentsOfDirectory(atPath: config.checkpointDir).filter { $0.hasPrefix("step-") }
        XCTAssertFalse(checkpoints.isEmpty)
        for name in checkpoints {
            XCTAssertNoThrow(try Checkpoint(path: config.checkpointDir + "/" + name).restore(model: config.makeModel(), optimizer: nil), name)
        }
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: config.checkpointDir).contains { $0.contains(".tmp-") },
                       "no temporary left behind")
    }

    // MARK: Memory

    /// A step that cannot fit is refused before any work, with the estimate and what to change;
    /// estimates grow with the pixels of a pass.
    func testAStepThatCannotFitIsRefusedWithTheEstimate() throws {
        var config = try tinyConfig("huge")
        config.imageSize = 8192
        config.batchSize = 64
        try config.validate(source: "test")
        XCTAssertThrowsError(try TrainingRun(config: config)) {
            XCTAssertTrue("\($0)".contains("a training step needs about") && "\($0)".contains("lower micro_batch"), "\($0)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: config.checkpointDir), "nothing was written")
        let small = try MemoryEstimate.training(config: try tinyConfig("s"), imagesPerPass: 2, height: 256, width: 256)
        let large = try MemoryEstimate.training(config: try tinyConfig("l"), imagesPerPass: 2, height: 512, width: 512)
        XCTAssertEqual(Double(large.activationBytes) / Double(small.activationBytes), 4, accuracy: 0.1)
        XCTAssertEqual(small.modelBytes, large.modelBytes)
        let model = try tinyConfig("p").makeModel()
        let p1 = MemoryEstimate.prediction(model: model, architecture: .unet_shallow, height: 1000, width: 1000)
        let p2 = MemoryEstimate.prediction(model: model, architecture: .unet_shallow, height: 2000, width: 2000)
        XCTAssertEqual(Double(p2.totalBytes) / Double(p1.totalBytes), 4, accuracy: 0.2)
        XCTAssertNotNil(MemoryEstimate.availableBytes)
    }
}
