import XCTest
import Foundation
import CPNG
import SegCore
import SegData
import SegTrain
import SegTestSupport

/// What a user is shown is what they get: for every kind of data, the Dice of the mask.png files
/// `segdist predict` writes — scored here, by this test, against the masks at their own size —
/// equals `segdist eval`'s and the training's last validation's, pixel count for pixel count.
/// Also with test-time flips and with an ensemble of checkpoints.
final class OneEvaluationPathTests: XCTestCase {
    var dir: String!

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "segdist-onepath-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func segdist(_ args: [String]) throws -> (code: Int32, stdout: String, stderr: String) {
        try runSegdist(args, in: dir)
    }

    /// A labelled h x w picture: the synthetic discs (class 1) and squares (class 2 with 3
    /// classes) of a square generator, cropped to the size.
    func picture(_ index: Int, height h: Int, width w: Int, classes: Int) -> (grey: [UInt8], labels: [UInt8]) {
        var g = SyntheticShapes(size: max(h, w), border: 4, seed: 11)
        g.radiusMin = 3; g.radiusMax = max(h, w) / 4; g.discs = 5; g.squares = classes == 3
        let (image, labels) = g.sample(UInt64(index))
        let n = max(h, w)
        var grey = [UInt8](), l = [UInt8]()
        for y in 0..<h { for x in 0..<w { grey.append(UInt8((image[y * n + x] * 255).rounded())); l.append(labels[y * n + x]) } }
        return (grey, l)
    }

    /// The truth of each validation image, by stem: labels (255 = ignored), height, width.
    typealias Truth = [(stem: String, labels: [UInt8], height: Int, width: Int)]

    /// Writes `images/` and `masks/` under `root`: grey PNGs with 0/255 (two classes) or index
    /// masks, or VOC-like RGB JPEGs with palette masks and a 255 border around every object.
    func writeFolder(_ root: String, sizes: [(Int, Int)], classes: Int, first: Int = 0, voc: Bool = false) throws -> Truth {
        for sub in ["images", "masks"] { try FileManager.default.createDirectory(atPath: root + "/" + sub, withIntermediateDirectories: true) }
        var truth: Truth = []
        for (i, (h, w)) in sizes.enumerated() {
            var (grey, labels) = picture(first + i, height: h, width: w, classes: classes)
            let stem = String(format: "%04d", first + i)
            if voc {
                // a void border: labelled pixels next to another class become 255
                let original = labels
                for y in 0..<h { for x in 0..<w where x + 1 < w && original[y * w + x] != original[y * w + x + 1] { labels[y * w + x] = 255 } }
                let rgb = PNGImage(width: w, height: h, channels: 3, pixels: grey.flatMap { [$0, UInt8(255 - Int($0)), $0 / 2] })
                try JPEG.encode(rgb, quality: 95).write(to: URL(fileURLWithPath: "\(root)/images/\(stem).jpg"))
                var palette = [UInt8](repeating: 0, count: 256 * 3)
                palette[3...5] = [128, 0, 0]; palette[6...8] = [0, 128, 0]; palette[765...767] = [224, 224, 192]
                XCTAssertTrue(writeTestPNG("\(root)/masks/\(stem).png", width: w, height: h,
                                           format: UInt32(PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_COLORMAP), bytes: labels, colormap: palette))
            } else {
                try PNGImage(width: w, height: h, channels: 1, pixels: grey).write(to: "\(root)/images/\(stem).png")
                try PNGImage(width: w, height: h, channels: 1, pixels: classes == 2 ? labels.map { $0 == 0 ? 0 : 255 } : labels)
                    .write(to: "\(root)/masks/\(stem).png")
            }
            truth.append((stem, labels, h, w))
        }
        return truth
    }

    /// An 8-bit grey PNG's pixels, read here with libpng (not with segdist's reader).
    func greyPixels(_ path: String) throws -> (pixels: [UInt8], width: Int, height: Int) {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        guard png_image_begin_read_from_file(&image, path) != 0 else { throw XCTSkip("libpng cannot open \(path)") }
        image.format = UInt32(PNG_FORMAT_GRAY)
        var pixels = [UInt8](repeating: 0, count: Int(image.width * image.height))
        guard png_image_finish_read(&image, nil, &pixels, 0, nil) != 0 else { throw XCTSkip("libpng cannot read \(path)") }
        return (pixels, Int(image.width), Int(image.height))
    }

    /// Dice per class (the lab's smoothing, mean over images) and pixel counts [|A∩B|, |A|, |B|]
    /// of predict's mask.png files under `predictions/STEM/` against `truth`.
    func scoreMasks(_ predictions: String, _ truth: Truth, classes k: Int) throws -> (dice: [Double], counts: [[Int]]) {
        var diceSum = [Double](repeating: 0, count: k), counts = [[Int]](repeating: [0, 0, 0], count: k)
        for t in truth {
            let (pixels, w, h) = try greyPixels("\(predictions)/\(t.stem)/mask.png")
            XCTAssertEqual([w, h], [t.width, t.height], "\(t.stem): mask.png has the image's own size")
            var c = [[Int]](repeating: [0, 0, 0], count: k)
            for q in 0..<pixels.count where t.labels[q] != 255 {
                let predicted = k == 2 ? (pixels[q] == 255 ? 1 : 0) : Int(pixels[q])
                let label = Int(t.labels[q])
                c[predicted][1] += 1; c[label][2] += 1
                if predicted == label { c[label][0] += 1 }
            }
            for j in 0..<k {
                diceSum[j] += (2 * Double(c[j][0]) + 1e-4) / (Double(c[j][1] + c[j][2]) + 1e-4)
                for m in 0..<3 { counts[j][m] += c[j][m] }
            }
        }
        return (diceSum.map { $0 / Double(truth.count) }, counts)
    }

    /// Trains `options` in this process and returns its last validation record.
    func train(_ options: [String]) throws -> [String: Any] {
        var config = TrainingConfig()
        for o in options { try config.override(o) }
        try config.validate(source: "test")
        _ = try TrainingRun(config: config).run()
        let lines = try String(contentsOfFile: config.checkpointDir + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        let evals = try lines.map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }.filter { $0["kind"] as? String == "eval" }
        return try XCTUnwrap(evals.last)
    }

    /// `segdist eval` of `checkpoints` (its JSON) and `segdist predict` of them on `images`.
    func evalAndPredict(_ checkpoints: [String], images: String, output: String, extra: [String] = []) throws -> [String: Any] {
        let sources = checkpoints.flatMap { ["--checkpoint", $0] }
        let eval = try segdist(["eval"] + sources + ["--output", output + ".json"] + extra)
        XCTAssertEqual(eval.code, 0, eval.stderr)
        let predict = try segdist(["predict"] + sources + ["--input", images, "--output", output, "--no-probabilities"] + extra)
        XCTAssertEqual(predict.code, 0, predict.stderr)
        return try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: output + ".json"))) as! [String: Any]
    }

    func assertSame(_ record: [String: Any], _ scored: (dice: [Double], counts: [[Int]]), _ what: String,
                    file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertGreaterThan(scored.counts.filter { $0[1] > 0 }.count, 1, "\(what): the model predicts more than one class (\(scored.counts))",
                             file: file, line: line)
        XCTAssertEqual(record["pixel_counts"] as? [[Int]], scored.counts, "\(what): the same pixels counted", file: file, line: line)
        let dice = record["dice"] as? [Double] ?? []
        XCTAssertEqual(dice.count, scored.dice.count, what, file: file, line: line)
        for (a, b) in zip(dice, scored.dice) { XCTAssertEqual(a, b, accuracy: 1e-12, "\(what): Dice per class", file: file, line: line) }
    }

    func common(_ run: String, steps: Int = 6) -> [String] {
        ["model=unet_shallow", "width=4", "optimizer=adam", "lr=0.01", "batch_size=4", "epochs=1", "steps_per_epoch=\(steps)",
         "checkpoint_every=\(steps / 2)", "keep_checkpoints=2", "checkpoint_dir=\(dir!)/\(run)", "threads=2", "seed=1"]
    }

    func testSyntheticData() throws {
        let record = try train(common("synthetic") + ["image_size=32", "val_images=4", "border=4", "radius_max=10"])
        let generate = try segdist(["generate", "--config", "\(dir!)/synthetic/config.cfg", "--count", "4", "--output", dir + "/gen"])
        XCTAssertEqual(generate.code, 0, generate.stderr)
        var truth: Truth = []
        for i in 0..<4 {
            let stem = String(format: "%06d", i), m = try greyPixels("\(dir!)/gen/masks/\(stem).png")
            truth.append((stem, m.pixels.map { $0 == 255 ? 1 : 0 }, m.height, m.width))
        }
        // eval scores the recipe's validation images: the generator's, which generate wrote
        let evalled = try evalAndPredict([dir + "/synthetic/step-000006.safetensors"], images: dir + "/gen/images", output: dir + "/pred")
        let scored = try scoreMasks(dir + "/pred", truth, classes: 2)
        assertSame(record, scored, "training's validation")
        assertSame(evalled, scored, "eval")
        // two files of one stem each get their own output folder
        guard JPEG.isAvailable else { throw XCTSkip("libturbojpeg.so.0 is not installed here (apt-get install libturbojpeg0)") }
        try FileManager.default.createDirectory(atPath: dir + "/twins", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: dir + "/gen/images/000000.png", toPath: dir + "/twins/a.png")
        let picture = try greyPixels(dir + "/gen/images/000001.png")
        try JPEG.encode(PNGImage(width: picture.width, height: picture.height, channels: 1, pixels: picture.pixels))
            .write(to: URL(fileURLWithPath: dir + "/twins/a.jpg"))
        let twins = try segdist(["predict", "--checkpoint", dir + "/synthetic/step-000006.safetensors", "--input", dir + "/twins",
                                 "--output", dir + "/twins-out"])
        XCTAssertEqual(twins.code, 0, twins.stderr)
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: dir + "/twins-out")), ["a.png", "a.jpg"])
    }

    func testSquareFolderWithTwoChannelBCE() throws {
        _ = try writeFolder(dir + "/sq", sizes: Array(repeating: (32, 32), count: 8), classes: 2)
        let truth = try writeFolder(dir + "/sq/val", sizes: Array(repeating: (32, 32), count: 3), classes: 2, first: 100)
        // the default loss: BCE on two channels; the scored classes are predict's arg-max
        let record = try train(common("sq") + ["data=folder", "data_dir=\(dir!)/sq", "loss=bce"])
        // what 255 means was decided once, from all the masks, and the run's recipe keeps it
        XCTAssertTrue(try String(contentsOfFile: dir + "/sq/config.cfg", encoding: .utf8).contains("\nmask_255: class_1\n"))
        let evalled = try evalAndPredict([dir + "/sq/step-000006.safetensors"], images: dir + "/sq/val/images", output: dir + "/pred")
        let scored = try scoreMasks(dir + "/pred", truth, classes: 2)
        assertSame(record, scored, "training's validation")
        assertSame(evalled, scored, "eval")
    }

    func testNonSquareFolderAtItsOwnSizeWithFlipsAndAnEnsemble() throws {
        // M2NIST's layout: 64 x 84, not resized, three classes
        _ = try writeFolder(dir + "/m2", sizes: Array(repeating: (64, 84), count: 6), classes: 3)
        let truth = try writeFolder(dir + "/m2/val", sizes: Array(repeating: (64, 84), count: 3), classes: 3, first: 100)
        var config = TrainingConfig()
        for o in common("m2", steps: 30) + ["data=folder", "data_dir=\(dir!)/m2", "classes=3", "loss=ce"] { try config.override(o) }
        let sample = try config.makeDataset().trainingSample(epoch: 0, index: 0)
        XCTAssertEqual([sample.height, sample.width], [64, 84], "trained at the files' own size")
        let record = try train(common("m2", steps: 30) + ["data=folder", "data_dir=\(dir!)/m2", "classes=3", "loss=ce", "tta=flip"])
        let last = dir + "/m2/step-000030.safetensors", earlier = dir + "/m2/step-000015.safetensors"
        // the recipe's tta: flip, in training's validation, eval and predict alike
        let flipped = try evalAndPredict([last], images: dir + "/m2/val/images", output: dir + "/flip")
        let scoredFlipped = try scoreMasks(dir + "/flip", truth, classes: 3)
        assertSame(record, scoredFlipped, "training's validation (tta: flip)")
        assertSame(flipped, scoredFlipped, "eval (tta: flip)")
        // without flips the masks differ somewhere, and still agree with eval
        let plain = try evalAndPredict([last], images: dir + "/m2/val/images", output: dir + "/plain", extra: ["--set", "tta=none"])
        let scoredPlain = try scoreMasks(dir + "/plain", truth, classes: 3)
        assertSame(plain, scoredPlain, "eval (no tta)")
        // an ensemble of two checkpoints: the mean of their probabilities
        let both = try evalAndPredict([last, earlier], images: dir + "/m2/val/images", output: dir + "/ensemble")
        let scoredBoth = try scoreMasks(dir + "/ensemble", truth, classes: 3)
        assertSame(both, scoredBoth, "eval (ensemble)")
        XCTAssertNotEqual(scoredBoth.counts, scoredFlipped.counts, "the ensemble is another prediction")
    }

    func testFolderOfMixedSizesTrainsOnCropsAndEvaluatesWholeImages() throws {
        guard JPEG.isAvailable else { throw XCTSkip("libturbojpeg.so.0 is not installed here (apt-get install libturbojpeg0)") }
        let sizes = [(40, 56), (48, 48), (36, 44), (52, 40), (30, 60), (44, 36)]
        _ = try writeFolder(dir + "/voc", sizes: sizes, classes: 3, voc: true)
        let truth = try writeFolder(dir + "/voc/val", sizes: [(46, 38), (33, 50), (40, 40)], classes: 3, first: 100, voc: true)
        let options = common("voc", steps: 30) + ["data=folder", "data_dir=\(dir!)/voc", "classes=3", "loss=ce", "in_channels=3"]
        // without crop a batch would mix sizes: refused, naming the fix
        var config = TrainingConfig()
        for o in options { try config.override(o) }
        XCTAssertThrowsError(try config.makeDataset()) { XCTAssertTrue("\($0)".contains("6 sizes") && "\($0)".contains("set crop: N"), "\($0)") }
        let record = try train(options + ["crop=32", "width=8", "lr=0.005"])
        let evalled = try evalAndPredict([dir + "/voc/step-000030.safetensors"], images: dir + "/voc/val/images", output: dir + "/pred")
        let scored = try scoreMasks(dir + "/pred", truth, classes: 3)
        XCTAssertGreaterThan(scored.counts.map { $0[2] }.reduce(0, +), 0)
        XCTAssertLessThan(scored.counts.map { $0[2] }.reduce(0, +), truth.map { $0.labels.count }.reduce(0, +), "the 255 borders count nowhere")
        assertSame(record, scored, "training's validation")
        assertSame(evalled, scored, "eval")
    }

    func testNPYArrays() throws {
        let (n, h, w) = (12, 40, 48)
        var images = [UInt8](), masks = [UInt8]()
        for i in 0..<n { let p = picture(i, height: h, width: w, classes: 2); images += p.grey; masks += p.labels }
        // float32 images in [0, 1] (as 8-bit levels / 255) and class-index masks
        try writeNPY(Tensor(shape: [n, h, w], storage: images.map { Float($0) / 255 }), to: dir + "/x.npy")
        try writeNPY(Tensor(shape: [n, h, w], storage: masks.map(Float.init)), to: dir + "/y.npy")
        let options = common("npy") + ["data=npy", "images_npy=\(dir!)/x.npy", "masks_npy=\(dir!)/y.npy", "val_fraction=0.25"]
        let record = try train(options)
        // the validation samples as files, for predict
        var config = TrainingConfig()
        for o in options { try config.override(o) }
        let data = try config.makeDataset()
        var truth: Truth = []
        try FileManager.default.createDirectory(atPath: dir + "/val", withIntermediateDirectories: true)
        for i in 0..<data.validationCount {
            let s = data.validationSample(i), stem = String(format: "%02d", i)
            try PNGImage(width: s.width, height: s.height, channels: 1, pixels: s.image.map { UInt8(($0 * 255).rounded()) })
                .write(to: "\(dir!)/val/\(stem).png")
            truth.append((stem, s.labels, s.height, s.width))
        }
        let evalled = try evalAndPredict([dir + "/npy/step-000006.safetensors"], images: dir + "/val", output: dir + "/pred")
        let scored = try scoreMasks(dir + "/pred", truth, classes: 2)
        assertSame(record, scored, "training's validation")
        assertSame(evalled, scored, "eval")
    }
}
