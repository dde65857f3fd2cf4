import XCTest
import SegCore
import SegTestSupport

/// Every op, loss and optimizer case of the PyTorch fixture file run through the `Backend`
/// API, as the tape runs them — on the CPU backend (which also checks this harness) and on
/// the CUDA backend where a GPU is usable (ops within 1e-4 of PyTorch; elsewhere the GPU test
/// prints that it did not run).
final class BackendFixtureTests: XCTestCase {
    static let report = DifferenceReport()
    override class func tearDown() { report.printSummary(title: "ops through the Backend API vs PyTorch") }

    func testCPUBackend() throws { try run(CPUBackend.shared, label: "cpu") }

    func testCUDABackend() throws {
        guard let gpu = CUDATesting.backendOrSkip("op fixtures on the CUDA backend") else { return }
        try run(gpu, label: "cuda")
    }

    func run(_ b: Backend, label: String) throws {
        let file = try Fixtures.reference()
        let cases = try Fixtures.cases()
        func t(_ c: String, _ name: String) throws -> Tensor { b.upload(try file.tensor("\(c).\(name)")) }
        func check(_ group: String, _ c: String, _ name: String, _ got: Tensor, tolerance: Double = 1e-4) throws {
            let want = try file.tensor("\(c).\(name)"), host = b.download(got)
            XCTAssertEqual(host.shape, want.shape, "\(label) \(c).\(name) shape")
            guard host.shape == want.shape else { return }
            let d = relativeDifference(host, want)
            Self.report.record("\(label) \(group)", "\(c).\(name)", d)
            XCTAssertLessThanOrEqual(d, tolerance, "\(label) \(c).\(name)")
        }
        func zeros(_ shape: [Int]) -> Tensor { b.zeros(shape) }
        func of(_ op: String) -> [(String, [String: Any])] {
            cases.filter { ($0.value["op"] as? String) == op }.sorted { $0.key < $1.key }
        }
        for (c, meta) in of("conv2d") {
            let x = try t(c, "x"), w = try t(c, "weight"), dy = try t(c, "dy")
            let bias = (meta["bias"] as? Bool ?? true) ? try t(c, "bias") : nil
            let (_, cin, h, wd) = x.nchw
            let g = ConvGeometry(channels: cin, height: h, width: wd, kernelH: w.shape[2], kernelW: w.shape[3],
                                 stride: meta["stride"] as! Int, padding: meta["padding"] as! Int, dilation: meta["dilation"] as! Int)
            let dw = zeros(w.shape), db = zeros([w.shape[0]])
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
            let dw = zeros(w.shape), db = zeros([w.shape[1]])
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
        do {
            let c = "batchnorm_train"
            let x = try t(c, "x"), gamma = try t(c, "weight"), beta = try t(c, "bias"), dy = try t(c, "dy")
            let ch = x.shape[1]
            let rm = zeros([ch]), rv = b.upload(Tensor(repeating: 1, shape: [ch])), dg = zeros([ch]), db = zeros([ch])
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
            let ey = b.batchNormEvalForward(try t(c, "eval_x"), gamma: gamma, beta: beta, runningMean: rm, runningVar: rv, eps: 1e-5,
                                            relu: false)
            try check("batch_norm", c, "eval_y", ey)
        }
        for (c, meta) in of("adaptive_avg_pool2d") {
            let x = try t(c, "x"), dy = try t(c, "dy"), out = meta["output"] as! Int
            try check("adaptive_avg_pool2d", c, "y", b.adaptiveAvgPool2dForward(x, height: out, width: out))
            try check("adaptive_avg_pool2d", c, "dx", b.adaptiveAvgPool2dBackward(dy: dy, inputShape: x.shape))
        }
        do {
            let c = "bce_with_logits"
            let (loss, grad) = b.bceWithLogits(logits: try t(c, "logits"), targets: try t(c, "target"))
            try check("losses", c, "loss", loss)
            try check("losses", c, "dlogits", grad)
        }
        do {
            let c = "softmax_cross_entropy"
            let x = try t(c, "logits"), target = try file.tensor("\(c).target")
            let indices = IndexTensor(shape: target.shape, values: target.storage.map { Int32($0) })
            let upload: IndexTensor = (b as? CUDABackend)?.uploadIndices(indices) ?? indices
            let (loss, grad) = try b.softmaxCrossEntropy(logits: x, targets: upload, ignoreIndex: -100, classWeights: nil)
            try check("losses", c, "loss", loss)
            try check("losses", c, "dlogits", grad)
        }
        let makers: [String: () throws -> Optimizer] = [
            "sgd_momentum_wd": { try SGD(momentum: 0.9, weightDecay: 5e-4) }, "adam": { try Adam() },
            "adamw": { try Adam.adamW(weightDecay: 1e-2) },
        ]
        for (c, meta) in of("sgd") + of("adam") + of("adamw") {
            let opt = try makers[c]!(), lr = Float(meta["lr"] as! Double)
            let p = try t(c, "p0")
            for i in 1...3 {
                opt.step(parameters: p, gradients: try t(c, "g\(i)"), learningRate: lr, backend: b)
                try check("optimizers", c, "p\(i)", p, tolerance: 1e-5)
            }
        }
    }
}
