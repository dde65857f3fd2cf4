import XCTest
import Foundation
import SegCore
import SegNN
import SegTrain
import SegData
import SegTestSupport

/// The `segdist` executable itself: bad input ends with one message naming the problem and
/// exit code 2, before any work.
final class CommandLineTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func segdist(_ args: [String], in dir: String = NSTemporaryDirectory()) throws -> (code: Int32, stdout: String, stderr: String) {
        try runSegdist(args, in: dir)
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
        XCTAssertTrue(eval.stderr.contains("wrote \(dir)/run/eval.json"), eval.stderr)

        // The ONNX export of the checkpoint gives predict's probabilities on the same file.
        let export = try segdist(["export", "--checkpoint", dir + "/run/best.safetensors", "--output", dir + "/model.onnx"])
        XCTAssertEqual(export.code, 0, export.stderr)
        XCTAssertTrue(export.stdout.contains("wrote \(dir)/model.onnx: unet_shallow") && export.stdout.contains("any height and width"),
                      export.stdout)
        guard Python.canImport("onnxruntime") else {
            throw XCTSkip("segdist export vs predict did not run through onnxruntime: python3 with onnxruntime is not installed here")
        }
        let png = try PNGImage(path: dir + "/data/images/000000.png")
        let (c, n) = (png.channels, png.width * png.height)   // interleaved pixels to planes
        let planes = (0..<(c * n)).map { Float(png.pixels[($0 % n) * c + $0 / n]) }
        try writeNPY(Tensor(shape: [1, c, png.height, png.width], storage: planes), to: dir + "/pixels.npy")
        let ran = Python.run([Python.fixture("run_onnx.py"), dir + "/model.onnx", dir + "/pixels.npy", dir + "/logits.npy", dir + "/onnx.npy"])
        XCTAssertEqual(ran.status, 0, ran.output)
        let mine = try NPYArray(path: dir + "/pred/probabilities.npy"), theirs = try NPYArray(path: dir + "/onnx.npy")
        XCTAssertEqual(theirs.shape, [1] + mine.shape)
        let d = zip(mine.values(0..<mine.count), theirs.values(0..<theirs.count)).map { abs($0 - $1) }.max() ?? .infinity
        XCTAssertLessThanOrEqual(d, 1e-4, "onnxruntime's probabilities vs segdist predict's")
    }
}

extension CommandLineTests {
    /// A plain state_dict (what converting a torchvision checkpoint gives) runs in predict and
    /// eval with the model the recipe names; a wrong model is refused with the missing names.
    func testPredictAndEvalTakePlainWeights() throws {
        let dir = NSTemporaryDirectory() + "segdist-cli-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let recipe = ["--set", "model=fcn_resnet50", "--set", "backbone_depth=18", "--set", "width=4", "--set", "in_channels=3",
                      "--set", "data=rgb_shapes", "--set", "loss=ce", "--set", "image_size=32", "--set", "radius_min=2",
                      "--set", "radius_max=8", "--set", "val_images=2", "--set", "batch_size=2"]
        // a state_dict with the model's names only: segdist's own model tensors, no metadata
        let model = SegNN.ModelArchitecture.fcn_resnet50.make(inputChannels: 3, classes: 2, width: 4, seed: 3, backboneDepth: 18)
        var writer = SafeTensorsWriter(metadata: [:])
        for (name, t) in model.store.floatStateDict() { writer.add(name, t) }
        try writer.write(to: dir + "/weights.safetensors")
        XCTAssertEqual(try segdist(["generate", "--count", "1", "--output", dir + "/data"] + recipe).code, 0)
        let predict = try segdist(["predict", "--weights", dir + "/weights.safetensors", "--input", dir + "/data/images/000000.png",
                                   "--output", dir + "/pred"] + recipe)
        XCTAssertEqual(predict.code, 0, predict.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/pred/mask.png"))
        let eval = try segdist(["eval", "--weights", dir + "/weights.safetensors", "--output", dir + "/eval.json"] + recipe)
        XCTAssertEqual(eval.code, 0, eval.stderr)
        let wrong = try segdist(["eval", "--weights", dir + "/weights.safetensors"])
        XCTAssertEqual(wrong.code, 2)
        XCTAssertTrue(wrong.stderr.contains("lacks") && wrong.stderr.contains("inc.conv.conv.0.weight"), wrong.stderr)
        // predict holds the model to its weights, not to the training data: 5 classes on RGB shapes
        let five = SegNN.ModelArchitecture.fcn_resnet50.make(inputChannels: 3, classes: 5, width: 4, seed: 3, backboneDepth: 18)
        var fiveWriter = SafeTensorsWriter(metadata: [:])
        for (name, t) in five.store.floatStateDict() { fiveWriter.add(name, t) }
        try fiveWriter.write(to: dir + "/five.safetensors")
        let normalised = ["--set", "classes=5", "--set", "normalize_mean=0.485, 0.456, 0.406", "--set", "normalize_std=0.229, 0.224, 0.225"]
        let predictFive = try segdist(["predict", "--weights", dir + "/five.safetensors", "--input", dir + "/data/images/000000.png",
                                       "--output", dir + "/pred5"] + recipe + normalised)
        XCTAssertEqual(predictFive.code, 0, predictFive.stderr)
        let npy = try Data(contentsOf: URL(fileURLWithPath: dir + "/pred5/probabilities.npy"))
        XCTAssertEqual(npy.count, 128 + 5 * 32 * 32 * 4)
        let evalFive = try segdist(["eval", "--weights", dir + "/five.safetensors"] + recipe + normalised)
        XCTAssertEqual(evalFive.code, 2, "eval scores against the data, whose classes must match")
        let both = try segdist(["eval", "--weights", dir + "/weights.safetensors", "--checkpoint", dir + "/x.safetensors"])
        XCTAssertEqual(both.code, 2)
        XCTAssertTrue(both.stderr.contains("give --checkpoint (segdist checkpoints) or --weights (plain state_dicts), one or more of one kind"), both.stderr)
    }
}

