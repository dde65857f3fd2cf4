import Foundation
import SegCore
import SegData

/// TensorBoard event files, written directly: TFRecord framing (length, masked CRC-32C of the
/// length, an `Event` protocol buffer, masked CRC-32C of it) around `Event`s holding scalar and
/// PNG image summaries — what `tensorboard --logdir RUN_DIR` reads. Each record is appended and
/// flushed whole; a failed write is a warning for the caller, never half a record.
public final class TensorBoardWriter {
    public let path: String
    private let handle: FileHandle

    public init(directory: String) throws {
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "host"
        path = directory + "/events.out.tfevents.\(Int(Date().timeIntervalSince1970)).\(host).\(getpid())"
        guard FileManager.default.createFile(atPath: path, contents: nil), let h = FileHandle(forWritingAtPath: path) else {
            throw TrainingError("cannot create \(path)")
        }
        handle = h
        var version = Protobuf()
        version.double(1, Date().timeIntervalSince1970)
        version.string(3, "brain.Event:2")
        try append(version.bytes)
    }

    deinit { try? handle.close() }

    /// One scalar per tag at `step`.
    public func scalars(_ values: [(tag: String, value: Double)], step: Int) throws {
        var summary = Protobuf()
        for (tag, value) in values where value.isFinite {
            var v = Protobuf()
            v.string(1, tag)
            v.float(2, Float(value))
            summary.message(1, v)
        }
        try event(summary, step: step)
    }

    /// A picture at `step`.
    public func image(_ tag: String, _ png: PNGImage, step: Int) throws {
        var image = Protobuf()
        image.varint(1, UInt64(png.height)); image.varint(2, UInt64(png.width)); image.varint(3, UInt64(png.channels))
        image.bytes(4, [UInt8](try png.encoded(.fast)))
        var value = Protobuf()
        value.string(1, tag)
        value.message(4, image)
        var summary = Protobuf()
        summary.message(1, value)
        try event(summary, step: step)
    }

    private func event(_ summary: Protobuf, step: Int) throws {
        var e = Protobuf()
        e.double(1, Date().timeIntervalSince1970)
        e.varint(2, UInt64(bitPattern: Int64(step)))
        e.message(5, summary)
        try append(e.bytes)
    }

    private func append(_ data: [UInt8]) throws {
        var length = [UInt8](repeating: 0, count: 8)
        for i in 0..<8 { length[i] = UInt8(truncatingIfNeeded: UInt64(data.count) >> (8 * i)) }
        var record = length + littleEndian(maskedCRC32C(length)) + data + littleEndian(maskedCRC32C(data))
        let end = try handle.seekToEnd()
        do {
            try record.withUnsafeMutableBytes { try handle.write(contentsOf: Data($0)) }
            try handle.synchronize()
        } catch {
            try? handle.truncate(atOffset: end)
            throw error
        }
    }

    private func littleEndian(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
}

/// CRC-32C masked as TFRecord stores it.
func maskedCRC32C(_ bytes: [UInt8]) -> UInt32 {
    let crc = crc32c(bytes)
    return ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
}

/// The few protocol-buffer encodings an event needs.
struct Protobuf {
    private(set) var bytes: [UInt8] = []

    private mutating func key(_ field: Int, _ wire: UInt64) { appendVarint(UInt64(field) << 3 | wire) }
    private mutating func appendVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 { bytes.append(UInt8(v & 0x7F) | 0x80); v >>= 7 }
        bytes.append(UInt8(v))
    }
    mutating func varint(_ field: Int, _ value: UInt64) { key(field, 0); appendVarint(value) }
    mutating func double(_ field: Int, _ value: Double) {
        key(field, 1)
        let bits = value.bitPattern
        for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: bits >> (8 * i))) }
    }
    mutating func float(_ field: Int, _ value: Float) {
        key(field, 5)
        let bits = value.bitPattern
        for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: bits >> (8 * i))) }
    }
    mutating func bytes(_ field: Int, _ data: [UInt8]) { key(field, 2); appendVarint(UInt64(data.count)); bytes += data }
    mutating func string(_ field: Int, _ s: String) { bytes(field, Array(s.utf8)) }
    mutating func message(_ field: Int, _ m: Protobuf) { bytes(field, m.bytes) }
}
