import XCTest
import Foundation
import SegCore
import SegData
import SegNN
import SegTrain

/// `data: npy`: M2NIST's layout (uint8 images, one-hot masks with the background last) and
/// the other (float RGB images, index masks), trained a few steps; malformed arrays refused
/// with the file named.
final class NPYDatasetTests: XCTestCase {
    var dir: String!
    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "segdist-npy-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    /// A .npy file (version 1.0) holding `bytes` as `descr` of `shape`.
    func writeNPY(_ name: String, descr: String, shape: [Int], bytes: [UInt8]) throws -> String {
        let dims = shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? "," : "")
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': (\(dims)), }"
        header += String(repeating: " ", count: (64 - (10 + header.utf8.count + 1) % 64) % 64) + "\n"
        var data = Data([0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)])
        data.append(contentsOf: Array(header.utf8))
        data.append(contentsOf: bytes)
        let path = dir + "/" + name
        try data.write(to: URL(fileURLWithPath: path))
        return path
    }

    /// M2NIST-like arrays: a bright rectangle per image of digit class d (one-hot channel d), the
    /// rest background (channel 10, the last).
    func m2nistLike(count n: Int) throws -> (String, String) {
        let (h, w, k) = (64, 84, 11)
        var images = [UInt8](repeating: 0, count: n * h * w), masks = [UInt8](repeating: 0, count: n * h * w * k)
        for i in 0..<n {
            let digit = i % 10
            for y in 0..<h { for x in 0..<w {
                let inside = (10 + i % 5..<40).contains(y) && (20..<50 + i % 7).contains(x)
                if inside { images[(i * h + y) * w + x] = 200 }
                masks[((i * h + y) * w + x) * k + (inside ? digit : 10)] = 1
            } }
        }
        return (try writeNPY("combined.npy", descr: "|u1", shape: [n, h, w], bytes: images),
                try writeNPY("segmented.npy", descr: "|u1", shape: [n, h, w, k], bytes: masks))
    }

    func testTheM2NISTRecipeTrainsOnTheKaggleLayout() throws {
        let (images, masks) = try m2nistLike(count: 20)
        // the shipped recipe, pointed at these files (it names data/m2nist/*.npy, which a user provides)
        let recipe = CommandLineTests.root.appendingPathComponent("configs/m2nist_fcn.cfg").path
        let text = try String(contentsOfFile: recipe, encoding: .utf8)
            .replacingOccurrences(of: "data/m2nist/combined.npy", with: images).replacingOccurrences(of: "data/m2nist/segmented.npy", with: masks)
        var config = TrainingConfig()
        try config.apply(text: text, source: recipe)
        for o in ["batch_size=4", "epochs=1", "steps_per_epoch=3", "checkpoint_dir=\(dir!)/run"] { try config.override(o) }
        try config.validate(source: "test")
        let data = try XCTUnwrap(try config.makeDataset() as? NPYDataset)
        XCTAssertEqual([data.trainingCount, data.validationCount], [18, 2])
        // the background (last one-hot channel) is class 0, digit d is class d + 1
        let sample = data.load(3)
        XCTAssertEqual(sample.labels[0], 0)
        XCTAssertEqual(sample.labels[20 * 84 + 30], 4)
        XCTAssertEqual(sample.image[20 * 84 + 30], 200 / 255, accuracy: 1e-6)
        XCTAssertEqual(try data.classFrequencies().count, 11)
        // epochs visit the training samples in different seeded orders, each exactly once
        let epoch0 = (0..<18).map { data.trainingSample(epoch: 0, index: $0).image }
        let epoch1 = (0..<18).map { data.trainingSample(epoch: 1, index: $0).image }
        XCTAssertNotEqual(epoch0, epoch1)
        XCTAssertEqual(Set(epoch0.map { $0.description }), Set(epoch1.map { $0.description }))
        let summary = try TrainingRun(config: config).run()
        XCTAssertEqual(summary.steps, 3)
        XCTAssertNotNil(summary.finalDice)
    }

    func testFloatRGBImagesWithIndexMasks() throws {
        let (n, h, w) = (6, 16, 16)
        var images = [UInt8](), masks = [UInt8](repeating: 0, count: n * h * w)
        for i in 0..<(n * h * w * 3) { withUnsafeBytes(of: Float(i % 7) / 7) { images += $0 } }
        for i in 0..<(n * h * w) where i % 3 == 0 { masks[i] = 1 }
        var config = TrainingConfig()
        for o in ["model=unet_shallow", "width=2", "in_channels=3", "classes=2", "data=npy", "batch_size=2", "epochs=1",
                  "steps_per_epoch=2", "val_fraction=0.34", "checkpoint_dir=\(dir!)/rgb",
                  "images_npy=\(try writeNPY("x.npy", descr: "<f4", shape: [n, h, w, 3], bytes: images))",
                  "masks_npy=\(try writeNPY("y.npy", descr: "|u1", shape: [n, h, w], bytes: masks))"] { try config.override(o) }
        try config.validate(source: "test")
        let data = try config.makeDataset()
        XCTAssertEqual([data.trainingCount, data.validationCount, data.channels], [4, 2, 3])
        XCTAssertEqual(try TrainingRun(config: config).run().steps, 2)
    }

    func testMalformedArraysAreRefusedNamingTheFile() throws {
        let (images, masks) = try m2nistLike(count: 4)
        func problem(_ overrides: [String]) -> String {
            var config = TrainingConfig()
            do {
                for o in ["model=fcn_m2nist", "classes=11", "loss=ce", "data=npy", "images_npy=\(images)", "masks_npy=\(masks)"] + overrides {
                    try config.override(o)
                }
                try config.validate(source: "test")
                _ = try config.makeDataset()
                return "accepted"
            } catch { return "\(error)" }
        }
        XCTAssertEqual(problem([]), "accepted")
        XCTAssertTrue(problem(["classes=10"]).contains("one-hot over 11 classes"), problem(["classes=10"]))
        XCTAssertTrue(problem(["in_channels=3"]).contains("has 1 channel(s)"), problem(["in_channels=3"]))
        XCTAssertTrue(problem(["masks_npy=\(dir!)/none.npy"]).contains("none.npy: no such file"))
        let short = try writeNPY("short.npy", descr: "|u1", shape: [3, 64, 84], bytes: [UInt8](repeating: 0, count: 3 * 64 * 84))
        XCTAssertTrue(problem(["images_npy=\(short)"]).contains("N, H and W must agree"), problem(["images_npy=\(short)"]))
        let truncated = try writeNPY("cut.npy", descr: "|u1", shape: [4, 64, 84], bytes: [1, 2, 3])
        XCTAssertTrue(problem(["images_npy=\(truncated)"]).contains("is truncated"), problem(["images_npy=\(truncated)"]))
        let text = try writeNPY("text.npy", descr: "<U3", shape: [4, 64, 84], bytes: [])
        XCTAssertTrue(problem(["images_npy=\(text)"]).contains("holds <U3 values"), problem(["images_npy=\(text)"]))
        XCTAssertTrue(problem(["images_npy=none"]).contains("needs the images array"))
    }
}
