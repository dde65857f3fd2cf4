import SegCore

/// An ONNX graph under construction: nodes in order, initializers (weights and constants) and
/// fresh value names. `encoded` writes the ModelProto (field numbers from onnx.proto).
final class ONNXGraphBuilder {
    enum Attribute {
        case int(String, Int), ints(String, [Int]), float(String, Float), string(String, String)
    }
    struct Node { let op: String; let inputs: [String]; let outputs: [String]; let attributes: [Attribute] }
    enum Data { case floats([Float]), int64s([Int]) }
    struct Initializer { let name: String; let dims: [Int]; let data: Data }
    /// A graph input or output: name and dimensions, each a number or a symbolic name.
    struct Value { let name: String; let dims: [Either] }
    enum Either { case fixed(Int), symbolic(String) }

    private(set) var nodes: [Node] = []
    private(set) var initializers: [Initializer] = []
    private var initializerNames: Set<String> = []
    private var counter = 0

    func fresh(_ hint: String) -> String {
        counter += 1
        return "\(hint)_\(counter)"
    }

    /// Adds a node and returns its (first) output's name.
    @discardableResult
    func node(_ op: String, _ inputs: [String], _ attributes: [Attribute] = [], output: String? = nil) -> String {
        let out = output ?? fresh(op.lowercased())
        nodes.append(Node(op: op, inputs: inputs, outputs: [out], attributes: attributes))
        return out
    }

    /// A named initializer, added once.
    func initializer(_ name: String, dims: [Int], _ data: Data) -> String {
        if initializerNames.insert(name).inserted { initializers.append(Initializer(name: name, dims: dims, data: data)) }
        return name
    }

    func constant(_ values: [Float], dims: [Int]? = nil) -> String {
        initializer(fresh("const"), dims: dims ?? [values.count], .floats(values))
    }

    func constant(int64s values: [Int], dims: [Int]? = nil) -> String {
        initializer(fresh("const"), dims: dims ?? [values.count], .int64s(values))
    }

    func encoded(graphName: String, inputs: [Value], outputs: [Value], opset: Int, producerVersion: String,
                 documentation: String, metadata: [(String, String)]) -> [UInt8] {
        var model = ProtobufWriter()
        model.int(1, 8)                          // ir_version 8 (ONNX 1.10+, opsets up to 17)
        model.string(2, "segdist")               // producer_name
        model.string(3, producerVersion)         // producer_version
        model.string(6, documentation)           // doc_string
        model.message(7) { graph in              // graph
            for n in nodes {
                graph.message(1) { node in
                    for i in n.inputs { node.string(1, i) }
                    for o in n.outputs { node.string(2, o) }
                    node.string(3, n.outputs[0])
                    node.string(4, n.op)
                    for a in n.attributes { node.message(5) { Self.encode(a, &$0) } }
                }
            }
            graph.string(2, graphName)
            for t in initializers {
                graph.message(5) { tensor in
                    tensor.ints(1, t.dims)
                    switch t.data {
                    case let .floats(v):
                        tensor.int(2, 1)         // FLOAT
                        tensor.string(8, t.name)
                        tensor.bytes(9, v.withUnsafeBytes { Array($0) })   // raw_data, little-endian
                    case let .int64s(v):
                        tensor.int(2, 7)         // INT64
                        tensor.string(8, t.name)
                        tensor.bytes(9, v.map { Int64($0) }.withUnsafeBytes { Array($0) })
                    }
                }
            }
            for v in inputs { graph.message(11) { Self.encode(v, &$0) } }
            for v in outputs { graph.message(12) { Self.encode(v, &$0) } }
        }
        model.message(8) { opsetID in opsetID.string(1, ""); opsetID.int(2, opset) }
        for (key, value) in metadata { model.message(14) { $0.string(1, key); $0.string(2, value) } }
        return model.bytes
    }

    private static func encode(_ a: Attribute, _ w: inout ProtobufWriter) {
        switch a {
        case let .int(name, v): w.string(1, name); w.int(3, v); w.int(20, 2)
        case let .float(name, v): w.string(1, name); w.float(2, v); w.int(20, 1)
        case let .string(name, v): w.string(1, name); w.string(4, v); w.int(20, 3)
        case let .ints(name, v): w.string(1, name); w.ints(8, v); w.int(20, 7)
        }
    }

    private static func encode(_ v: Value, _ w: inout ProtobufWriter) {
        w.string(1, v.name)
        w.message(2) { type in
            type.message(1) { tensor in
                tensor.int(1, 1)                 // FLOAT
                tensor.message(2) { shape in
                    for d in v.dims {
                        shape.message(1) { dim in
                            switch d {
                            case let .fixed(n): dim.int(1, n)
                            case let .symbolic(s): dim.string(2, s)
                            }
                        }
                    }
                }
            }
        }
    }
}