extension CommandLineTests {
    /// The messages people meet first: version, the key list, CRLF files, empty files, absurd
    /// keys, a run directory under a file, and where eval wrote its JSON.
    func testMessagesPeopleMeetFirst() throws {
        let dir = NSTemporaryDirectory() + "segdist-cli-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        XCTAssertEqual(try segdist(["--version"]).stdout, "segdist \(segdistVersion)\n")
        // the bench names the vector instructions of segdist's kernels and OpenBLAS's kernel path
        let bench = try segdist(["bench", "--width", "2", "--batch", "2", "--size", "16", "--steps", "1", "--model", "unet_shallow"])
        XCTAssertEqual(bench.code, 0, bench.stderr)
        XCTAssertTrue(bench.stdout.contains("\"kernels\":\"\(kernelInstructionSet)+openblas-"), bench.stdout)
        // its inference mode times evaluation-mode passes and says per image
        let inference = try segdist(["bench", "--inference", "--model", "lraspp_mobilenet_v3_large", "--width", "4", "--batch", "2",
                                     "--size", "32", "--steps", "2"])
        XCTAssertEqual(inference.code, 0, inference.stderr)
        let result = try JSONSerialization.jsonObject(with: Data(inference.stdout.utf8)) as? [String: Any]
        XCTAssertEqual(result?["passes"] as? Int, 2); XCTAssertEqual(result?["batch"] as? Int, 2)
        let perPass = try XCTUnwrap(result?["ms_per_pass"] as? Double), perImage = try XCTUnwrap(result?["ms_per_image"] as? Double)
        XCTAssertEqual(perImage, perPass / 2, accuracy: 0.01)
        // ... and, with --tile, predict's windowed path
        let tiled = try segdist(["bench", "--inference", "--model", "unet_shallow", "--width", "2", "--batch", "1", "--size", "48",
                                 "--tile", "32", "--steps", "1"])
        XCTAssertEqual(tiled.code, 0, tiled.stderr)
        let tiledResult = try JSONSerialization.jsonObject(with: Data(tiled.stdout.utf8)) as? [String: Any]
        XCTAssertEqual(tiledResult?["tile"] as? Int, 32, tiled.stdout)
        XCTAssertEqual(try segdist(["bench", "--tile", "32"]).code, 64, "--tile goes with --inference")
        XCTAssertEqual(try segdist(["bench", "--inference", "--ranks", "2"]).code, 64, "--inference is one process")
        let keys = try segdist(["config"])
        XCTAssertEqual(keys.code, 0)
        XCTAssertTrue(keys.stdout.contains("lr: 0.001    # ") && keys.stdout.contains("class_weights: none"), keys.stdout)
        XCTAssertEqual(keys.stdout.split(separator: "\n").count, TrainingConfig().rendered().split(separator: "\n").count)
        try "model: unet_shallow\r\nlr: 0.05\r\n".write(toFile: dir + "/crlf.cfg", atomically: true, encoding: .utf8)
        XCTAssertTrue(try segdist(["config", "--config", dir + "/crlf.cfg"]).stdout.contains("lr: 0.05    #"))
        try "\n  \n".write(toFile: dir + "/empty.cfg", atomically: true, encoding: .utf8)
        let empty = try segdist(["--config", dir + "/empty.cfg"])
        XCTAssertEqual(empty.code, 2)
        XCTAssertTrue(empty.stderr.contains("empty.cfg: is empty"), empty.stderr)
        let t0 = Date()
        try (String(repeating: "k", count: 10_000_000) + ": 1\n").write(toFile: dir + "/long.cfg", atomically: true, encoding: .utf8)
        let long = try segdist(["--config", dir + "/long.cfg"])
        XCTAssertEqual(long.code, 2)
        XCTAssertLessThan(Date().timeIntervalSince(t0), 10, "an absurd key is refused quickly")
        try "a file".write(toFile: dir + "/file", atomically: true, encoding: .utf8)
        let under = try segdist(["--set", "model=unet_shallow", "--set", "width=2", "--set", "image_size=16", "--set", "radius_max=6",
                                 "--set", "radius_min=2", "--set", "steps_per_epoch=1", "--set", "epochs=1", "--set", "val_images=1",
                                 "--set", "checkpoint_dir=\(dir)/file/run"])
        XCTAssertEqual(under.code, 2)
        XCTAssertTrue(under.stderr.contains("\(dir)/file is a file, not a directory"), under.stderr)
    }
}

