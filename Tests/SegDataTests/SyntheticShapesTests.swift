import XCTest
import Foundation
import SegCore
import SegData

final class SyntheticShapesTests: XCTestCase {
    func testASampleIsAPureFunctionOfSeedAndIndex() {
        let g = SyntheticShapes(size: 64, border: 10, seed: 7)
        XCTAssertEqual(g.sample(3).image, g.sample(3).image)
        XCTAssertEqual(g.sample(3).labels, g.sample(3).labels)
        XCTAssertNotEqual(g.sample(3).image, g.sample(4).image)
        XCTAssertNotEqual(g.sample(3).image, SyntheticShapes(size: 64, border: 10, seed: 8).sample(3).image)
        // a batch holds exactly the samples it names, whatever the order or the threads
        Parallel.configure(threads: 2)
        let (images, oneHot) = g.trainingBatch([4, 3])
        XCTAssertEqual(Array(images.storage[(64 * 64)...]), g.sample(3).image)
        let labels = g.sample(4).labels, targets = oneHot.storage
        for p in 0..<(64 * 64) {
            XCTAssertEqual(targets[64 * 64 + p], labels[p] == 1 ? 1 : 0)
            XCTAssertEqual(targets[p], labels[p] == 0 ? 1 : 0)
        }
        // the dataset protocol: epoch e, index i is position e * trainingCount + i of the stream
        var small = g
        small.trainingCount = 10
        XCTAssertEqual(small.trainingSample(epoch: 2, index: 3).image, g.sample(23).image)
        XCTAssertEqual(small.trainingSample(at: 23).labels, g.sample(23).labels)
        // validation images hold whole 8-bit levels, as the PNGs `segdist generate` writes of them
        XCTAssertEqual(small.validationSample(1).image, g.sample(SyntheticShapes.validationStream + 1).image.map { Float(UInt8(($0 * 255).rounded())) / 255 })
        // one class: the target is the foreground (every label but 0)
        var single = g
        single.foregroundOnly = true
        XCTAssertEqual(single.classes, 1)
        XCTAssertEqual(single.trainingBatch([4]).targets.storage, g.sample(4).labels.map { $0 != 0 ? 1 : 0 })
        // training samples normalised on the way out: (x - mean) / std per channel; validation
        // samples stay as the file would hold them (the evaluation normalises, as predict does)
        let normalised = NormalizedDataset(g, Normalization(mean: [0.5], std: [0.25]))
        XCTAssertEqual(normalised.trainingSample(epoch: 0, index: 2).image, g.trainingSample(epoch: 0, index: 2).image.map { ($0 - 0.5) / 0.25 })
        XCTAssertEqual(normalised.validationSample(2).image, g.validationSample(2).image)
    }

    func testImagesAreNormalisedAndLabelsMatchTheBrightDiscs() {
        var g = SyntheticShapes(size: 128, border: 20, seed: 1)
        g.noise = 0
        let (image, labels) = g.sample(0)
        XCTAssertEqual(image.min(), 0)
        XCTAssertEqual(image.max(), 1)
        // without noise the background (grey level 1) is the minimum and discs are brighter
        for p in 0..<image.count { if labels[p] == 0 { XCTAssertEqual(image[p], 0) } else { XCTAssertGreaterThan(image[p], 0) } }
        XCTAssertGreaterThan(labels.filter { $0 == 1 }.count, 100)
    }

    func testTheDefaultBorderWorksAtAnySizeAndSquaresAddAClass() {
        for size in [16, 33, 100, 300] {
            var g = SyntheticShapes(size: size, border: size * 20 / 128, seed: 2)
            g.radiusMax = max(3, size / 4); g.radiusMin = 2
            g.squares = true; g.rgb = true
            let (image, labels) = g.sample(9)
            XCTAssertEqual(image.count, 3 * size * size)
            XCTAssertTrue(image.allSatisfy { $0 >= 0 && $0 <= 1 })
            XCTAssertTrue(labels.allSatisfy { $0 <= 2 })
        }
    }

    func testPNGRoundTripAndErrors() throws {
        let dir = NSTemporaryDirectory() + "segdist-png-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let grey = PNGImage(width: 3, height: 2, channels: 1, pixels: [0, 10, 20, 30, 40, 255])
        let rgb = PNGImage(width: 2, height: 1, channels: 3, pixels: [255, 0, 0, 1, 2, 3])
        try grey.write(to: dir + "/g.png")
        try rgb.write(to: dir + "/c.png")
        XCTAssertEqual(try PNGImage(path: dir + "/g.png"), grey)
        XCTAssertEqual(try PNGImage(path: dir + "/c.png"), rgb)
        XCTAssertThrowsError(try PNGImage(path: dir + "/none.png")) { XCTAssertTrue("\($0)".hasSuffix("none.png: no such file")) }
        try Data("not a png".utf8).write(to: URL(fileURLWithPath: dir + "/bad.png"))
        XCTAssertThrowsError(try PNGImage(path: dir + "/bad.png")) { XCTAssertTrue("\($0)".contains("bad.png: is not a readable PNG")) }
    }
}
