import Foundation

// safetensors: an 8-byte little-endian header length, a JSON header
// (name -> {dtype, shape, data_offsets}, plus an optional "__metadata__" of strings),
// then the raw little-endian tensor bytes. Every malformed file is rejected with an error
// naming the file and the problem.

public enum SafeTensorsDType: String, CaseIterable, Sendable {
    case F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL, U16, U32, U64, F8_E4M3, F8_E5M2
    public var byteSize: Int {
        switch self {
        case .F64, .I64, .U64: return 8
        case .F32, .I32, .U32: return 4
        case .F16, .BF16, .I16, .U16: return 2
        case .I8, .U8, .BOOL, .F8_E4M3, .F8_E5M2: return 1
        }
    }
}

public struct SafeTensorsError: Error, CustomStringConvertible, Equatable {
    public let path: String
    public let problem: String
    public init(path: String, problem: String) { self.path = path; self.problem = problem }
    public var description: String { "\(path): \(problem)" }
}

public struct SafeTensorsEntry: Equatable, Sendable {
    public let name: String
    public let dtype: SafeTensorsDType
    public let shape: [Int]
    /// Byte range inside the data section.
    public let range: Range<Int>
}

/// A validated safetensors file held in memory.
public struct SafeTensorsFile {
    public let path: String
    public let metadata: [String: String]
    /// Entries in file order.
    public let entries: [SafeTensorsEntry]
    private let index: [String: Int]
    private let bytes: Data
    private let dataStart: Int

