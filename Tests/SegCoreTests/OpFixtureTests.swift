import XCTest
import SegCore
import SegTestSupport

/// Every op, loss and optimizer case of the PyTorch fixture file, forward and backward.
final class OpFixtureTests: XCTestCase {
    static let report = DifferenceReport()
    override class func tearDown() { report.printSummary(title: "ops vs PyTorch") }

    var file: SafeTensorsFile!
    override func setUpWithError() throws { file = try Fixtures.reference() }

    func t(_ c: String, _ name: String) throws -> Tensor { try file.tensor("\(c).\(name)") }

    func check(_ group: String, _ c: String, _ name: String, _ got: Tensor, tolerance: Double = 1e-4,
               file: StaticString = #filePath, line: UInt = #line) throws {
        let want = try t(c, name)
        XCTAssertEqual(got.shape, want.shape, "\(c).\(name) shape", file: file, line: line)
        guard got.shape == want.shape else { return }
        let d = relativeDifference(got, want)
        Self.report.record(group, "\(c).\(name)", d)
        XCTAssertLessThanOrEqual(d, tolerance, "\(c).\(name)", file: file, line: line)
    }

    func cases(op: String) throws -> [(String, [String: Any])] {
        try Fixtures.cases().filter { ($0.value["op"] as? String) == op }.sorted { $0.key < $1.key }
    }

    func testEveryFixtureCaseHasATest() throws {
        let known: Set = ["conv2d", "conv_transpose2d", "max_pool2d", "bilinear", "pad", "batch_norm",
                          "adaptive_avg_pool2d", "bce_with_logits", "cross_entropy", "sgd", "adam", "adamw", "model"]
        for (name, meta) in try Fixtures.cases() {
            XCTAssertTrue(known.contains(meta["op"] as? String ?? ""), "fixture case \(name) has no test")
        }
    }

    func testConv2d() throws {
        let all = try cases(op: "conv2d")
        XCTAssertEqual(all.count, 6)
        for (c, meta) in all {
            let x = try t(c, "x"), w = try t(c, "weight"), dy = try t(c, "dy")
            let bias = (meta["bias"] as? Bool ?? true) ? try t(c, "bias") : nil
            let (n, cin, h, wd) = x.nchw
            let g = ConvGeometry(channels: cin, height: h, width: wd, kernelH: w.shape[2], kernelW: w.shape[3],
                                 stride: meta["stride"] as! Int, padding: meta["padding"] as! Int,
                                 dilation: meta["dilation"] as! Int)
            let cout = w.shape[0]
            var y = Tensor(zeros: [n, cout, g.outH, g.outW])
            var dx = Tensor(zeros: x.shape), dw = Tensor(zeros: w.shape), db = Tensor(zeros: [cout])
            x.ptr { xp in w.ptr { wp in y.mutPtr { yp in
                if let bias { bias.ptr { conv2dForward(x: xp, weight: wp, bias: $0, y: yp, batch: n, outChannels: cout, geometry: g) } }
                else { conv2dForward(x: xp, weight: wp, bias: nil, y: yp, batch: n, outChannels: cout, geometry: g) }
            } } }
            x.ptr { xp in w.ptr { wp in dy.ptr { dyp in dx.mutPtr { dxp in dw.mutPtr { dwp in db.mutPtr { dbp in
                conv2dBackward(x: xp, weight: wp, dy: dyp, dx: dxp, dweight: dwp, dbias: bias == nil ? nil : dbp,
                               batch: n, outChannels: cout, geometry: g)
            } } } } } }
            try check("conv2d", c, "y", y)
            try check("conv2d", c, "dx", dx)
            try check("conv2d", c, "dweight", dw)
            if bias != nil { try check("conv2d", c, "dbias", db) }
        }
    }

    func testConvTranspose2d() throws {
        let all = try cases(op: "conv_transpose2d")
        XCTAssertEqual(all.count, 4)
        for (c, meta) in all {
            let x = try t(c, "x"), w = try t(c, "weight"), b = try t(c, "bias"), dy = try t(c, "dy")
            let (n, cin, h, wd) = x.nchw
            let cout = w.shape[1]
            let g = ConvGeometry.transposed(outChannels: cout, inH: h, inW: wd, kernelH: w.shape[2], kernelW: w.shape[3],
                                            stride: meta["stride"] as! Int, padding: meta["padding"] as! Int,
                                            outputPadding: meta["output_padding"] as! Int)
            var y = Tensor(zeros: [n, cout, g.height, g.width])
            var dx = Tensor(zeros: x.shape), dw = Tensor(zeros: w.shape), db = Tensor(zeros: [cout])
            x.ptr { xp in w.ptr { wp in b.ptr { bp in y.mutPtr { yp in
                convTranspose2dForward(x: xp, weight: wp, bias: bp, y: yp, batch: n, inChannels: cin, geometry: g)
            } } } }
            x.ptr { xp in w.ptr { wp in dy.ptr { dyp in dx.mutPtr { dxp in dw.mutPtr { dwp in db.mutPtr { dbp in
                convTranspose2dBackward(x: xp, weight: wp, dy: dyp, dx: dxp, dweight: dwp, dbias: dbp,
                                        batch: n, inChannels: cin, geometry: g)
            } } } } } }
            try check("conv_transpose2d", c, "y", y)
            try check("conv_transpose2d", c, "dx", dx)
            try check("conv_transpose2d", c, "dweight", dw)
            try check("conv_transpose2d", c, "dbias", db)
        }
    }

