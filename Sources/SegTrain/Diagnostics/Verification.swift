import Foundation
import SegCore
import SegNN

/// How close a backend comes to PyTorch: every op, loss, optimizer and whole-model case of a
/// PyTorch fixture file (`shared/fixtures/torch-reference.safetensors`, made by
/// `make_fixtures.py`) run through the `Backend` API, as the tape runs them. `swift test` runs
/// it on the CPU backend and, where a GPU is usable, the CUDA backend; `segdist verify` runs it
/// on a machine without Swift (the GPU nodes) from the release binary.
public enum Verification {
    /// One compared tensor: its largest difference relative to the reference's scale.
    public struct Finding: Sendable {
        public let group: String, name: String
        public let difference: Double, tolerance: Double
        public var passed: Bool { difference <= tolerance }
    }

    /// The fixture file's kinds of case ("op" in its metadata) that `ops` and `models` run.
    public static let knownKinds: Set<String> = ["conv2d", "conv_transpose2d", "max_pool2d", "bilinear", "pad", "batch_norm",
                                                 "adaptive_avg_pool2d", "bce_with_logits", "cross_entropy", "sgd", "adam", "adamw",
                                                 "model"]

    /// The op, loss and optimizer cases (within 1e-4 of PyTorch; optimizers 1e-5; pooling and
    /// padding exactly).
    public static func ops(_ b: Backend, file: SafeTensorsFile) throws -> [Finding] {
        let cases = try Self.cases(file)
        var findings: [Finding] = []
        func t(_ c: String, _ name: String) throws -> Tensor { b.upload(try file.tensor("\(c).\(name)")) }
        func check(_ group: String, _ c: String, _ name: String, _ got: Tensor, tolerance: Double = 1e-4) throws {
            findings.append(Finding(group: group, name: "\(c).\(name)", difference: difference(b.download(got), try file.tensor("\(c).\(name)")),
                                    tolerance: tolerance))
        }
        func of(_ op: String) -> [(String, [String: Any])] {
            cases.filter { ($0.value["op"] as? String) == op }.sorted { $0.key < $1.key }
        }
        for (c, meta) in of("conv2d") {
            let x = try t(c, "x"), w = try t(c, "weight"), dy = try t(c, "dy")
            let bias = (meta["bias"] as? Bool ?? true) ? try t(c, "bias") : nil
            let (_, cin, h, wd) = x.nchw
            let g = ConvGeometry(channels: cin, height: h, width: wd, kernelH: w.shape[2], kernelW: w.shape[3],
                                 stride: meta["stride"] as! Int, padding: meta["padding"] as! Int, dilation: meta["dilation"] as! Int)
            let dw = b.zeros(w.shape), db = b.zeros([w.shape[0]])
            try check("conv2d", c, "y", b.conv2dForward(x, weight: w, bias: bias, geometry: g))
            let dx = b.conv2dBackward(x: x, weight: w, dy: dy, geometry: g, inputGradient: true, weightGradient: dw,
                                      biasGradient: bias == nil ? nil : db)!
            try check("conv2d", c, "dx", dx)
            try check("conv2d", c, "dweight", dw)
            if bias != nil { try check("conv2d", c, "dbias", db) }
        }
        for (c, meta) in of("conv_transpose2d") {
            let x = try t(c, "x"), w = try t(c, "weight"), bias = try t(c, "bias"), dy = try t(c, "dy")
            let (_, _, h, wd) = x.nchw
            let g = ConvGeometry.transposed(outChannels: w.shape[1], inH: h, inW: wd, kernelH: w.shape[2], kernelW: w.shape[3],
                                            stride: meta["stride"] as! Int, padding: meta["padding"] as! Int,
                                            outputPadding: meta["output_padding"] as! Int)
            let dw = b.zeros(w.shape), db = b.zeros([w.shape[1]])
            try check("conv_transpose2d", c, "y", b.convTranspose2dForward(x, weight: w, bias: bias, geometry: g))
            let dx = b.convTranspose2dBackward(x: x, weight: w, dy: dy, geometry: g, inputGradient: true, weightGradient: dw,
                                               biasGradient: db)!
            try check("conv_transpose2d", c, "dx", dx)
            try check("conv_transpose2d", c, "dweight", dw)
            try check("conv_transpose2d", c, "dbias", db)
        }
        for (c, _) in of("max_pool2d") {
            let x = try t(c, "x"), dy = try t(c, "dy")
            let (y, indices) = b.maxPool2dForward(x, kernel: 2, stride: 2, padding: 0, ceilMode: false)
            try check("max_pool2d", c, "y", y, tolerance: 0)
            try check("max_pool2d", c, "dx", b.maxPool2dBackward(dy: dy, indices: indices, inputShape: x.shape), tolerance: 0)
        }
        for (c, meta) in of("bilinear") {
            let x = try t(c, "x"), dy = try t(c, "dy")
            let size = meta["size"] as! [Int], align = meta["align_corners"] as! Bool
            try check("bilinear", c, "y", b.bilinearForward(x, height: size[0], width: size[1], alignCorners: align))
            try check("bilinear", c, "dx", b.bilinearBackward(dy: dy, inputShape: x.shape, alignCorners: align))
        }
        for (c, meta) in of("pad") {
            let x = try t(c, "x"), dy = try t(c, "dy")
            let p = meta["pad_left_right_top_bottom"] as! [Int]
            let padding = Padding(left: p[0], right: p[1], top: p[2], bottom: p[3])
            try check("pad", c, "y", b.padForward(x, padding), tolerance: 0)
            try check("pad", c, "dx", b.padBackward(dy: dy, inputShape: x.shape, padding), tolerance: 0)
        }
        for (c, _) in of("batch_norm") {
            let x = try t(c, "x"), gamma = try t(c, "weight"), beta = try t(c, "bias"), dy = try t(c, "dy")
            let ch = x.shape[1]
            let rm = b.zeros([ch]), rv = b.upload(Tensor(repeating: 1, shape: [ch])), dg = b.zeros([ch]), db = b.zeros([ch])
            let (y, stats) = b.batchNormTrainForward(x, gamma: gamma, beta: beta, runningMean: rm, runningVar: rv, momentum: 0.1,
                                                     eps: 1e-5, relu: false, group: nil)
            let dx = b.batchNormTrainBackward(x: x, y: y, dy: dy, gamma: gamma, statistics: stats, gammaGradient: dg, betaGradient: db,
                                              relu: false, group: nil)
            try check("batch_norm", c, "y", y)
            try check("batch_norm", c, "dx", dx)
            try check("batch_norm", c, "dweight", dg)
            try check("batch_norm", c, "dbias", db)
            try check("batch_norm", c, "running_mean", rm)
            try check("batch_norm", c, "running_var", rv)
            try check("batch_norm", c, "eval_y", b.batchNormEvalForward(try t(c, "eval_x"), gamma: gamma, beta: beta, runningMean: rm,
                                                                       runningVar: rv, eps: 1e-5, relu: false))
        }
        for (c, meta) in of("adaptive_avg_pool2d") {
            let x = try t(c, "x"), dy = try t(c, "dy"), out = meta["output"] as! Int
            try check("adaptive_avg_pool2d", c, "y", b.adaptiveAvgPool2dForward(x, height: out, width: out))
            try check("adaptive_avg_pool2d", c, "dx", b.adaptiveAvgPool2dBackward(dy: dy, inputShape: x.shape))
        }
        for (c, _) in of("bce_with_logits") {
            let (loss, grad) = b.bceWithLogits(logits: try t(c, "logits"), targets: try t(c, "target"))
            try check("losses", c, "loss", loss)
            try check("losses", c, "dlogits", grad)
        }
        for (c, _) in of("cross_entropy") {
            let target = try file.tensor("\(c).target")
            let host = IndexTensor(shape: target.shape, values: target.storage.map { Int32($0) })
            let indices = b.uploadIndices(host)
            let (loss, grad) = try b.softmaxCrossEntropy(logits: try t(c, "logits"), targets: indices, ignoreIndex: -100, classWeights: nil)
            try check("losses", c, "loss", loss)
            try check("losses", c, "dlogits", grad)
        }
        let optimizers: [String: () throws -> Optimizer] = [
            "sgd": { try SGD(momentum: 0.9, weightDecay: 5e-4) }, "adam": { try Adam() }, "adamw": { try Adam.adamW(weightDecay: 1e-2) },
        ]
        for op in ["sgd", "adam", "adamw"] {
            for (c, meta) in of(op) {
                let optimizer = try optimizers[op]!(), lr = Float(meta["lr"] as! Double)
                let p = try t(c, "p0")
                for i in 1...3 {
                    optimizer.step(parameters: p, gradients: try t(c, "g\(i)"), learningRate: lr, backend: b)
                    try check("optimizers", c, "p\(i)", p, tolerance: 1e-5)
                }
            }
        }
        try b.checkHealthy()
        return findings
    }