    public init(path: String) throws {
        guard FileManager.default.fileExists(atPath: path) else {
            throw SafeTensorsError(path: path, problem: "no such file")
        }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw SafeTensorsError(path: path, problem: "cannot be read: \(systemMessage(error))")
        }
        try self.init(data: data, path: path)
    }

    public init(data: Data, path: String = "<memory>") throws {
        func fail(_ problem: String) -> SafeTensorsError { SafeTensorsError(path: path, problem: problem) }
        self.path = path
        self.bytes = data
        guard data.count >= 8 else {
            throw fail("truncated: \(data.count) bytes, too short for the 8-byte header length")
        }
        let headerLength = data.withUnsafeBytes { raw -> UInt64 in
            var v: UInt64 = 0
            for i in 0..<8 { v |= UInt64(raw[i]) << (8 * UInt64(i)) }
            return v
        }
        guard headerLength <= UInt64(data.count - 8) else {
            throw fail("header length \(headerLength) runs past the end of the file (\(data.count) bytes)")
        }
        dataStart = 8 + Int(headerLength)
        let dataSize = data.count - dataStart
        let headerBytes = data.subdata(in: 8..<dataStart)
        guard let json = try? JSONSerialization.jsonObject(with: headerBytes),
              let header = json as? [String: Any] else {
            throw fail("header is not a JSON object")
        }
        var metadata: [String: String] = [:]
        if let meta = header["__metadata__"] {
            guard let m = meta as? [String: Any] else { throw fail("__metadata__ is not an object of strings") }
            for (k, v) in m {
                guard let s = v as? String else { throw fail("__metadata__ value for '\(k)' is not a string") }
                metadata[k] = s
            }
        }
        var entries: [SafeTensorsEntry] = []
        for (name, value) in header where name != "__metadata__" {
            guard let info = value as? [String: Any] else { throw fail("tensor '\(name)' is not described by an object") }
            guard let dtypeName = info["dtype"] as? String else { throw fail("tensor '\(name)' has no dtype") }
            guard let dtype = SafeTensorsDType(rawValue: dtypeName) else {
                throw fail("tensor '\(name)' has unknown dtype '\(dtypeName)'")
            }
            guard let shapeAny = info["shape"] as? [Any], let shape = Self.integers(shapeAny),
                  shape.allSatisfy({ $0 >= 0 }) else {
                throw fail("tensor '\(name)' has a shape that is not a list of non-negative integers")
            }
            guard let offAny = info["data_offsets"] as? [Any], let offsets = Self.integers(offAny), offsets.count == 2,
                  offsets[0] >= 0, offsets[1] >= offsets[0] else {
                throw fail("tensor '\(name)' has data_offsets that are not [begin, end] with 0 <= begin <= end")
            }
            guard offsets[1] <= dataSize else {
                throw fail("tensor '\(name)' data_offsets [\(offsets[0]), \(offsets[1])] run past the data section (\(dataSize) bytes)")
            }
            var elements = 1
            for d in shape {
                let (p, overflow) = elements.multipliedReportingOverflow(by: d)
                guard !overflow else { throw fail("tensor '\(name)' shape \(shape) is too large") }
                elements = p
            }
            let expected = elements.multipliedReportingOverflow(by: dtype.byteSize)
            guard !expected.overflow, expected.partialValue == offsets[1] - offsets[0] else {
                throw fail("tensor '\(name)' of shape \(shape) and dtype \(dtypeName) needs \(elements * dtype.byteSize) bytes but data_offsets span \(offsets[1] - offsets[0])")
            }
            entries.append(SafeTensorsEntry(name: name, dtype: dtype, shape: shape, range: offsets[0]..<offsets[1]))
        }
        entries.sort { ($0.range.lowerBound, $0.range.upperBound, $0.name) < ($1.range.lowerBound, $1.range.upperBound, $1.name) }
        for (a, b) in zip(entries, entries.dropFirst()) where b.range.lowerBound < a.range.upperBound {
            throw fail("tensors '\(a.name)' and '\(b.name)' overlap in the data section")
        }
        self.entries = entries
        self.metadata = metadata
        self.index = Dictionary(uniqueKeysWithValues: entries.enumerated().map { ($1.name, $0) })
    }

    private static func integers(_ values: [Any]) -> [Int]? {
        var out: [Int] = []
        for v in values {
            if let i = v as? Int { out.append(i) }
            else if let d = v as? Double, let i = Int(exactly: d) { out.append(i) } else { return nil }
        }
        return out
    }

    public var names: [String] { entries.map(\.name) }

    /// The metadata key of the tensors' CRC-32C checksums.
    public static let checksumKey = "crc32c"

    /// Checks every tensor's bytes against the checksums written with them (files without
    /// checksums — PyTorch's, older segdist ones — pass unchecked); a mismatch names the tensor.
    /// Returns whether there were checksums to check.
    @discardableResult
    public func verifyChecksums() throws -> Bool {
        guard let text = metadata[Self.checksumKey] else { return false }
        guard let sums = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: String] else {
            throw SafeTensorsError(path: path, problem: "has unreadable checksums in its metadata: the file is damaged")
        }
        try bytes.withUnsafeBytes { raw in
            for e in entries {
                guard let want = sums[e.name] else {
                    throw SafeTensorsError(path: path, problem: "tensor '\(e.name)' has no checksum beside the others: the file is damaged")
                }
                let got = String(format: "%08x", crc32c(UnsafeRawBufferPointer(rebasing: raw[(dataStart + e.range.lowerBound)..<(dataStart + e.range.upperBound)])))
                guard got == want else {
                    throw SafeTensorsError(path: path, problem: "tensor '\(e.name)' is damaged: its bytes do not match the checksum written with them (CRC-32C \(got), written \(want))")
                }
            }
        }
        return true
    }

    public func entry(_ name: String) -> SafeTensorsEntry? { index[name].map { entries[$0] } }

    /// A float32 tensor (F32 in the file; F64 and F16 are converted).
    public func tensor(_ name: String) throws -> Tensor {
        guard let e = entry(name) else { throw SafeTensorsError(path: path, problem: "has no tensor '\(name)'") }
        let count = e.shape.reduce(1, *)
        var values = [Float](repeating: 0, count: count)
        bytes.withUnsafeBytes { raw in
            let base = raw.baseAddress! + dataStart + e.range.lowerBound
            switch e.dtype {
            case .F32: for i in 0..<count { values[i] = Float(bitPattern: base.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self).littleEndian) }
            case .F64: for i in 0..<count { values[i] = Float(Double(bitPattern: base.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self).littleEndian)) }
            case .I64: for i in 0..<count { values[i] = Float(Int64(littleEndian: base.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self))) }
            default: break
            }
        }
        guard [.F32, .F64, .I64].contains(e.dtype) else {
            throw SafeTensorsError(path: path, problem: "tensor '\(name)' has dtype \(e.dtype.rawValue), expected F32")
        }
        return Tensor(shape: e.shape, storage: values)
    }

    /// An integer tensor (I64 or I32 in the file).
    public func int64s(_ name: String) throws -> [Int64] {
        guard let e = entry(name) else { throw SafeTensorsError(path: path, problem: "has no tensor '\(name)'") }
        let count = e.shape.reduce(1, *)
        return try bytes.withUnsafeBytes { raw in
            let base = raw.baseAddress! + dataStart + e.range.lowerBound
            switch e.dtype {
            case .I64: return (0..<count).map { Int64(littleEndian: base.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self)) }
            case .I32: return (0..<count).map { Int64(Int32(littleEndian: base.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self))) }
            default: throw SafeTensorsError(path: path, problem: "tensor '\(name)' has dtype \(e.dtype.rawValue), expected I64")
            }
        }
    }
}

