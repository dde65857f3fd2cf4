import Foundation
import SegCore

/// A NumPy .npy array read through a memory map (versions 1-3, C order, little-endian): only
/// the pages a sample touches are read, so a large dataset is never loaded whole.
public struct NPYArray: @unchecked Sendable {
    public enum DType: String, Sendable { case u1 = "|u1", i1 = "|i1", f4 = "<f4", f8 = "<f8", i4 = "<i4", i8 = "<i8", b1 = "|b1"
        var size: Int { switch self { case .u1, .i1, .b1: return 1; case .f4, .i4: return 4; case .f8, .i8: return 8 } }
    }
    public let path: String
    public let shape: [Int]
    public let dtype: DType
    private let data: Data
    private let offset: Int

    public var count: Int { shape.reduce(1, *) }

    public init(path: String) throws {
        func fail(_ problem: String) -> ImageError { ImageError(path: path, problem: problem) }
        guard FileManager.default.fileExists(atPath: path) else { throw fail("no such file") }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) } catch {
            throw fail("cannot be read: \(systemMessage(error))")
        }
        guard data.count >= 10, data.prefix(6) == Data([0x93] + Array("NUMPY".utf8)) else { throw fail("is not a .npy file") }
        let major = data[data.startIndex + 6]
        let headerLength: Int, headerStart: Int
        switch major {
        case 1: headerLength = Int(data[data.startIndex + 8]) | Int(data[data.startIndex + 9]) << 8; headerStart = 10
        case 2, 3:
            guard data.count >= 12 else { throw fail("is truncated") }
            headerLength = (0..<4).reduce(0) { $0 | Int(data[data.startIndex + 8 + $1]) << (8 * $1) }; headerStart = 12
        default: throw fail("has .npy version \(major), which segdist does not read")
        }
        guard headerStart + headerLength <= data.count,
              let header = String(data: data.subdata(in: (data.startIndex + headerStart)..<(data.startIndex + headerStart + headerLength)),
                                  encoding: .utf8) else { throw fail("has a truncated header") }
        func field(_ key: String) -> String? {
            guard let r = header.range(of: "'\(key)':") else { return nil }
            return String(header[r.upperBound...]).trimmingCharacters(in: .whitespaces)
        }
        guard let descr = field("descr"), let q1 = descr.firstIndex(of: "'"),
              let q2 = descr[descr.index(after: q1)...].firstIndex(of: "'") else { throw fail("has no dtype in its header") }
        let typeName = String(descr[descr.index(after: q1)..<q2])
        guard let dtype = DType(rawValue: typeName) else {
            throw fail("holds \(typeName) values; segdist reads uint8, int8, bool, int32, int64, float32 and float64 (little-endian)")
        }
        guard let order = field("fortran_order"), order.hasPrefix("False") else { throw fail("is in Fortran order; save it in C order") }
        guard let shapeText = field("shape"), let open = shapeText.firstIndex(of: "("), let close = shapeText.firstIndex(of: ")") else {
            throw fail("has no shape in its header")
        }
        let dims = shapeText[shapeText.index(after: open)..<close].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let shape = try dims.filter { !$0.isEmpty }.map { d -> Int in
            guard let v = Int(d), v >= 0 else { throw fail("has a malformed shape (\(shapeText))") }
            return v
        }
        let (elements, overflow) = shape.reduce((1, false)) { acc, d in
            let (m, o) = acc.0.multipliedReportingOverflow(by: d); return (m, acc.1 || o)
        }
        guard !overflow else { throw fail("has a shape whose size overflows (\(shape))") }
        let need = headerStart + headerLength + elements * dtype.size
        guard data.count >= need else { throw fail("is truncated: \(shape) of \(typeName) needs \(need) bytes, the file has \(data.count)") }
        self.path = path; self.shape = shape; self.dtype = dtype; self.data = data; offset = headerStart + headerLength
    }

    /// Element `i` (flat, C order) as a Double.
    @inline(__always)
    public func value(_ i: Int) -> Double {
        data.withUnsafeBytes { raw -> Double in
            let p = raw.baseAddress! + offset + i * dtype.size
            switch dtype {
            case .u1, .b1: return Double(p.load(as: UInt8.self))
            case .i1: return Double(p.load(as: Int8.self))
            case .f4: return Double(Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(as: UInt32.self))))
            case .f8: return Double(bitPattern: UInt64(littleEndian: p.loadUnaligned(as: UInt64.self)))
            case .i4: return Double(Int32(littleEndian: p.loadUnaligned(as: Int32.self)))
            case .i8: return Double(Int64(littleEndian: p.loadUnaligned(as: Int64.self)))
            }
        }
    }

    /// Elements `range` (flat) as Doubles, read in one pass.
    public func values(_ range: Range<Int>) -> [Double] { range.map(value) }
}
