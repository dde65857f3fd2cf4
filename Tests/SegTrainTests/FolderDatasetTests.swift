import XCTest
import Foundation
import SegCore
import SegData
import SegTrain
import SegTestSupport
import SegNN

/// `data: folder`: PNG images and masks paired by name, the layout `segdist generate` writes.
final class FolderDatasetTests: XCTestCase {
    var dir: String!
    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "segdist-folder-\(UUID().uuidString)"
        for sub in ["images", "masks"] { try FileManager.default.createDirectory(atPath: dir + "/data/" + sub, withIntermediateDirectories: true) }
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    /// Writes `count` synthetic samples as generate does: 8-bit grey images, 0/255 masks.
    func writeSamples(_ g: SyntheticShapes, count: Int) throws {
        for i in 0..<count {
            let (image, labels) = g.sample(UInt64(i))
            let name = String(format: "%04d.png", i)
            try PNGImage(width: g.size, height: g.size, channels: 1, pixels: image.map { UInt8(($0 * 255).rounded()) })
                .write(to: dir + "/data/images/" + name)
            try PNGImage(width: g.size, height: g.size, channels: 1, pixels: labels.map { $0 == 1 ? 255 : 0 })
                .write(to: dir + "/data/masks/" + name)
        }
    }

    func config(_ extra: [String] = []) throws -> TrainingConfig {
        var c = TrainingConfig()
        for o in ["model=unet_shallow", "width=2", "image_size=32", "data=folder", "data_dir=\(dir!)/data", "batch_size=2",
                  "epochs=1", "steps_per_epoch=3", "val_fraction=0.25", "checkpoint_dir=\(dir!)/run"] + extra { try c.override(o) }
        try c.validate(source: "test")
        return c
    }

    func testAFolderOfPNGsTrainsAndMatchesTheGeneratorItCameFrom() throws {
        let g = SyntheticShapes(size: 32, border: 5, seed: 3)
        try writeSamples(g, count: 8)
        var data = try XCTUnwrap(try config().makeDataset() as? FolderDataset)
        XCTAssertEqual([data.trainingCount, data.validationCount], [6, 2])
        XCTAssertEqual(try data.check().classPixels.count, 2)
        // same size, no flips: the folder gives back the generator's samples (to 8-bit precision)
        for i in 0..<8 {
            let stem = String(format: "%04d", i)
            let isTraining = data.training.contains { $0.image.hasSuffix(stem + ".png") }
            let sample = isTraining ? nil : data.validationSample(data.validation.firstIndex { $0.image.hasSuffix(stem + ".png") }!)
            guard let sample else { continue }
            XCTAssertEqual(sample.labels, g.sample(UInt64(i)).labels)
            XCTAssertEqual(zip(sample.image, g.sample(UInt64(i)).image).map { abs($0 - $1) }.max()!, 0, accuracy: 0.5 / 255 + 1e-6)
        }
        // flips are a pure function of (seed, epoch, index)
        let flipping = try XCTUnwrap(try config(["flip_horizontal=true", "flip_vertical=true"]).makeDataset() as? AugmentedDataset)
        XCTAssertEqual(flipping.trainingSample(epoch: 2, index: 3).image, flipping.trainingSample(epoch: 2, index: 3).image)
        let flippedSomewhere = (0..<6).contains { flipping.trainingSample(epoch: 0, index: $0).image != data.trainingSample(epoch: 0, index: $0).image }
        XCTAssertTrue(flippedSomewhere)
        let summary = try TrainingRun(config: config(["flip_horizontal=true"])).run()
        XCTAssertEqual(summary.steps, 3)
        XCTAssertNotNil(summary.finalDice)
    }

    func testResizingAndAValidationFolder() throws {
        try writeSamples(SyntheticShapes(size: 48, border: 5, seed: 4), count: 4)
        for sub in ["val/images", "val/masks"] { try FileManager.default.createDirectory(atPath: dir + "/data/" + sub, withIntermediateDirectories: true) }
        try FileManager.default.moveItem(atPath: dir + "/data/images/0003.png", toPath: dir + "/data/val/images/0003.png")
        try FileManager.default.moveItem(atPath: dir + "/data/masks/0003.png", toPath: dir + "/data/val/masks/0003.png")
        // the files' own size unless the recipe resizes; validation samples always as the files are
        let own = try config().makeDataset()
        XCTAssertEqual([own.trainingSample(epoch: 0, index: 0).height, own.trainingSample(epoch: 0, index: 0).width], [48, 48])
        let data = try config(["resize=32x40"]).makeDataset()
        XCTAssertEqual([data.trainingCount, data.validationCount], [3, 1])
        let t = data.trainingSample(epoch: 0, index: 0)
        XCTAssertEqual([t.height, t.width, t.image.count], [32, 40, 32 * 40])
        XCTAssertEqual([data.imageSize.height, data.imageSize.width], [32, 40])
        let s = data.validationSample(0)
        XCTAssertEqual([s.height, s.width, s.image.count], [48, 48, 48 * 48])
        XCTAssertTrue(Set(s.labels).isSubset(of: [0, 1]))
    }

