import Foundation

/// A dense float32 array in row-major order; activations use NCHW.
///
/// Storage is a Swift array, so copies are copy-on-write and raw pointers are only lent inside
/// closures. Kernels take those pointers plus explicit dimensions (see `Kernels/`).
public struct Tensor: Equatable {
    public private(set) var shape: [Int]
    public var storage: [Float]

    public init(shape: [Int], storage: [Float]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "Tensor dimensions must be non-negative, got \(shape)")
        precondition(shape.reduce(1, *) == storage.count,
                     "Tensor of shape \(shape) needs \(shape.reduce(1, *)) values, got \(storage.count)")
        self.shape = shape
        self.storage = storage
    }

    public init(zeros shape: [Int]) {
        self.init(shape: shape, storage: [Float](repeating: 0, count: shape.reduce(1, *)))
    }

    public init(repeating value: Float, shape: [Int]) {
        self.init(shape: shape, storage: [Float](repeating: value, count: shape.reduce(1, *)))
    }

    /// A tensor whose every element the caller promises to overwrite; skips the zero fill.
    public init(uninitialized shape: [Int]) {
        let n = shape.reduce(1, *)
        self.shape = shape
        self.storage = [Float](unsafeUninitializedCapacity: n) { _, count in count = n }
    }

    public var count: Int { storage.count }
    public var rank: Int { shape.count }

    /// The four dimensions of an NCHW activation.
    public var nchw: (n: Int, c: Int, h: Int, w: Int) {
        precondition(shape.count == 4, "Expected an NCHW tensor, got shape \(shape)")
        return (shape[0], shape[1], shape[2], shape[3])
    }

    public func reshaped(_ newShape: [Int]) -> Tensor {
        Tensor(shape: newShape, storage: storage)
    }

    @inlinable
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try storage.withUnsafeBufferPointer(body)
    }

    @inlinable
    public mutating func withUnsafeMutableBufferPointer<R>(
        _ body: (inout UnsafeMutableBufferPointer<Float>) throws -> R
    ) rethrows -> R {
        try storage.withUnsafeMutableBufferPointer(body)
    }

    @inlinable
    public func ptr<R>(_ body: (UnsafePointer<Float>) throws -> R) rethrows -> R {
        try storage.withUnsafeBufferPointer { try body($0.baseAddress!) }
    }

    @inlinable
    public mutating func mutPtr<R>(_ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        try storage.withUnsafeMutableBufferPointer { try body($0.baseAddress!) }
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let head = storage.prefix(6).map { String(format: "%.4g", $0) }.joined(separator: ", ")
        return "Tensor(\(shape), [\(head)\(count > 6 ? ", ..." : "")])"
    }
}