extension CommandLineTests {
    /// predict on a folder of PNG and JPEG images, one tiled, with a colour mask: one output
    /// directory per image, mask.png in the class colours agreeing with the probabilities.
    func testPredictOnAFolderTiledWithClassColours() throws {
        let dir = NSTemporaryDirectory() + "segdist-cli-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir + "/in", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tiny = ["--set", "model=unet_shallow", "--set", "width=2", "--set", "image_size=16", "--set", "radius_max=6",
                    "--set", "radius_min=2", "--set", "batch_size=2", "--set", "epochs=1", "--set", "steps_per_epoch=2",
                    "--set", "val_images=2", "--set", "checkpoint_dir=\(dir)/run"]
        XCTAssertEqual(try segdist(tiny, in: dir).code, 0)
        let picture = PNGImage(width: 40, height: 24, channels: 1, pixels: (0..<(40 * 24)).map { UInt8($0 * 7 % 256) })
        try picture.write(to: dir + "/in/a.png")
        if JPEG.isAvailable { try JPEG.encode(picture).write(to: URL(fileURLWithPath: dir + "/in/b.jpg")) }
        try Data("notes".utf8).write(to: URL(fileURLWithPath: dir + "/in/readme.txt"))   // not an image: skipped
        let r = try segdist(["predict", "--checkpoint", dir + "/run/best.safetensors", "--input", dir + "/in", "--output", dir + "/out",
                             "--tile", "16", "--overlap", "4", "--set", "class_colors=#102030, #F0E0D0"])
        XCTAssertEqual(r.code, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("40x24 in 6 windows of 16x16 (overlap 4, 4 per pass"), r.stderr)
        for name in ["a"] + (JPEG.isAvailable ? ["b"] : []) {
            let mask = try PNGImage(path: "\(dir)/out/\(name)/mask.png")
            XCTAssertEqual([mask.width, mask.height, mask.channels], [40, 24, 3])
            let p = try NPYArray(path: "\(dir)/out/\(name)/probabilities.npy")
            XCTAssertEqual(p.shape, [2, 24, 40])
            for q in 0..<(40 * 24) {
                let foreground = p.value(40 * 24 + q) > p.value(q)
                XCTAssertEqual(Array(mask.pixels[(3 * q)..<(3 * q + 3)]), foreground ? [0xF0, 0xE0, 0xD0] : [0x10, 0x20, 0x30])
            }
            XCTAssertTrue(FileManager.default.fileExists(atPath: "\(dir)/out/\(name)/panel.png"))
        }
        // a folder without images, and --mask with a folder, are refused
        try FileManager.default.createDirectory(atPath: dir + "/empty", withIntermediateDirectories: true)
        let empty = try segdist(["predict", "--checkpoint", dir + "/run/best.safetensors", "--input", dir + "/empty", "--output", dir + "/o2"])
        XCTAssertEqual(empty.code, 2)
        XCTAssertEqual(empty.stderr, "segdist: error: \(dir)/empty: holds no .png, .jpg or .jpeg image\n")
        // a file that cannot be written (written while the next image is computed) ends the
        // command with its name; the images before it are on disk, none after it is begun
        try FileManager.default.createDirectory(atPath: dir + "/three", withIntermediateDirectories: true)
        for name in ["a", "b", "c"] { try picture.write(to: "\(dir)/three/\(name).png") }
        try FileManager.default.createDirectory(atPath: dir + "/o3/b/mask.png", withIntermediateDirectories: true)
        let blocked = try segdist(["predict", "--checkpoint", dir + "/run/best.safetensors", "--input", dir + "/three", "--output", dir + "/o3"])
        XCTAssertEqual(blocked.code, 2)
        XCTAssertTrue(blocked.stderr.hasSuffix("segdist: error: \(dir)/o3/b/mask.png: is a directory; give a file name\n"), blocked.stderr)
        XCTAssertTrue(blocked.stdout.contains("wrote \(dir)/o3/a/mask.png"), blocked.stdout)
        for file in ["mask.png", "probabilities.npy", "panel.png"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: "\(dir)/o3/a/\(file)"), file)
            XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/o3/c/\(file)"), file)
        }
    }
}

