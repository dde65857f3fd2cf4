import XCTest
import Foundation
import SegCore

final class SafeTensorsTests: XCTestCase {
    var dir: String!
    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "segdist-st-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func testRoundTripKeepsValuesShapesIntegersAndMetadata() throws {
        var w = SafeTensorsWriter(metadata: ["config": "model: unet", "step": "12"])
        let a = Tensor(shape: [2, 3], storage: [1, -2, 3.5, 0, .greatestFiniteMagnitude, -1e-30])
        w.add("inc.conv.conv.0.weight", a)
        w.add("inc.conv.conv.1.num_batches_tracked", int64s: [7], shape: [])
        w.add("empty", Tensor(zeros: [0, 4]))
        let path = dir + "/ck.safetensors"
        try w.write(to: path)
        let f = try SafeTensorsFile(path: path)
        XCTAssertEqual(try f.tensor("inc.conv.conv.0.weight"), a)
        XCTAssertEqual(try f.int64s("inc.conv.conv.1.num_batches_tracked"), [7])
        XCTAssertEqual(f.entry("inc.conv.conv.1.num_batches_tracked")?.shape, [])
        XCTAssertEqual(try f.tensor("empty").shape, [0, 4])
        XCTAssertEqual(f.metadata.filter { $0.key != SafeTensorsFile.checksumKey }, ["config": "model: unet", "step": "12"])
        XCTAssertTrue(try f.verifyChecksums(), "every tensor's CRC-32C is written with it")
        // the data section starts 8-byte aligned
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        XCTAssertEqual(Int(data[0]) % 8, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/.ck.safetensors.tmp-\(getpid())"))
        // one flipped byte inside a tensor is found, naming the tensor
        var damaged = data
        damaged[damaged.count - 4 * 6 - 8 + 1] ^= 0x40   // inside the 2x3 weight, the first tensor in the file
        try damaged.write(to: URL(fileURLWithPath: dir + "/damaged.safetensors"))
        XCTAssertThrowsError(try SafeTensorsFile(path: dir + "/damaged.safetensors").verifyChecksums()) {
            XCTAssertTrue("\($0)".contains("tensor 'inc.conv.conv.0.weight' is damaged: its bytes do not match the checksum written with them"), "\($0)")
        }
    }

    /// Builds a file from a header dictionary and a data section.
    func file(header: Any, data: [UInt8], lengthOverride: UInt64? = nil) throws -> Data {
        let json = try JSONSerialization.data(withJSONObject: header)
        var out = Data()
        var n = (lengthOverride ?? UInt64(json.count)).littleEndian
        withUnsafeBytes(of: &n) { out.append(contentsOf: $0) }
        out.append(json)
        out.append(contentsOf: data)
        return out
    }

    func assertRejected(_ data: Data, mentioning words: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try SafeTensorsFile(data: data, path: "bad.safetensors"), file: file, line: line) { error in
            let message = String(describing: error)
            XCTAssertTrue(message.hasPrefix("bad.safetensors: "), message, file: file, line: line)
            for w in words { XCTAssertTrue(message.contains(w), "'\(message)' should mention '\(w)'", file: file, line: line) }
        }
    }

    func testMalformedFilesAreRejectedWithTheFileAndTheProblem() throws {
        let ok: [String: Any] = ["a": ["dtype": "F32", "shape": [2], "data_offsets": [0, 8]]]
        XCTAssertNoThrow(try SafeTensorsFile(data: file(header: ok, data: Array(repeating: 0, count: 8))))

        assertRejected(Data([1, 2, 3]), mentioning: ["truncated"])
        assertRejected(try file(header: ok, data: Array(repeating: 0, count: 8), lengthOverride: 1 << 40),
                       mentioning: ["header length", "past the end"])
        var notJSON = Data([4, 0, 0, 0, 0, 0, 0, 0]); notJSON.append(contentsOf: Array("{{{{".utf8))
        assertRejected(notJSON, mentioning: ["not a JSON object"])
        assertRejected(try file(header: ok, data: Array(repeating: 0, count: 4)), mentioning: ["'a'", "run past the data section"])
        assertRejected(try file(header: ["a": ["dtype": "Q7", "shape": [2], "data_offsets": [0, 8]]], data: Array(repeating: 0, count: 8)),
                       mentioning: ["'a'", "unknown dtype 'Q7'"])
        assertRejected(try file(header: ["a": ["dtype": "F32", "shape": [3], "data_offsets": [0, 8]]], data: Array(repeating: 0, count: 8)),
                       mentioning: ["'a'", "needs 12 bytes", "span 8"])
        assertRejected(try file(header: ["a": ["dtype": "F32", "shape": [2], "data_offsets": [0, 8]],
                                         "b": ["dtype": "F32", "shape": [2], "data_offsets": [4, 12]]], data: Array(repeating: 0, count: 12)),
                       mentioning: ["'a'", "'b'", "overlap"])
        assertRejected(try file(header: ["a": ["dtype": "F32", "shape": [-1], "data_offsets": [0, 8]]], data: Array(repeating: 0, count: 8)),
                       mentioning: ["'a'", "shape"])
        assertRejected(try file(header: ["a": ["dtype": "F32", "shape": [2], "data_offsets": [8, 0]]], data: Array(repeating: 0, count: 8)),
                       mentioning: ["'a'", "data_offsets"])
        assertRejected(try file(header: ["__metadata__": ["k": 3]], data: []), mentioning: ["__metadata__"])
    }

    func testMissingFileAndMissingTensorAreNamed() throws {
        XCTAssertThrowsError(try SafeTensorsFile(path: dir + "/nope.safetensors")) {
            XCTAssertEqual(String(describing: $0), dir + "/nope.safetensors: no such file")
        }
        var w = SafeTensorsWriter()
        w.add("x", Tensor(zeros: [1]))
        try w.write(to: dir + "/one.safetensors")
        let f = try SafeTensorsFile(path: dir + "/one.safetensors")
        XCTAssertThrowsError(try f.tensor("y")) { XCTAssertTrue(String(describing: $0).contains("has no tensor 'y'")) }
    }

    func testAFailedWriteLeavesThePreviousFileIntact() throws {
        let path = dir + "/ck.safetensors"
        var w = SafeTensorsWriter()
        w.add("x", Tensor(repeating: 1, shape: [4]))
        try w.write(to: path)
        // A directory where the temporary file would go makes the next write fail part-way.
        try FileManager.default.createDirectory(atPath: dir + "/.ck.safetensors.tmp-\(getpid())", withIntermediateDirectories: true)
        var w2 = SafeTensorsWriter()
        w2.add("x", Tensor(repeating: 2, shape: [4]))
        XCTAssertThrowsError(try w2.write(to: path))
        XCTAssertEqual(try SafeTensorsFile(path: path).tensor("x").storage, [1, 1, 1, 1])
    }

    func testReadsTheFixtureFile() throws {
        let f = try SafeTensorsFile(path: Fixtures.referencePath)
        XCTAssertEqual(f.entries.count, 735)
        XCTAssertNotNil(f.metadata["cases"])
    }
}

import SegTestSupport
