import SegCore

/// Where one named tensor lives inside a flat buffer.
public struct TensorSlot: Equatable, Sendable {
    public let name: String
    public let shape: [Int]
    public let offset: Int
    public var count: Int { shape.reduce(1, *) }
    public var range: Range<Int> { offset..<(offset + count) }
}

/// Every learnable parameter of a model in one contiguous buffer, every gradient in a second
/// buffer with the same layout, and the batch-norm running statistics in a third. Zeroing the
/// gradients is one fill, the optimizer is one flat loop, and broadcasting or all-reducing the
/// model is a few large calls over contiguous ranges.
///
/// Layers register their tensors while the model is built (in forward order, so backward
/// finishes gradients from the end of the buffer towards the start); `seal()` then fixes the
/// layout. Names are PyTorch state_dict keys (`inc.conv.conv.0.weight`).
public final class ParameterStore {
    public private(set) var parameterSlots: [TensorSlot] = []
    public private(set) var bufferSlots: [TensorSlot] = []
    /// Integer buffers (`num_batches_tracked`), by name.
    public private(set) var counterNames: [String] = []
    public var counters: [Int64] = []

    public private(set) var parameterCount = 0
    public private(set) var bufferCount = 0
    private var initialParameters: [Float] = []
    private var initialBuffers: [Float] = []
    public private(set) var isSealed = false

    /// When set, batch norm takes its statistics over every process of this group.
    public weak var batchNormGroup: CollectiveSum?

    /// Called during backward with an offset: every gradient from there to the end of the
    /// buffer is final for this backward pass (layers finish in reverse registration order).
    /// Lets a data-parallel trainer start reducing gradients while backward continues.
    public var onGradientsReady: ((Int) -> Void)?

    @inline(__always) public func gradientsReady(from slot: TensorSlot) { onGradientsReady?(slot.offset) }

    public private(set) var parameters: UnsafeMutablePointer<Float>!
    public private(set) var gradients: UnsafeMutablePointer<Float>!
    public private(set) var buffers: UnsafeMutablePointer<Float>!

    public init() {}

    deinit {
        parameters?.deallocate(); gradients?.deallocate(); buffers?.deallocate()
    }

    // MARK: Registration

    public func registerParameter(_ name: String, shape: [Int], initialValues: [Float]) -> TensorSlot {
        precondition(!isSealed, "Parameters must be registered before the store is sealed")
        precondition(initialValues.count == shape.reduce(1, *), "Initial values for \(name) do not match \(shape)")
        let slot = TensorSlot(name: name, shape: shape, offset: parameterCount)
        parameterSlots.append(slot)
        initialParameters += initialValues
        parameterCount += slot.count
        return slot
    }

    public func registerBuffer(_ name: String, shape: [Int], initialValues: [Float]) -> TensorSlot {
        precondition(!isSealed, "Buffers must be registered before the store is sealed")
        let slot = TensorSlot(name: name, shape: shape, offset: bufferCount)
        bufferSlots.append(slot)
        initialBuffers += initialValues
        bufferCount += slot.count
        return slot
    }

    /// Registers an integer buffer and returns its index in `counters`.
    public func registerCounter(_ name: String) -> Int {
        precondition(!isSealed, "Counters must be registered before the store is sealed")
        counterNames.append(name)
        counters.append(0)
        return counters.count - 1
    }

    /// Allocates the flat buffers; gradients start at zero.
    public func seal() {
        guard !isSealed else { return }
        isSealed = true
        parameters = .allocate(capacity: max(parameterCount, 1))
        parameters.initialize(from: initialParameters, count: parameterCount)
        gradients = .allocate(capacity: max(parameterCount, 1))
        gradients.initialize(repeating: 0, count: parameterCount)
        buffers = .allocate(capacity: max(bufferCount, 1))
        buffers.initialize(from: initialBuffers, count: bufferCount)
        initialParameters = []; initialBuffers = []
    }

    // MARK: Access

    @inline(__always) public func pointer(_ slot: TensorSlot) -> UnsafeMutablePointer<Float> { parameters + slot.offset }
    @inline(__always) public func gradient(_ slot: TensorSlot) -> UnsafeMutablePointer<Float> { gradients + slot.offset }
    @inline(__always) public func buffer(_ slot: TensorSlot) -> UnsafeMutablePointer<Float> { buffers + slot.offset }

    /// A position-weighted sum of every parameter: equal on two processes only if (almost
    /// certainly) their parameters are.
    public var parameterChecksum: Double {
        var s = 0.0
        for i in 0..<parameterCount { s += Double(parameters[i]) * Double(i % 7 + 1) }
        return s
    }

    public func zeroGradients() { gradients.update(repeating: 0, count: parameterCount) }

    public func parameterSlot(named name: String) -> TensorSlot? { parameterSlots.first { $0.name == name } }
    public func bufferSlot(named name: String) -> TensorSlot? { bufferSlots.first { $0.name == name } }

    public func parameterTensor(_ slot: TensorSlot) -> Tensor {
        Tensor(shape: slot.shape, storage: Array(UnsafeBufferPointer(start: pointer(slot), count: slot.count)))
    }
    public func gradientTensor(_ slot: TensorSlot) -> Tensor {
        Tensor(shape: slot.shape, storage: Array(UnsafeBufferPointer(start: gradient(slot), count: slot.count)))
    }
    public func bufferTensor(_ slot: TensorSlot) -> Tensor {
        Tensor(shape: slot.shape, storage: Array(UnsafeBufferPointer(start: buffer(slot), count: slot.count)))
    }

    /// Every model tensor under its state_dict name, in registration order: parameters, then
    /// running statistics; integer counters are in `counterNames` / `counters`.
    public func floatStateDict() -> [(name: String, tensor: Tensor)] {
        parameterSlots.map { ($0.name, parameterTensor($0)) } + bufferSlots.map { ($0.name, bufferTensor($0)) }
    }

    /// Copies `values` into the named parameter or buffer; throws if the name or shape is wrong.
    public func load(_ name: String, _ values: Tensor) throws {
        if let slot = parameterSlot(named: name) ?? bufferSlot(named: name) {
            guard values.shape == slot.shape else {
                throw ModelError("tensor '\(name)' has shape \(values.shape), the model expects \(slot.shape)")
            }
            let dst = parameterSlot(named: name) != nil ? pointer(slot) : buffer(slot)
            values.ptr { dst.update(from: $0, count: slot.count) }
        } else {
            throw ModelError("the model has no tensor named '\(name)'")
        }
    }
}

public struct ModelError: Error, CustomStringConvertible {
    public let description: String
    public init(_ message: String) { description = message }
}