extension CommandLineTests {
    /// `device: cuda` without a usable GPU is one clear error (exit 2, nothing written);
    /// `auto` trains on the CPU and says why in one line; `cpu` says nothing; an unknown device
    /// is refused. On a GPU machine `cuda` trains and names the GPU.
    func testDeviceChoice() throws {
        let dir = NSTemporaryDirectory() + "segdist-device-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tiny = ["--set", "width=2", "--set", "image_size=32", "--set", "epochs=1", "--set", "steps_per_epoch=2", "--set", "val_images=2"]
        let cuda = try segdist(["--device", "cuda", "--set", "checkpoint_dir=\(dir)/cuda"] + tiny)
        if case .success = CUDATesting.backend {
            XCTAssertEqual(cuda.code, 0, cuda.stderr)
            XCTAssertTrue(cuda.stderr.contains("# device: cuda:"), cuda.stderr)
        } else {
            XCTAssertEqual(cuda.code, 2, cuda.stderr)
            XCTAssertTrue(cuda.stderr.contains("device: cuda, but no GPU is usable"), cuda.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/cuda"), "a refused run writes nothing")
            let auto = try segdist(["--set", "checkpoint_dir=\(dir)/auto"] + tiny)
            XCTAssertEqual(auto.code, 0, auto.stderr)
            XCTAssertEqual(auto.stderr.components(separatedBy: "# device: auto -> CPU").count, 2, auto.stderr)
            print("device: cuda training check did not run on a GPU (none here); the refusal and the CPU fallback did")
        }
        let cpu = try segdist(["--device", "cpu", "--set", "checkpoint_dir=\(dir)/cpu"] + tiny)
        XCTAssertEqual(cpu.code, 0, cpu.stderr)
        XCTAssertFalse(cpu.stderr.contains("# device:"), cpu.stderr)
        let wrong = try segdist(["--device", "gpu"] + tiny)
        XCTAssertEqual(wrong.code, 2)
        XCTAssertTrue(wrong.stderr.contains("device: must be one of auto, cpu, cuda"), wrong.stderr)
        // `segdist verify`: the fixtures through the CPU backend pass; without them there is nothing to check on a CPU
        let verify = try segdist(["verify", "--device", "cpu", "--fixtures", Fixtures.referencePath])
        XCTAssertEqual(verify.code, 0, verify.stderr)
        XCTAssertTrue(verify.stdout.contains("cpu vs PyTorch") && verify.stdout.contains("unet_w4 logits") && !verify.stdout.contains("FAILED"),
                      verify.stdout)
        XCTAssertEqual(try segdist(["verify", "--device", "cpu"]).code, 2)
    }
}
