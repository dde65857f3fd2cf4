import XCTest
import Foundation
import SegCore
import SegData
import SegTrain

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
        let data = try config().makeDataset()
        XCTAssertEqual([data.trainingCount, data.validationCount], [3, 1])
        let s = data.validationSample(0)
        XCTAssertEqual([s.height, s.width, s.image.count], [32, 32, 32 * 32])
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