    func testBrokenFoldersAreRefusedNamingTheFile() throws {
        try writeSamples(SyntheticShapes(size: 32, border: 5, seed: 5), count: 3)
        func problem() -> String { do { _ = try config().makeDataset(); return "accepted" } catch { return "\(error)" } }
        XCTAssertEqual(problem(), "accepted")
        try FileManager.default.copyItem(atPath: dir + "/data/images/0000.png", toPath: dir + "/data/images/extra.png")
        XCTAssertTrue(problem().contains("images/extra.png: has no mask"), problem())
        try FileManager.default.removeItem(atPath: dir + "/data/images/extra.png")
        try PNGImage(width: 32, height: 32, channels: 1, pixels: [UInt8](repeating: 7, count: 1024)).write(to: dir + "/data/masks/0001.png")
        XCTAssertTrue(problem().contains("masks/0001.png: holds the value 7 at (0, 0), outside the 2 classes 0..<2 and not the ignore_index 255"), problem())
        try PNGImage(width: 32, height: 32, channels: 3, pixels: [UInt8](repeating: 0, count: 3072)).write(to: dir + "/data/masks/0001.png")
        XCTAssertTrue(problem().contains("masks/0001.png: is a colour image"), problem())
        try PNGImage(width: 16, height: 32 * 2, channels: 1, pixels: [UInt8](repeating: 0, count: 1024)).write(to: dir + "/data/masks/0001.png")
        XCTAssertTrue(problem().contains("is 16x64 but its image is 32x32"), problem())
        var c = TrainingConfig()
        try c.override("data=folder"); try c.override("data_dir=\(dir!)/nowhere")
        XCTAssertThrowsError(try c.validate(source: "test")) { XCTAssertTrue("\($0)".contains("no such directory"), "\($0)") }
    }
}

/// PASCAL-VOC-like data: JPEG photographs, index masks with a 255 border, three classes; and
/// colour masks; trained with augmentation and `auto` statistics; predicted tiled.
extension FolderDatasetTests {
    /// `count` synthetic samples with squares (3 classes) as JPEG images and grey index masks
    /// whose 2-pixel frame is 255 (unlabelled), or as colour masks.
    func writeVOCLike(count: Int, size: Int = 32, colours: [[UInt8]]? = nil) throws {
        var g = SyntheticShapes(size: size, border: 5, seed: 11)
        g.squares = true; g.radiusMin = 3; g.radiusMax = 8; g.discs = 4
        for i in 0..<count {
            let (image, labels) = g.sample(UInt64(i))
            let stem = String(format: "%04d", i)
            let picture = PNGImage(width: size, height: size, channels: 1, pixels: image.map { UInt8(($0 * 255).rounded()) })
            try JPEG.encode(picture, quality: 95).write(to: URL(fileURLWithPath: dir + "/data/images/" + stem + ".jpg"))
            var mask = labels.map { UInt8($0) }
            for p in 0..<(size * size) where min(p % size, p / size, size - 1 - p % size, size - 1 - p / size) < 2 { mask[p] = 255 }
            if let colours {
                try PNGImage(width: size, height: size, channels: 3, pixels: mask.flatMap { $0 == 255 ? [9, 9, 9] : colours[Int($0)] })
                    .write(to: dir + "/data/masks/" + stem + ".png")
            } else {
                try PNGImage(width: size, height: size, channels: 1, pixels: mask).write(to: dir + "/data/masks/" + stem + ".png")
            }
        }
    }

