import Foundation

/// A dense float32 array in row-major order; activations use NCHW.
///
/// Values live behind a `TensorStorage` handle, on the host or on a backend's device; a tensor
/// may be a view (`offset`) into a larger storage, which is how parameters and gradients are
/// slices of the two flat buffers of a model. Tensors are values: writing through `storage` or
/// `mutPtr` copies the memory first unless this tensor is its only owner. Backends write into
/// the memory of the destinations they are handed (outputs they allocated, gradient and
/// running-statistics views) directly — that in-place write is the point of those views.
///
/// A tensor produced by a recorded op carries its place on the tape (`tapeIndex`), which is
/// how the tape knows which inputs need a gradient.
public struct Tensor {
    public private(set) var shape: [Int]
    public private(set) var buffer: TensorStorage
    /// Offset of the first value in `buffer`, in elements.
    public private(set) var offset: Int
    public let count: Int
    /// The tape that produced this value and its index there (`Tape.none` when untracked).
    public internal(set) var tapeSerial: UInt64 = Tape.none
    public internal(set) var tapeIndex: Int32 = -1

    /// A view of `count(shape)` floats of `buffer` from `offset`.
    public init(shape: [Int], buffer: TensorStorage, offset: Int = 0) {
        precondition(shape.allSatisfy { $0 >= 0 }, "Tensor dimensions must be non-negative, got \(shape)")
        let n = shape.reduce(1, *)
        precondition(offset >= 0 && (offset + n) * 4 <= buffer.byteCount,
                     "A view of \(n) floats at \(offset) does not fit a storage of \(buffer.byteCount) bytes")
        self.shape = shape; self.buffer = buffer; self.offset = offset; count = n
    }

    /// Host memory for `shape`, uninitialised: the caller promises to overwrite every element.
    public init(uninitialized shape: [Int]) {
        self.init(shape: shape, buffer: TensorStorage(hostBytes: shape.reduce(1, *) * 4))
    }

    public init(shape: [Int], storage values: [Float]) {
        precondition(shape.reduce(1, *) == values.count,
                     "Tensor of shape \(shape) needs \(shape.reduce(1, *)) values, got \(values.count)")
        self.init(uninitialized: shape)
        values.withUnsafeBufferPointer { buffer.hostFloats.initialize(from: $0.baseAddress!, count: values.count) }
    }

    public init(repeating value: Float, shape: [Int]) {
        self.init(uninitialized: shape)
        buffer.hostFloats.initialize(repeating: value, count: count)
    }

    public init(zeros shape: [Int]) { self.init(repeating: 0, shape: shape) }

    public var rank: Int { shape.count }
    public var device: Device { buffer.device }

    /// The four dimensions of an NCHW activation.
    public var nchw: (n: Int, c: Int, h: Int, w: Int) {
        precondition(shape.count == 4, "Expected an NCHW tensor, got shape \(shape)")
        return (shape[0], shape[1], shape[2], shape[3])
    }

    /// The same values under another shape of the same size (no copy; not on the tape).
    public func reshaped(_ newShape: [Int]) -> Tensor {
        precondition(newShape.reduce(1, *) == count, "Cannot reshape \(shape) to \(newShape)")
        return Tensor(shape: newShape, buffer: buffer, offset: offset)
    }

    /// The values as an array (host tensors). Setting copies the values in.
    public var storage: [Float] {
        get { Array(UnsafeBufferPointer(start: ptr { $0 }, count: count)) }
        set {
            precondition(newValue.count == count, "Tensor of shape \(shape) needs \(count) values, got \(newValue.count)")
            let n = count
            mutPtr { dst in newValue.withUnsafeBufferPointer { dst.update(from: $0.baseAddress!, count: n) } }
        }
    }

    /// The single value of a one-element host tensor.
    public var scalar: Float {
        precondition(count == 1, "A tensor of shape \(shape) is not a scalar")
        return ptr { $0[0] }
    }

    @inlinable
    public func ptr<R>(_ body: (UnsafePointer<Float>) throws -> R) rethrows -> R {
        try body(buffer.hostFloats + offset)
    }

    @inlinable
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: buffer.hostFloats + offset, count: count))
    }

    /// Lends the host memory for writing, first copying it if another tensor shares it.
    public mutating func mutPtr<R>(_ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        makeUnique()
        return try body(buffer.hostFloats + offset)
    }

    public mutating func withUnsafeMutableBufferPointer<R>(
        _ body: (inout UnsafeMutableBufferPointer<Float>) throws -> R
    ) rethrows -> R {
        let n = count
        return try mutPtr { p in
            var b = UnsafeMutableBufferPointer(start: p, count: n)
            return try body(&b)
        }
    }

    /// True when no other tensor shares this one's memory.
    public mutating func isUniquelyOwned() -> Bool { isKnownUniquelyReferenced(&buffer) }

    private mutating func makeUnique() {
        precondition(device == .host, "Tensor memory on \(device) must be downloaded before the host writes it")
        guard !isKnownUniquelyReferenced(&buffer) || offset != 0 || buffer.byteCount != count * 4 else { return }
        let copy = TensorStorage(hostBytes: count * 4)
        copy.hostFloats.initialize(from: buffer.hostFloats + offset, count: count)
        buffer = copy; offset = 0
    }

    /// This value without its place on a tape (a constant for the ops that read it).
    public var detached: Tensor {
        var t = self
        t.tapeSerial = Tape.none; t.tapeIndex = -1
        return t
    }
}

extension Tensor: Equatable {
    /// Same shape and same values (wherever their memory is, and regardless of the tape).
    public static func == (a: Tensor, b: Tensor) -> Bool {
        a.shape == b.shape && a.ptr { pa in b.ptr { pb in (0..<a.count).allSatisfy { pa[$0] == pb[$0] } } }
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        guard device == .host else { return "Tensor(\(shape) on \(device))" }
        let head = ptr { p in (0..<min(6, count)).map { String(format: "%.4g", p[$0]) } }.joined(separator: ", ")
        return "Tensor(\(shape), [\(head)\(count > 6 ? ", ..." : "")])"
    }
}

/// Per-pixel class indices (or any int32 map), e.g. targets for cross-entropy or the winning
/// input of each max-pool window. Lives on a device like `Tensor`.
public struct IndexTensor {
    public let shape: [Int]
    public let buffer: TensorStorage
    public var count: Int { shape.reduce(1, *) }

    public init(shape: [Int], buffer: TensorStorage) {
        precondition(shape.reduce(1, *) * 4 <= buffer.byteCount, "Index tensor \(shape) does not fit its storage")
        self.shape = shape; self.buffer = buffer
    }

    /// Host memory, uninitialised.
    public init(uninitialized shape: [Int]) {
        self.init(shape: shape, buffer: TensorStorage(hostBytes: shape.reduce(1, *) * 4))
    }

    public init(shape: [Int], values: [Int32]) {
        self.init(uninitialized: shape)
        values.withUnsafeBufferPointer { buffer.hostInt32s.initialize(from: $0.baseAddress!, count: values.count) }
    }

    public var values: [Int32] { Array(UnsafeBufferPointer(start: buffer.hostInt32s, count: count)) }
}
