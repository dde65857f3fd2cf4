import SegCore
import SegData
import SegNN

public struct ExportError: Error, CustomStringConvertible {
    public let description: String
    init(_ message: String) { description = message }
}

/// Writes a model as an ONNX graph (opset 17) by tracing one evaluation-mode forward pass: each
/// op the pass ran becomes ONNX nodes, weights and running statistics become initializers under
/// their state_dict names, batch norm stays `BatchNormalization` (eval mode).
///
/// The graph takes raw pixel values — `image` (N, C, H, W), float, 0..255 as in the files — and
/// applies the training input scaling and normalisation itself, so ONNX users need no segdist
/// code; it returns `logits` and `probabilities` (sigmoid or softmax over the classes, the
/// activation `segdist predict` uses). Batch is always dynamic; height and width are too unless
/// the model has a fixed-size step (PSPNet's pyramid pooling), in which case they are the traced
/// size and the export says so.
public enum ONNXExport {
    public static let opset = 17

    public struct Result {
        public let bytes: [UInt8]
        /// Whether the graph takes any height and width (else only the traced ones).
        public let dynamicSpatial: Bool
        public let nodeCount: Int
    }

    public static func export(model: SegmentationModel, traceHeight: Int, traceWidth: Int, inputScaling: InputScaling?,
                              normalization: Normalization?, activation: OutputActivation,
                              metadata: [(String, String)] = []) throws -> Result {
        let backend = model.store.backend
        let trace = GraphTrace()
        let modelInput = backend.upload(Tensor(repeating: 0.5, shape: [1, model.inputChannels, traceHeight, traceWidth]))
        let logitsValue = model.forward(modelInput, .tracing(into: trace, backend: backend))

        let g = ONNXGraphBuilder()
        var names: [ValueID: String] = [:]
        var shapes: [ValueID: [Int]] = [ValueID(modelInput): modelInput.shape]
        var dynamicSpatial = true
        let store = model.store
        for slot in store.parameterSlots { names[ValueID(store.parameter(slot).value)] = slot.name }
        for slot in store.bufferSlots { names[ValueID(store.statistic(slot))] = slot.name }
        func weight(_ t: Tensor) throws -> String {
            let id = ValueID(t)
            guard let name = names[id] else { throw ExportError("a traced op reads a weight that is not one of the model's parameters") }
            if let slot = store.parameterSlot(named: name) { return g.initializer(name, dims: slot.shape, .floats(store.parameterTensor(slot).storage)) }
            if let slot = store.bufferSlot(named: name) { return g.initializer(name, dims: slot.shape, .floats(store.bufferTensor(slot).storage)) }
            throw ExportError("no tensor named \(name)")
        }

        // Pixels as in training: scaled to [0, 1], then normalised per channel.
        var x = "image"
        switch inputScaling {
        case .minMax?:
            let lo = g.node("ReduceMin", [x], [.ints("axes", [1, 2, 3]), .int("keepdims", 1)])
            let hi = g.node("ReduceMax", [x], [.ints("axes", [1, 2, 3]), .int("keepdims", 1)])
            // A flat image becomes 0 (as segdist does), not 0/0.
            let range = g.node("Max", [g.node("Sub", [hi, lo]), g.constant([1e-30], dims: [])])
            x = g.node("Div", [g.node("Sub", [x, lo]), range])
        case .divideBy255?:
            x = g.node("Div", [x, g.constant([255], dims: [])])
        case nil: break
        }
        if let normalization {
            let c = normalization.mean.count
            x = g.node("Sub", [x, g.constant(normalization.mean, dims: [1, c, 1, 1])])
            x = g.node("Mul", [x, g.constant(normalization.std.map { 1 / $0 }, dims: [1, c, 1, 1])])
        }
        names[ValueID(modelInput)] = x

        let logitsID = ValueID(logitsValue)
        for (k, node) in trace.nodes.enumerated() {
            let inputs = try node.inputs.map { id -> String in
                guard let n = names[id] else {
                    throw ExportError("op \(k + 1) of the trace (\(node.op)) reads a value no traced op made: the model computes outside its ops")
                }
                return n
            }
            guard names[node.output] == nil else { throw ExportError("op \(k + 1) of the trace (\(node.op)) wrote over its input") }
            let inShape = shapes[node.inputs[0]] ?? []
            let out = node.output == logitsID ? "logits" : g.fresh("t")
            switch node.op {
            case let .conv2d(w, b, stride, padding, dilation, groups):
                let ks = Array(w.shape[2...])
                g.node("Conv", [inputs[0], try weight(w)] + (try b.map { [try weight($0)] } ?? []),
                       [.ints("kernel_shape", ks), .ints("strides", [stride, stride]), .ints("pads", [padding, padding, padding, padding]),
                        .ints("dilations", [dilation, dilation]), .int("group", groups)], output: out)
            case let .convTranspose2d(w, b, stride, padding, outputPadding, dilation):
                g.node("ConvTranspose", [inputs[0], try weight(w)] + (try b.map { [try weight($0)] } ?? []),
                       [.ints("kernel_shape", Array(w.shape[2...])), .ints("strides", [stride, stride]),
                        .ints("pads", [padding, padding, padding, padding]), .ints("output_padding", [outputPadding, outputPadding]),
                        .ints("dilations", [dilation, dilation]), .int("group", 1)], output: out)
            case let .batchNorm(gamma, beta, mean, variance, eps, relu):
                let bn = g.node("BatchNormalization", [inputs[0], try weight(gamma), try weight(beta), try weight(mean), try weight(variance)],
                                [.float("epsilon", eps)], output: relu ? nil : out)
                if relu { g.node("Relu", [bn], output: out) }
            case let .maxPool2d(kernel, stride, padding, ceilMode):
                g.node("MaxPool", [inputs[0]], [.ints("kernel_shape", [kernel, kernel]), .ints("strides", [stride, stride]),
                                                .ints("pads", [padding, padding, padding, padding]), .int("ceil_mode", ceilMode ? 1 : 0)],
                       output: out)
            case let .resizeBilinear(alignCorners, reference):
                let mode: [ONNXGraphBuilder.Attribute] = [
                    .string("mode", "linear"),
                    .string("coordinate_transformation_mode", alignCorners ? "align_corners" : "pytorch_half_pixel")]
                let (oh, ow) = (node.outputShape[2], node.outputShape[3])
                if reference != nil {
                    let sizes = g.node("Concat", [g.node("Shape", [inputs[0]], [.int("start", 0), .int("end", 2)]),
                                                  g.node("Shape", [inputs[1]], [.int("start", 2), .int("end", 4)])], [.int("axis", 0)])
                    g.node("Resize", [inputs[0], "", "", sizes], mode, output: out)
                } else if oh % inShape[2] == 0 && ow % inShape[3] == 0 {
                    let scales = g.constant([1, 1, Float(oh / inShape[2]), Float(ow / inShape[3])])
                    g.node("Resize", [inputs[0], "", scales], mode, output: out)
                } else {
                    dynamicSpatial = false
                    let sizes = g.node("Concat", [g.node("Shape", [inputs[0]], [.int("start", 0), .int("end", 2)]),
                                                  g.constant(int64s: [oh, ow])], [.int("axis", 0)])
                    g.node("Resize", [inputs[0], "", "", sizes], mode, output: out)
                }
            case let .adaptiveAvgPool2d(oh, ow):
                let (h, w) = (inShape[2], inShape[3])
                if oh == 1 && ow == 1 {
                    g.node("GlobalAveragePool", [inputs[0]], output: out)
                } else if h % oh == 0 && w % ow == 0 {
                    dynamicSpatial = false
                    g.node("AveragePool", [inputs[0]], [.ints("kernel_shape", [h / oh, w / ow]), .ints("strides", [h / oh, w / ow])],
                           output: out)
                } else {
                    // PyTorch's uneven bins (start floor(i*H/oh), end ceil((i+1)*H/oh)) as a
                    // (H*W, oh*ow) averaging matrix.
                    dynamicSpatial = false
                    var m = [Float](repeating: 0, count: h * w * oh * ow)
                    for i in 0..<oh {
                        let y0 = i * h / oh, y1 = ((i + 1) * h + oh - 1) / oh
                        for j in 0..<ow {
                            let x0 = j * w / ow, x1 = ((j + 1) * w + ow - 1) / ow
                            let share = 1 / Float((y1 - y0) * (x1 - x0))
                            for yy in y0..<y1 { for xx in x0..<x1 { m[(yy * w + xx) * oh * ow + i * ow + j] = share } }
                        }
                    }
                    let flat = g.node("Reshape", [inputs[0], g.constant(int64s: [0, 0, -1])])
                    let pooled = g.node("MatMul", [flat, g.constant(m, dims: [h * w, oh * ow])])
                    g.node("Reshape", [pooled, g.constant(int64s: [0, 0, oh, ow])], output: out)
                }
            case let .pad(p, reference):
                let pads: String
                if reference != nil {
                    // Centred: before = floor(difference / 2), the odd pixel after.
                    let diff = g.node("Sub", [g.node("Shape", [inputs[1]], [.int("start", 2), .int("end", 4)]),
                                              g.node("Shape", [inputs[0]], [.int("start", 2), .int("end", 4)])])
                    let half = g.node("Floor", [g.node("Div", [g.node("Cast", [diff], [.int("to", 1)]), g.constant([2], dims: [])])])
                    let before = g.node("Cast", [half], [.int("to", 7)])
                    let after = g.node("Sub", [diff, before])
                    let zeros = g.constant(int64s: [0, 0])
                    pads = g.node("Concat", [zeros, before, zeros, after], [.int("axis", 0)])
                } else {
                    dynamicSpatial = false
                    pads = g.constant(int64s: [0, 0, p.top, p.left, 0, 0, p.bottom, p.right])
                }
                g.node("Pad", [inputs[0], pads], [.string("mode", "constant")], output: out)
            case .concatChannels: g.node("Concat", inputs, [.int("axis", 1)], output: out)
            case .add: g.node("Add", inputs, output: out)
            case let .scaled(s): g.node("Mul", [inputs[0], g.constant([s], dims: [])], output: out)
            case .relu: g.node("Relu", inputs, output: out)
            case .sigmoid: g.node("Sigmoid", inputs, output: out)
            case .hardswish: g.node("HardSwish", inputs, output: out)
            case .hardsigmoid:
                // ONNX's default alpha is 0.2; PyTorch's is 1/6
                g.node("HardSigmoid", inputs, [.float("alpha", 1.0 / 6), .float("beta", 0.5)], output: out)
            case .scaleChannels: g.node("Mul", inputs, output: out)
            }
            names[node.output] = out
            shapes[node.output] = node.outputShape
        }
        guard names[logitsID] == "logits" else { throw ExportError("the model's output is not made by a traced op") }
        switch activation {
        case .sigmoid: g.node("Sigmoid", ["logits"], output: "probabilities")
        case .softmax: g.node("Softmax", ["logits"], [.int("axis", 1)], output: "probabilities")
        }

        typealias D = ONNXGraphBuilder.Either
        let (h, w): (D, D) = dynamicSpatial ? (.symbolic("height"), .symbolic("width")) : (.fixed(traceHeight), .fixed(traceWidth))
        let classes = logitsValue.shape[1]
        let scalingText: String
        switch inputScaling {
        case .minMax?: scalingText = "stretched per image to [0, 1]"
        case .divideBy255?: scalingText = "divided by 255"
        case nil: scalingText = "used as given"
        }
        let doc = "image: (batch, \(model.inputChannels), height, width) float pixel values as stored in the image files, \(scalingText)"
            + (normalization.map { ", normalised by mean \($0.mean) and std \($0.std)" } ?? "") + " inside the graph. "
            + "logits and probabilities (\(activation.rawValue)): (batch, \(classes), height, width)."
            + (dynamicSpatial ? "" : " Height and width are fixed at \(traceHeight)x\(traceWidth) (the model has a fixed-size step).")
        let bytes = g.encoded(graphName: "segdist", inputs: [.init(name: "image", dims: [.symbolic("batch"), .fixed(model.inputChannels), h, w])],
                              outputs: [.init(name: "logits", dims: [.symbolic("batch"), .fixed(classes), h, w]),
                                        .init(name: "probabilities", dims: [.symbolic("batch"), .fixed(classes), h, w])],
                              opset: opset, producerVersion: segdistVersion, documentation: doc, metadata: metadata)
        return Result(bytes: bytes, dynamicSpatial: dynamicSpatial, nodeCount: g.nodes.count)
    }
}