    func testJPEGImagesWithIgnoredBordersTrainWithAugmentationAndAutoStatistics() throws {
        guard JPEG.isAvailable else { throw XCTSkip("JPEG folder training needs libturbojpeg.so.0 (apt-get install libturbojpeg0)") }
        try writeVOCLike(count: 8)
        let extra = ["in_channels=3", "classes=3", "loss=ce", "class_weights=auto", "normalize_mean=auto", "normalize_std=auto",
                     "flip_horizontal=true", "scale_min=0.8", "scale_max=1.25", "rotate=10", "crop=24", "brightness=0.1",
                     "contrast=0.1", "gaussian_noise=0.02"]
        var c = try config(extra)
        let data = try c.prepareData()
        // the autos became numbers of the effective config
        XCTAssertFalse(c.normalizeAuto || c.classWeightsAuto)
        let mean = try XCTUnwrap(c.normalizeMean), weights = try XCTUnwrap(c.classWeights)
        XCTAssertEqual(mean.count, 3)
        XCTAssertEqual(mean[0], mean[1], accuracy: 1e-6, "grey JPEGs give three equal channels")
        XCTAssertEqual(weights.count, 3)
        XCTAssertGreaterThan(weights[1], weights[0], "discs are rarer than background")
        XCTAssertTrue(c.rendered().contains("class_weights: \(weights.map(formatted).joined(separator: ", "))"))
        XCTAssertTrue(data.summary.contains("ignored"), data.summary)
        XCTAssertEqual(data.imageSize.height, 24)
        let s = data.trainingSample(epoch: 0, index: 0)
        XCTAssertEqual([s.height, s.width], [24, 24])
        XCTAssertTrue(s.labels.contains(Sample.ignored))
        // a few steps; the checkpoint carries the measured numbers, so predict uses them
        let summary = try TrainingRun(config: try config(extra)).run()
        XCTAssertEqual(summary.steps, 3)
        XCTAssertTrue(summary.finalDice.map { $0.isFinite } ?? false)
        let checkpoint = try Checkpoint(path: try XCTUnwrap(summary.lastCheckpoint))
        XCTAssertTrue(checkpoint.configText.contains("normalize_mean: \(mean.map(formatted).joined(separator: ", "))"), checkpoint.configText)
    }

    func testColourMasksTrainThroughClassColors() throws {
        guard JPEG.isAvailable else { throw XCTSkip("colour-mask folder training needs libturbojpeg.so.0 (apt-get install libturbojpeg0)") }
        try writeVOCLike(count: 6, colours: [[0, 0, 0], [200, 0, 0], [0, 0, 200]])
        let extra = ["classes=3", "loss=ce", "class_colors=#000000, #C80000, #0000C8", "ignore_color=#090909"]
        let summary = try TrainingRun(config: try config(extra)).run()
        XCTAssertEqual(summary.steps, 3)
        XCTAssertThrowsError(try config(["classes=3", "class_colors=#000000, #C80000"])) {
            XCTAssertTrue("\($0)".contains("class_colors: needs one colour per class (3), got 2"), "\($0)")
        }
        XCTAssertThrowsError(try config(["classes=3", "class_colors=#00000"])) { XCTAssertTrue("\($0)".contains("expected #RRGGBB"), "\($0)") }
        var c = try config(["classes=3"])
        XCTAssertThrowsError(try c.prepareData()) { XCTAssertTrue("\($0)".contains("is a colour image"), "\($0)") }
    }

    func testTiledPredictionCoversTheImageAndAgreesWithOnePass() throws {
        let plan = TilePlan(height: 100, width: 70, tile: 32, overlap: 8, batch: 3)
        XCTAssertEqual(Set(plan.origins.map(\.y)), [0, 24, 48, 68])
        XCTAssertEqual(Set(plan.origins.map(\.x)), [0, 24, 38])
        XCTAssertEqual(TilePlan(height: 20, width: 30, tile: 32, overlap: 8, batch: 1).origins.count, 1)
        let model = ModelArchitecture.unet_shallow.make(inputChannels: 1, classes: 3, width: 2, seed: 4)
        var rng = SeededGenerator(seed: 1)
        let x = Tensor(shape: [1, 1, 64, 48], storage: (0..<(64 * 48)).map { _ in rng.nextUnit() })
        let whole = Predictor.predict(model: model, input: x, activation: .softmax)
        // one window covering the image is the whole-image pass
        let single = Predictor.predictTiled(model: model, input: x, activation: .softmax,
                                            plan: TilePlan(height: 64, width: 48, tile: 64, overlap: 16, batch: 2))
        XCTAssertLessThanOrEqual(zip(single.probabilities.storage, whole.probabilities.storage).map { abs($0 - $1) }.max()!, 1e-6)
        XCTAssertEqual(single.classes, whole.classes)
        // overlapping windows: a valid distribution everywhere, close to one pass
        var windows = 0
        let tiled = Predictor.predictTiled(model: model, input: x, activation: .softmax,
                                           plan: TilePlan(height: 64, width: 48, tile: 32, overlap: 8, batch: 2)) { done, _ in windows = done }
        XCTAssertEqual(windows, 6)
        let p = tiled.probabilities.storage, n = 64 * 48
        for q in 0..<n { XCTAssertEqual(p[q] + p[n + q] + p[2 * n + q], 1, accuracy: 1e-5) }
        let meanDifference = zip(p, whole.probabilities.storage).map { abs($0 - $1) }.reduce(0, +) / Float(p.count)
        print("tiled vs one pass: mean |dp| \(meanDifference), classes equal on \(zip(tiled.classes, whole.classes).filter { $0 == $1 }.count) of \(n) pixels")
        XCTAssertLessThan(meanDifference, 0.02)
    }
}