    func testMaxPool2d() throws {
        let all = try cases(op: "max_pool2d")
        XCTAssertEqual(all.count, 2)
        for (c, _) in all {
            let x = try t(c, "x"), dy = try t(c, "dy")
            let (n, ch, h, w) = x.nchw
            let (oh, ow) = maxPool2dOutputSize(height: h, width: w)
            var y = Tensor(zeros: [n, ch, oh, ow]), dx = Tensor(zeros: x.shape)
            var arg = [Int32](repeating: 0, count: y.count)
            x.ptr { xp in y.mutPtr { yp in arg.withUnsafeMutableBufferPointer { a in
                maxPool2dForward(x: xp, y: yp, argmax: a.baseAddress!, planes: n * ch, height: h, width: w)
            } } }
            dy.ptr { g in dx.mutPtr { d in arg.withUnsafeBufferPointer { a in
                maxPool2dBackward(dy: g, argmax: a.baseAddress!, dx: d, planes: n * ch, height: h, width: w, outH: oh, outW: ow)
            } } }
            try check("max_pool2d", c, "y", y, tolerance: 0)
            try check("max_pool2d", c, "dx", dx, tolerance: 0)
        }
    }

    func testBilinear() throws {
        let all = try cases(op: "bilinear")
        XCTAssertEqual(all.count, 3)
        for (c, meta) in all {
            let x = try t(c, "x"), dy = try t(c, "dy")
            let (n, ch, h, w) = x.nchw
            let size = meta["size"] as! [Int], align = meta["align_corners"] as! Bool
            var y = Tensor(zeros: [n, ch, size[0], size[1]]), dx = Tensor(zeros: x.shape)
            x.ptr { xp in y.mutPtr { yp in
                bilinearForward(x: xp, y: yp, planes: n * ch, inH: h, inW: w, outH: size[0], outW: size[1], alignCorners: align)
            } }
            dy.ptr { g in dx.mutPtr { d in
                bilinearBackward(dy: g, dx: d, planes: n * ch, inH: h, inW: w, outH: size[0], outW: size[1], alignCorners: align)
            } }
            try check("bilinear", c, "y", y)
            try check("bilinear", c, "dx", dx)
        }
    }

    func testPad() throws {
        let all = try cases(op: "pad")
        XCTAssertEqual(all.count, 1)
        for (c, meta) in all {
            let x = try t(c, "x"), dy = try t(c, "dy")
            let (n, ch, h, w) = x.nchw
            let p = meta["pad_left_right_top_bottom"] as! [Int]
            let padding = Padding(left: p[0], right: p[1], top: p[2], bottom: p[3])
            var y = Tensor(zeros: [n, ch, h + p[2] + p[3], w + p[0] + p[1]]), dx = Tensor(zeros: x.shape)
            x.ptr { xp in y.mutPtr { yp in padForward(x: xp, y: yp, planes: n * ch, height: h, width: w, padding: padding) } }
            dy.ptr { g in dx.mutPtr { d in padBackward(dy: g, dx: d, planes: n * ch, height: h, width: w, padding: padding) } }
            try check("pad", c, "y", y, tolerance: 0)
            try check("pad", c, "dx", dx, tolerance: 0)
        }
    }