    /// The whole-model cases: PyTorch's weights loaded under the reference names, one training
    /// pass on `b`, then logits, loss, every parameter gradient and the running statistics
    /// (within 1e-3 of PyTorch).
    public static func models(_ b: Backend, file: SafeTensorsFile) throws -> [Finding] {
        var findings: [Finding] = []
        for (c, meta) in try cases(file).filter({ ($0.value["op"] as? String) == "model" }).sorted(by: { $0.key < $1.key }) {
            let architecture: ModelArchitecture = (meta["depth"] as? Int) == 2 ? .unet_shallow : (meta["skip"] as? String) == "add" ? .unet_add : .unet
            let model = architecture.make(inputChannels: 1, classes: 2, width: meta["width"] as? Int ?? 4, seed: 0)
            let store = model.store, prefix = "\(c).param."
            let names = file.names.filter { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) }
            guard Set(names) == Set(store.floatStateDict().map(\.name)) else {
                throw ModelError("\(c): the model's tensor names differ from the reference state_dict")
            }
            for name in names { try store.load(name, file.tensor(prefix + name)) }
            store.move(to: b)
            let tape = Tape(backend: b)
            let pass = Pass.training(tape: tape)
            let logits = model.forward(b.upload(try file.tensor("\(c).x")), pass)
            let loss = pass.bceWithLogits(logits, targets: b.upload(try file.tensor("\(c).target")))
            tape.backward(from: loss)
            func check(_ what: String, _ got: Tensor, tolerance: Double = 1e-3) throws {
                let group = "\(c) " + what.split(separator: ".").first!
                findings.append(Finding(group: group, name: "\(c).\(what)", difference: difference(b.download(got), try file.tensor("\(c).\(what)")),
                                        tolerance: tolerance))
            }
            try check("logits", logits)
            try check("loss", loss)
            for slot in store.parameterSlots {
                let got = b.download(store.gradientTensor(slot)), want = try file.tensor("\(c).grad.\(slot.name)")
                if slot.name.hasSuffix(".0.bias") || slot.name.hasSuffix(".3.bias") {
                    // a bias right before a training-mode BatchNorm has an exactly-zero gradient; both
                    // frameworks hold rounding noise there: compared on its weight gradient's scale
                    let weight = try file.tensor("\(c).grad.\(slot.name.replacingOccurrences(of: ".bias", with: ".weight"))")
                    let scale = weight.storage.map { abs(Double($0)) }.max() ?? 1
                    let d = zip(got.storage, want.storage).map { abs(Double($0) - Double($1)) }.max() ?? 0
                    findings.append(Finding(group: "\(c) grad (bias before BN, vs weight-grad scale)", name: slot.name,
                                            difference: d / max(scale, 1e-12), tolerance: 1e-4))
                } else {
                    try check("grad.\(slot.name)", got)
                }
            }
            for slot in store.bufferSlots { try check("after.\(slot.name)", store.bufferTensor(slot)) }
            findings.append(Finding(group: "\(c) counters", name: "every BatchNorm counts one tracked batch",
                                    difference: store.counters.allSatisfy { $0 == 1 } ? 0 : 1, tolerance: 0))
        }
        try b.checkHealthy()
        return findings
    }

    /// The largest finding per group, one line each, and whether all passed.
    public static func summary(_ findings: [Finding]) -> (text: String, passed: Bool) {
        var worst: [String: Finding] = [:]
        for f in findings where f.difference >= (worst[f.group]?.difference ?? -1) { worst[f.group] = f }
        let lines = worst.sorted { $0.key < $1.key }.map { group, f in
            String(format: "  %-34@ %.3e (limit %.0e) %@  %@", group as NSString, f.difference, f.tolerance,
                   (f.passed ? "ok" : "FAILED") as NSString, f.name as NSString)
        }
        return (lines.joined(separator: "\n"), findings.allSatisfy(\.passed))
    }

    /// CASE -> its parameters, from the file's `__metadata__["cases"]`.
    public static func cases(_ file: SafeTensorsFile) throws -> [String: [String: Any]] {
        guard let text = file.metadata["cases"], let data = text.data(using: .utf8),
              let obj = try JSONSerialization.jsonObject(with: data) as? [String: [String: Any]] else {
            throw SafeTensorsError(path: file.path, problem: "is not a PyTorch fixture file (no cases in its metadata)")
        }
        return obj
    }

    /// `relativeDifference`, infinite on a shape mismatch (a wrong shape is a failure, not a trap).
    static func difference(_ a: Tensor, _ b: Tensor) -> Double {
        a.shape == b.shape ? relativeDifference(a, b) : .infinity
    }
}