private func formatted(_ v: Float) -> String {
    var s = "\(v)"
    if s.hasSuffix(".0") { s.removeLast(2) }
    return s
}

import CPNG

/// Every image and mask kind a folder may hold, each trained for a few steps.
extension FolderDatasetTests {
    func writePNG(_ path: String, width: Int, height: Int, format: UInt32, bytes: [UInt8], colormap: [UInt8] = []) {
        XCTAssertTrue(writeTestPNG(path, width: width, height: height, format: format, bytes: bytes, colormap: colormap), path)
    }

    func testEveryFileKindTrains() throws {
        let size = 16
        let colour = UInt32(PNG_FORMAT_FLAG_COLOR), alpha = UInt32(PNG_FORMAT_FLAG_ALPHA), linear = UInt32(PNG_FORMAT_FLAG_LINEAR)
        let palette = UInt32(PNG_FORMAT_FLAG_COLORMAP), grey = UInt32(PNG_FORMAT_GRAY)
        enum ImageKind: CaseIterable { case grey8, rgba8, grey16, rgb16, jpeg }
        enum MaskKind: CaseIterable { case indices, binary, palette, indices16 }
        var g = SyntheticShapes(size: size, border: 3, seed: 2)
        g.radiusMin = 2; g.radiusMax = 5; g.discs = 3
        let cases = ImageKind.allCases.map { ($0, MaskKind.allCases[ImageKind.allCases.firstIndex(of: $0)! % MaskKind.allCases.count]) }
        for (imageKind, maskKind) in cases {
            if imageKind == .jpeg && !JPEG.isAvailable { throw XCTSkip("JPEG training needs libturbojpeg.so.0 (apt-get install libturbojpeg0)") }
            try? FileManager.default.removeItem(atPath: dir + "/data")
            for sub in ["images", "masks"] { try FileManager.default.createDirectory(atPath: dir + "/data/" + sub, withIntermediateDirectories: true) }
            for i in 0..<4 {
                let (image, labels) = g.sample(UInt64(i))
                let v8 = image.map { UInt8(($0 * 255).rounded()) }
                let stem = dir + "/data/images/\(i)"
                switch imageKind {
                case .grey8: writePNG(stem + ".png", width: size, height: size, format: grey, bytes: v8)
                case .rgba8: writePNG(stem + ".png", width: size, height: size, format: colour | alpha, bytes: v8.flatMap { [$0, $0, $0, 255] })
                case .grey16: writePNG(stem + ".png", width: size, height: size, format: linear, bytes: v8.map { UInt16($0) * 257 }.withUnsafeBytes { Array($0) })
                case .rgb16: writePNG(stem + ".png", width: size, height: size, format: linear | colour,
                                      bytes: v8.flatMap { [UInt16($0) * 257, 0, 65535] }.withUnsafeBytes { Array($0) })
                case .jpeg: try JPEG.encode(PNGImage(width: size, height: size, channels: 1, pixels: v8)).write(to: URL(fileURLWithPath: stem + ".jpg"))
                }
                let mask = dir + "/data/masks/\(i).png"
                var l8 = labels.map { UInt8($0) }
                l8[0] = 255   // one unlabelled pixel (binary masks: none)
                switch maskKind {
                case .indices: writePNG(mask, width: size, height: size, format: grey, bytes: l8)
                case .binary: writePNG(mask, width: size, height: size, format: grey, bytes: labels.map { $0 == 1 ? 255 : 0 })
                case .palette: writePNG(mask, width: size, height: size, format: colour | palette, bytes: l8,
                                        colormap: (0..<256).flatMap { [UInt8($0), UInt8(255 - $0), 0] })
                case .indices16: writePNG(mask, width: size, height: size, format: linear, bytes: l8.map { UInt16($0) }.withUnsafeBytes { Array($0) })
                }
            }
            let channels = imageKind == .rgba8 || imageKind == .rgb16 ? 3 : 1
            let summary = try TrainingRun(config: try config(["in_channels=\(channels)", "image_size=16", "steps_per_epoch=2"])).run()
            XCTAssertEqual(summary.steps, 2, "\(imageKind) images, \(maskKind) masks")
            XCTAssertTrue(summary.finalDice?.isFinite ?? false, "\(imageKind) images, \(maskKind) masks")
            try? FileManager.default.removeItem(atPath: dir + "/run")
        }
    }
}
