/// The random draws of one training pass: dropout site k of the pass draws sample i's mask from
/// stream (`firstSample` + i) of a seed mixed from `seed` and k, so masks depend on the step,
/// the layer and the sample's place in the global batch — not on the rank count or the
/// micro-batch split.
public final class PassRandomness {
    public let seed: UInt64
    public let firstSample: Int
    private var site: UInt64 = 0
    public init(seed: UInt64, firstSample: Int) { self.seed = seed; self.firstSample = firstSample }
    func nextSiteSeed() -> UInt64 {
        site += 1
        return seed &+ site &* 0x9E37_79B9_7F4A_7C15
    }
}

/// Multiply-adds of the convolutions a pass ran (PyTorch's FLOP counter counts 2 per
/// multiply-add): all of them in forward, and those whose input also needs a gradient.
public final class ConvolutionWork {
    public private(set) var forward = 0
    public private(set) var inputGradient = 0
    /// The largest im2col matrix of one image (floats): each worker holds one as scratch.
    public private(set) var largestColumn = 0
    public init() {}
    func add(_ multiplyAdds: Int, needsInputGradient: Bool, column: Int = 0) {
        forward += multiplyAdds
        if needsInputGradient { inputGradient += multiplyAdds }
        largestColumn = max(largestColumn, column)
    }
}

/// How one forward pass runs: on which backend, in training or evaluation mode (batch norm's
/// statistics, dropout), and whether it records a tape for backward. Models are written
/// forward-only against these ops; with no tape (inference) nothing is recorded and every
/// activation is freed as soon as the next op has read it.
public struct Pass {
    public let backend: Backend
    public let training: Bool
    public let tape: Tape?
    /// When set, training-mode batch norm takes its statistics over every process of the group.
    public var batchNormGroup: CollectiveSum?
    /// When set, training-mode batch norm moves its running statistics by this instead of its
    /// layer's momentum (the recipe's `bn_momentum`).
    public var batchNormMomentum: Float?
    /// Where training-mode dropout draws its masks (none: dropout is the identity).
    public var randomness: PassRandomness?
    /// When set, convolutions add their multiply-adds here (for FLOP reporting).
    public var work: ConvolutionWork?
    /// When set (inference only), every op appends itself here (for exporters).
    public private(set) var trace: GraphTrace?

    public init(backend: Backend, training: Bool, tape: Tape?, batchNormGroup: CollectiveSum? = nil) {
        precondition(tape == nil || tape!.backend === backend, "A pass records on a tape of its own backend")
        self.backend = backend; self.training = training; self.tape = tape; self.batchNormGroup = batchNormGroup
    }

    /// Evaluation mode, nothing recorded.
    public static func inference(backend: Backend = CPUBackend.shared) -> Pass {
        Pass(backend: backend, training: false, tape: nil)
    }

    /// Evaluation mode, every op appended to `trace` (what an exporter walks).
    public static func tracing(into trace: GraphTrace, backend: Backend = CPUBackend.shared) -> Pass {
        var pass = Pass(backend: backend, training: false, tape: nil)
        pass.trace = trace
        return pass
    }

    /// Training mode, recording on `tape`.
    public static func training(tape: Tape, batchNormGroup: CollectiveSum? = nil) -> Pass {
        Pass(backend: tape.backend, training: true, tape: tape, batchNormGroup: batchNormGroup)
    }

    /// Whether `t`'s gradient is wanted in this pass.
    @inline(__always) func wants(_ t: Tensor) -> Bool { tape?.tracks(t) ?? false }

    /// What a backward closure keeps of input `x`: x, or how to rebuild it (`Tape.rebuildable`).
    @inline(__always) func saved(_ x: Tensor) -> SavedInput { tape?.saved(x) ?? SavedInput(kept: x) }

    /// The one hook every op calls with what it made: `op` goes to the trace (exporters; nil
    /// for ops that exist only in training), `cost` to the multiply-add count, and `backward`
    /// with the inputs and parameters to the tape. Each side channel takes it only when the
    /// pass has one, so an untraced, untaped inference pass pays nothing.
    @inline(__always)
    func emit(_ output: Tensor, _ op: @autoclosure () -> TracedOp?, inputs: [Tensor], traced: [Tensor]? = nil,
              parameters: [Parameter?] = [], cost: OpCost? = nil,
              backward: ((Tensor) -> [Tensor?])? = nil) -> Tensor {
        if let trace, let op = op() { trace.append(op, inputs: traced ?? inputs, output: output) }
        if let work, let cost { work.add(cost.multiplyAdds, needsInputGradient: wants(inputs[0]), column: cost.column) }
        guard let tape, let backward else { return output }
        return tape.record(output, inputs: inputs, parameters: parameters, backward: backward)
    }
}

/// What a convolution costs, for `ConvolutionWork`: its multiply-adds and the im2col matrix of
/// one image (floats).
struct OpCost {
    let multiplyAdds: Int
    let column: Int
}
