import XCTest
import Foundation

/// The `segdist` executable itself: bad input ends with one message naming the problem and
/// exit code 2, before any work.
final class CommandLineTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func segdist(_ args: [String], in dir: String = NSTemporaryDirectory()) throws -> (code: Int32, stdout: String, stderr: String) {
        let binary = Self.root.appendingPathComponent(".build/debug/segdist").path
        guard FileManager.default.isExecutableFile(atPath: binary) else { throw XCTSkip("segdist is not built at \(binary)") }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = args
        p.currentDirectoryURL = URL(fileURLWithPath: dir)
        let out = Pipe(), err = Pipe()
        p.standardOutput = out; p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    func testConfigMistakesExitWithCode2AndOneMessage() throws {
        let dir = NSTemporaryDirectory() + "segdist-cli-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "model: unet\nlr: -1\n".write(toFile: dir + "/bad.cfg", atomically: true, encoding: .utf8)
        let cases: [([String], String)] = [
            (["--set", "lerning_rate=3"], "segdist: error: --set: unknown key 'lerning_rate' (did you mean 'lr'?)\n"),
            (["--config", dir + "/missing.cfg"], "segdist: error: \(dir)/missing.cfg: no such file\n"),
            (["--config", dir + "/bad.cfg"], "segdist: error: \(dir)/bad.cfg:2: lr: must be positive, got -1\n"),
            (["train", "--set", "batch_size=0"], "segdist: error: --set: batch_size: must be in 1...100000, got 0\n"),
            (["eval", "--checkpoint", dir + "/none.safetensors"], "segdist: error: \(dir)/none.safetensors: no such file\n"),
        ]
        for (args, message) in cases {
            let r = try segdist(args, in: dir)
            XCTAssertEqual(r.code, 2, "\(args)")
            XCTAssertEqual(r.stderr, message, "\(args)")
            XCTAssertEqual(r.stdout, "", "\(args)")
        }
        // nothing was started: no run directory appeared
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/runs"))
    }

    func testGenerateThenPredictWritesTheFiles() throws {
        let dir = NSTemporaryDirectory() + "segdist-cli-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tiny = ["--set", "model=unet_shallow", "--set", "width=2", "--set", "image_size=16", "--set", "radius_max=6",
                    "--set", "radius_min=2", "--set", "batch_size=2", "--set", "epochs=1", "--set", "steps_per_epoch=2",
                    "--set", "val_images=2", "--set", "checkpoint_dir=\(dir)/run"]
        XCTAssertEqual(try segdist(["generate", "--count", "2", "--output", dir + "/data"] + tiny).code, 0)
        let train = try segdist(tiny, in: dir)
        XCTAssertEqual(train.code, 0, train.stderr)
        XCTAssertTrue(train.stdout.contains("\"steps\":2"), train.stdout)
        let predict = try segdist(["predict", "--checkpoint", dir + "/run/best.safetensors", "--input", dir + "/data/images/000000.png",
                                   "--mask", dir + "/data/masks/000000.png", "--output", dir + "/pred"])
        XCTAssertEqual(predict.code, 0, predict.stderr)
        for f in ["mask.png", "probabilities.npy", "panel.png"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/pred/" + f), f)
        }
        let npy = try Data(contentsOf: URL(fileURLWithPath: dir + "/pred/probabilities.npy"))
        XCTAssertEqual(npy.count, 128 + 2 * 16 * 16 * 4)
        let eval = try segdist(["eval", "--checkpoint", dir + "/run/best.safetensors"])
        XCTAssertEqual(eval.code, 0, eval.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/run/eval.json"))
    }
}