// MARK: - Writing

/// Collects tensors and writes a safetensors file atomically: a temporary file in the same
/// directory, fsync, then rename, so a crash mid-write leaves any previous file intact.
public struct SafeTensorsWriter {
    private var items: [(name: String, dtype: SafeTensorsDType, shape: [Int], bytes: Data)] = []
    public var metadata: [String: String] = [:]

    public init(metadata: [String: String] = [:]) { self.metadata = metadata }

    public mutating func add(_ name: String, _ tensor: Tensor) {
        // segdist runs on little-endian machines (x86_64, arm64), so memory order is file order.
        items.append((name, .F32, tensor.shape, tensor.withUnsafeBufferPointer { Data(buffer: $0) }))
    }

    public mutating func add(_ name: String, int64s values: [Int64], shape: [Int]) {
        precondition(shape.reduce(1, *) == values.count, "Shape \(shape) does not match \(values.count) values")
        items.append((name, .I64, shape, values.withUnsafeBufferPointer { Data(buffer: $0) }))
    }

    /// The complete file contents. The metadata gains `crc32c`: every tensor's CRC-32C (8 hex
    /// digits, by name, as JSON), which `SafeTensorsFile.verifyChecksums` checks.
    public func serialized() throws -> Data {
        var header: [String: Any] = [:]
        var metadata = self.metadata
        var sums: [String: String] = [:]
        for item in items { sums[item.name] = String(format: "%08x", item.bytes.withUnsafeBytes { crc32c($0) }) }
        metadata[SafeTensorsFile.checksumKey] = String(decoding: try JSONSerialization.data(withJSONObject: sums, options: [.sortedKeys]), as: UTF8.self)
        var offset = 0
        for item in items {
            header[item.name] = ["dtype": item.dtype.rawValue, "shape": item.shape,
                                 "data_offsets": [offset, offset + item.bytes.count]] as [String: Any]
            offset += item.bytes.count
        }
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        // Pad with spaces so the data section starts 8-byte aligned, as the reference writer does.
        while json.count % 8 != 0 { json.append(0x20) }
        var out = Data(capacity: 8 + json.count + offset)
        var length = UInt64(json.count).littleEndian
        withUnsafeBytes(of: &length) { out.append(contentsOf: $0) }
        out.append(json)
        for item in items { out.append(item.bytes) }
        return out
    }

    public func write(to path: String) throws {
        try writeFileAtomically(try serialized(), to: path)
    }
}