    func testBatchNormTrainingAndEval() throws {
        let c = "batchnorm_train"
        let x = try t(c, "x"), gamma = try t(c, "weight"), beta = try t(c, "bias"), dy = try t(c, "dy")
        let (n, ch, h, w) = x.nchw
        var y = Tensor(zeros: x.shape), dx = Tensor(zeros: x.shape)
        var rm = Tensor(zeros: [ch]), rv = Tensor(repeating: 1, shape: [ch])
        var dg = Tensor(zeros: [ch]), db = Tensor(zeros: [ch])
        var saved = BatchNormSaved(channels: ch)
        x.ptr { xp in gamma.ptr { gp in beta.ptr { bp in y.mutPtr { yp in rm.mutPtr { rmp in rv.mutPtr { rvp in
            batchNorm2dTrainForward(x: xp, gamma: gp, beta: bp, y: yp, runningMean: rmp, runningVar: rvp, saved: &saved,
                                    batch: n, channels: ch, pixels: h * w, momentum: 0.1, eps: 1e-5, relu: false)
        } } } } } }
        x.ptr { xp in y.ptr { yp in dy.ptr { g in gamma.ptr { gp in dx.mutPtr { d in dg.mutPtr { dgp in db.mutPtr { dbp in
            batchNorm2dTrainBackward(x: xp, y: yp, dy: g, gamma: gp, saved: saved, dx: d, dgamma: dgp, dbeta: dbp,
                                     batch: n, channels: ch, pixels: h * w, relu: false)
        } } } } } } }
        try check("batch_norm", c, "y", y)
        try check("batch_norm", c, "dx", dx)
        try check("batch_norm", c, "dweight", dg)
        try check("batch_norm", c, "dbias", db)
        try check("batch_norm", c, "running_mean", rm)
        try check("batch_norm", c, "running_var", rv)

        let ex = try t(c, "eval_x")
        var ey = Tensor(zeros: ex.shape)
        let (en, _, eh, ew) = ex.nchw
        ex.ptr { xp in gamma.ptr { gp in beta.ptr { bp in ey.mutPtr { yp in rm.ptr { rmp in rv.ptr { rvp in
            batchNorm2dEvalForward(x: xp, gamma: gp, beta: bp, y: yp, runningMean: rmp, runningVar: rvp,
                                   batch: en, channels: ch, pixels: eh * ew, eps: 1e-5, relu: false)
        } } } } } }
        try check("batch_norm", c, "eval_y", ey)
    }

    func testAdaptiveAvgPool() throws {
        let all = try cases(op: "adaptive_avg_pool2d")
        XCTAssertEqual(all.count, 4)
        for (c, meta) in all {
            let x = try t(c, "x"), dy = try t(c, "dy"), out = meta["output"] as! Int
            let (n, ch, h, w) = x.nchw
            var y = Tensor(zeros: [n, ch, out, out]), dx = Tensor(zeros: x.shape)
            x.ptr { xp in y.mutPtr { yp in
                adaptiveAvgPool2dForward(x: xp, y: yp, planes: n * ch, height: h, width: w, outH: out, outW: out)
            } }
            dy.ptr { g in dx.mutPtr { d in
                adaptiveAvgPool2dBackward(dy: g, dx: d, planes: n * ch, height: h, width: w, outH: out, outW: out)
            } }
            try check("adaptive_avg_pool2d", c, "y", y)
            try check("adaptive_avg_pool2d", c, "dx", dx)
        }
    }

    func testBCEWithLogits() throws {
        let c = "bce_with_logits"
        let x = try t(c, "logits"), target = try t(c, "target")
        var grad = Tensor(zeros: x.shape)
        let loss = x.ptr { xp in target.ptr { tp in grad.mutPtr { g in bceWithLogits(logits: xp, targets: tp, count: x.count, grad: g) } } }
        try check("losses", c, "loss", Tensor(shape: [], storage: [loss]))
        try check("losses", c, "dlogits", grad)
    }

    func testSoftmaxCrossEntropy() throws {
        let c = "softmax_cross_entropy"
        let x = try t(c, "logits"), target = try t(c, "target")
        let (n, classes, h, w) = x.nchw
        let idx = target.storage.map { Int32($0) }
        var grad = Tensor(zeros: x.shape)
        let loss = try x.ptr { xp in try idx.withUnsafeBufferPointer { tp in try grad.mutPtr { g in
            try softmaxCrossEntropy(logits: xp, targets: tp.baseAddress!, batch: n, classes: classes, pixels: h * w, grad: g)
        } } }
        try check("losses", c, "loss", Tensor(shape: [], storage: [loss]))
        try check("losses", c, "dlogits", grad)
    }

    func testOptimizers() throws {
        let makers: [String: () throws -> Optimizer] = [
            "sgd_momentum_wd": { try SGD(momentum: 0.9, weightDecay: 5e-4) },
            "adam": { try Adam() },
            "adamw": { try Adam.adamW(weightDecay: 1e-2) },
        ]
        let all = try cases(op: "sgd") + cases(op: "adam") + cases(op: "adamw")
        XCTAssertEqual(all.count, 3)
        for (c, meta) in all {
            let opt = try makers[c]!()
            let lr = Float(meta["lr"] as! Double)
            let p = try t(c, "p0")
            for i in 1...3 {
                let g = try t(c, "g\(i)")
                opt.step(parameters: p, gradients: g, learningRate: lr)
                try check("optimizers", c, "p\(i)", p, tolerance: 1e-5)
            }
        }
    }
}
