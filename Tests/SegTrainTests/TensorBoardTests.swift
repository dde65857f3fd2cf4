import XCTest
import SegCore
import Foundation
@testable import SegTrain
import SegTestSupport

/// TensorBoard event files: TFRecord framing with CRC-32C, and — where Python's tensorboard
/// package is installed — read back by TensorBoard's own reader.
final class TensorBoardTests: XCTestCase {
    func testCRC32CAndItsMask() {
        XCTAssertEqual(crc32c(Array("123456789".utf8)), 0xE306_9283)   // the standard check value
        XCTAssertEqual(crc32c([]), 0)
        let c: UInt32 = 0xE306_9283
        XCTAssertEqual(maskedCRC32C(Array("123456789".utf8)), ((c >> 15) | (c << 17)) &+ 0xA282_EAD8)
    }

    func testARunWritesWellFramedEventsThatTensorBoardReads() throws {
        let dir = NSTemporaryDirectory() + "segdist-tb-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var config = TrainingConfig()
        for o in ["model=unet_shallow", "width=2", "image_size=16", "radius_min=2", "radius_max=6", "batch_size=2", "epochs=2",
                  "steps_per_epoch=2", "val_images=2", "log_every=1", "tensorboard=true", "checkpoint_dir=\(dir)"] { try config.override(o) }
        try config.validate(source: "test")
        try TrainingRun(config: config).run()
        let name = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: dir).first { $0.hasPrefix("events.out.tfevents.") })
        // every record: length, masked CRC of the length, data, masked CRC of the data
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: dir + "/" + name)))
        var at = 0, records = 0
        func u32(_ i: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(bytes[i + $1]) << (8 * $1) } }
        while at < bytes.count {
            let length = (0..<8).reduce(0) { $0 | Int(bytes[at + $1]) << (8 * $1) }
            XCTAssertEqual(u32(at + 8), maskedCRC32C(Array(bytes[at..<(at + 8)])))
            XCTAssertEqual(u32(at + 12 + length), maskedCRC32C(Array(bytes[(at + 12)..<(at + 12 + length)])))
            at += 16 + length
            records += 1
        }
        XCTAssertEqual(at, bytes.count)
        XCTAssertEqual(records, 1 + 4 + 2 * 2, "version, 4 train scalars, 2 evaluations x (scalars, panel)")
        // TensorBoard's own reader, where it is installed
        guard Python.canImport("tensorboard") else {
            throw XCTSkip("TensorBoard's reader did not run: python3 with the tensorboard package is not installed here (the framing above was checked)")
        }
        let (status, said) = Python.run(code: """
            from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
            ea = EventAccumulator('\(dir)', size_guidance={'images': 0, 'scalars': 0}); ea.Reload()
            assert [e.step for e in ea.Scalars('train/loss')] == [1, 2, 3, 4], ea.Scalars('train/loss')
            assert len(ea.Scalars('val/dice')) == 2 and len(ea.Images('val/prediction')) == 2
            print('read by tensorboard')
            """)
        XCTAssertEqual(status, 0, said)
        XCTAssertTrue(said.contains("read by tensorboard"), said)
    }
}
