import Foundation
import SegCore

/// Writes a float32 array in NumPy's .npy format (version 1.0, little-endian, C order).
public func writeNPY(_ tensor: Tensor, to path: String) throws {
    let shape = tensor.shape.map(String.init).joined(separator: ", ") + (tensor.rank == 1 ? "," : "")
    var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(shape)), }"
    // magic (6) + version (2) + length (2) + header + newline, padded to a multiple of 64
    let unpadded = 10 + header.utf8.count + 1
    header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
    var data = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
    let length = UInt16(header.utf8.count)
    data.append(contentsOf: [UInt8(length & 0xFF), UInt8(length >> 8)])
    data.append(contentsOf: Array(header.utf8))
    tensor.withUnsafeBufferPointer { data.append(Data(buffer: $0)) }
    try writeFileAtomically(data, to: path)
}
