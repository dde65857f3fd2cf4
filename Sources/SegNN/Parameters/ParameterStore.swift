import SegCore

/// Where one named tensor lives inside a flat buffer; `index` is its position among the
/// store's parameters (or buffers).
public struct TensorSlot: Equatable, Sendable {
    public let name: String
    public let shape: [Int]
    public let offset: Int
    public let index: Int
    public var count: Int { shape.reduce(1, *) }
    public var range: Range<Int> { offset..<(offset + count) }
}

/// Every learnable parameter of a model in one contiguous buffer, every gradient in a second
/// buffer with the same layout, and the batch-norm running statistics in a third — each one
/// allocation on the store's backend. Zeroing the gradients is one fill, the optimizer is one
/// flat update, and broadcasting or all-reducing the model is a few large calls over
/// contiguous ranges. Ops see a parameter as a `Parameter` (views of both buffers); the tape
/// says when each gradient is final, so the registration order is free.
///
/// Layers register their tensors while the model is built; `seal()` then fixes the layout.
/// Names are PyTorch state_dict keys (`inc.conv.conv.0.weight`).
public final class ParameterStore {
    public private(set) var parameterSlots: [TensorSlot] = []
    public private(set) var bufferSlots: [TensorSlot] = []
    /// Integer buffers (`num_batches_tracked`), by name; kept on the host.
    public private(set) var counterNames: [String] = []
    public var counters: [Int64] = []

    public private(set) var parameterCount = 0
    public private(set) var bufferCount = 0
    private var initialParameters: [Float] = []
    private var initialBuffers: [Float] = []
    public private(set) var isSealed = false

    /// The backend whose memory holds the three buffers.
    public private(set) var backend: Backend = CPUBackend.shared
    /// The flat buffers (1-D tensors of `parameterCount`, `parameterCount` and `bufferCount`).
    public private(set) var parameters: Tensor!
    public private(set) var gradients: Tensor!
    public private(set) var buffers: Tensor!

    public init() {}

    // MARK: Registration

    public func registerParameter(_ name: String, shape: [Int], initialValues: [Float]) -> TensorSlot {
        precondition(!isSealed, "Parameters must be registered before the store is sealed")
        precondition(initialValues.count == shape.reduce(1, *), "Initial values for \(name) do not match \(shape)")
        let slot = TensorSlot(name: name, shape: shape, offset: parameterCount, index: parameterSlots.count)
        parameterSlots.append(slot)
        initialParameters += initialValues
        parameterCount += slot.count
        return slot
    }

    public func registerBuffer(_ name: String, shape: [Int], initialValues: [Float]) -> TensorSlot {
        precondition(!isSealed, "Buffers must be registered before the store is sealed")
        let slot = TensorSlot(name: name, shape: shape, offset: bufferCount, index: bufferSlots.count)
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

    /// Allocates the flat buffers on the host; gradients start at zero.
    public func seal() {
        guard !isSealed else { return }
        isSealed = true
        parameters = Tensor(shape: [parameterCount], storage: initialParameters)
        gradients = Tensor(zeros: [parameterCount])
        buffers = Tensor(shape: [bufferCount], storage: initialBuffers)
        initialParameters = []; initialBuffers = []
    }

    /// Puts the three buffers on `backend` (one allocation each); the optimizer's state
    /// follows on its first step.
    public func move(to backend: Backend) {
        precondition(isSealed, "Seal the store before moving it")
        guard backend !== self.backend else { return }
        parameters = backend.upload(self.backend.download(parameters))
        gradients = backend.upload(self.backend.download(gradients))
        buffers = backend.upload(self.backend.download(buffers))
        self.backend = backend
    }

    // MARK: Views for ops

    /// The parameter of `slot` as ops see it: views of its value and of its gradient.
    public func parameter(_ slot: TensorSlot) -> Parameter {
        Parameter(index: slot.index, value: Tensor(shape: slot.shape, buffer: parameters.buffer, offset: parameters.offset + slot.offset),
                  gradient: Tensor(shape: slot.shape, buffer: gradients.buffer, offset: gradients.offset + slot.offset))
    }

    /// A view of the running statistic (or other float buffer) of `slot`, written in place by
    /// training-mode ops.
    public func statistic(_ slot: TensorSlot) -> Tensor {
        Tensor(shape: slot.shape, buffer: buffers.buffer, offset: buffers.offset + slot.offset)
    }

    public func zeroGradients() { backend.fill(gradients, 0) }

    // MARK: Host copies

    /// A position-weighted sum of every parameter: equal on two processes only if (almost
    /// certainly) their parameters are.
    public var parameterChecksum: Double {
        backend.download(parameters).withUnsafeBufferPointer { p in
            var s = 0.0
            for i in 0..<p.count { s += Double(p[i]) * Double(i % 7 + 1) }
            return s
        }
    }

    private func hostCopy(_ flat: Tensor, _ slot: TensorSlot) -> Tensor {
        let host = backend.download(flat)
        return Tensor(shape: slot.shape, storage: host.withUnsafeBufferPointer { Array($0[slot.range]) })
    }

    public func parameterTensor(_ slot: TensorSlot) -> Tensor { hostCopy(parameters, slot) }
    public func gradientTensor(_ slot: TensorSlot) -> Tensor { hostCopy(gradients, slot) }
    public func bufferTensor(_ slot: TensorSlot) -> Tensor { hostCopy(buffers, slot) }

    public func parameterSlot(named name: String) -> TensorSlot? { parameterSlots.first { $0.name == name } }
    public func bufferSlot(named name: String) -> TensorSlot? { bufferSlots.first { $0.name == name } }

    /// Every model tensor under its state_dict name, in registration order: parameters, then
    /// running statistics; integer counters are in `counterNames` / `counters`.
    public func floatStateDict() -> [(name: String, tensor: Tensor)] {
        parameterSlots.map { ($0.name, parameterTensor($0)) } + bufferSlots.map { ($0.name, bufferTensor($0)) }
    }

    /// Copies `values` into the named parameter or buffer; throws if the name or shape is wrong.
    public func load(_ name: String, _ values: Tensor) throws {
        let isParameter = parameterSlot(named: name) != nil
        guard let slot = parameterSlot(named: name) ?? bufferSlot(named: name) else {
            throw ModelError("the model has no tensor named '\(name)'")
        }
        guard values.shape == slot.shape else {
            throw ModelError("tensor '\(name)' has shape \(values.shape), the model expects \(slot.shape)")
        }
        let destination = isParameter ? parameter(slot).value : statistic(slot)
        backend.copy(backend.upload(values), into: destination)
    }
}

public struct ModelError: Error, CustomStringConvertible {
    public let description: String
    public init(_ message: String) { description = message }
}
