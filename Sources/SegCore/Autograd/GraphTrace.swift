/// The ops of one forward pass as a graph, for exporters (ONNX): an inference pass whose
/// `trace` is set appends one node per op, naming its inputs and output by the memory they sit
/// in. Parameters and running statistics are views of the model's flat buffers, so an exporter
/// finds their names from `ValueID(storage, offset)`.
public enum TracedOp {
    case conv2d(weight: Tensor, bias: Tensor?, stride: Int, padding: Int, dilation: Int, groups: Int)
    case convTranspose2d(weight: Tensor, bias: Tensor?, stride: Int, padding: Int, outputPadding: Int, dilation: Int)
    /// Evaluation-mode batch norm (running statistics), optionally followed by a ReLU.
    case batchNorm(gamma: Tensor, beta: Tensor, mean: Tensor, variance: Tensor, eps: Float, relu: Bool)
    case maxPool2d(kernel: Int, stride: Int, padding: Int, ceilMode: Bool)
    /// To the spatial size of `reference` when the model asked for that (a size that follows
    /// the input), else to the fixed size of the output.
    case resizeBilinear(alignCorners: Bool, reference: ValueID?)
    case adaptiveAvgPool2d(height: Int, width: Int)
    /// Centred on `reference`'s spatial size when given, else the fixed amounts.
    case pad(Padding, reference: ValueID?)
    case concatChannels
    case add
    case scaled(Float)
    case relu
    case sigmoid
    case hardswish
    case hardsigmoid
    /// x (N, C, H, W) times the second input (N, C, 1, 1).
    case scaleChannels
}

/// A value of a traced pass: the storage object its memory belongs to and the element offset.
public struct ValueID: Hashable {
    let storage: ObjectIdentifier
    let offset: Int
    public init(_ t: Tensor) { storage = ObjectIdentifier(t.buffer); offset = t.offset }
}

public final class GraphTrace {
    public struct Node {
        public let op: TracedOp
        public let inputs: [ValueID]
        public let output: ValueID
        public let outputShape: [Int]
    }

    public private(set) var nodes: [Node] = []
    /// Every traced value stays alive until the trace goes, so no storage identity is reused.
    private var alive: [Tensor] = []

    public init() {}

    func append(_ op: TracedOp, inputs: [Tensor], output: Tensor) {
        alive.append(contentsOf: inputs)
        alive.append(output)
        nodes.append(Node(op: op, inputs: inputs.map(ValueID.init), output: ValueID(output), outputShape: output.shape))
    }
}
