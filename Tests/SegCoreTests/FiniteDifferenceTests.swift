import XCTest
import SegCore

/// Every op's backward against central finite differences of L = sum(forward(inputs) * r)
/// for a fixed random r, on small random inputs, computed in float32 with a step of 1e-2
/// (1e-3 for piecewise-linear ops), over a sample of input elements.
final class FiniteDifferenceTests: XCTestCase {
    var rng = SeededGenerator(seed: 42)

    func random(_ shape: [Int], scale: Float = 1) -> Tensor {
        Tensor(shape: shape, storage: (0..<shape.reduce(1, *)).map { _ in Float(rng.normal()) * scale })
    }

    /// - forward: inputs -> output; backward: (inputs, dy) -> gradient for each input.
    func check(_ name: String, _ inputs: [Tensor], step: Float = 1e-2, tolerance: Double = 1e-2,
               forward: ([Tensor]) -> Tensor, backward: ([Tensor], Tensor) -> [Tensor],
               file: StaticString = #filePath, line: UInt = #line) {
        let y = forward(inputs)
        let r = random(y.shape)
        func objective(_ xs: [Tensor]) -> Double {
            zip(forward(xs).storage, r.storage).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        let grads = backward(inputs, r)
        XCTAssertEqual(grads.count, inputs.count, file: file, line: line)
        for (k, input) in inputs.enumerated() {
            XCTAssertEqual(grads[k].shape, input.shape, "\(name): gradient \(k) shape", file: file, line: line)
            var worst = 0.0, scale = 1e-3
            let picks = input.count <= 40 ? Array(0..<input.count) : (0..<40).map { _ in rng.integer(0, input.count) }
            for i in picks {
                var plus = inputs, minus = inputs
                plus[k].storage[i] += step
                minus[k].storage[i] -= step
                let numeric = (objective(plus) - objective(minus)) / (2 * Double(step))
                worst = max(worst, abs(numeric - Double(grads[k].storage[i])))
                scale = max(scale, abs(numeric))
            }
            XCTAssertLessThanOrEqual(worst / scale, tolerance, "\(name): input \(k) (worst \(worst), scale \(scale))",
                                     file: file, line: line)
        }
    }

    // MARK: Convolutions

    func conv(_ xs: [Tensor], _ g: ConvGeometry, bias: Bool) -> Tensor {
        let x = xs[0], w = xs[1], n = x.shape[0], cout = w.shape[0]
        var y = Tensor(zeros: [n, cout, g.outH, g.outW])
        x.ptr { xp in w.ptr { wp in y.mutPtr { yp in
            if bias { xs[2].ptr { conv2dForward(x: xp, weight: wp, bias: $0, y: yp, batch: n, outChannels: cout, geometry: g) } }
            else { conv2dForward(x: xp, weight: wp, bias: nil, y: yp, batch: n, outChannels: cout, geometry: g) }
        } } }
        return y
    }

    func convBackward(_ xs: [Tensor], _ dy: Tensor, _ g: ConvGeometry, bias: Bool) -> [Tensor] {
        let x = xs[0], w = xs[1], n = x.shape[0], cout = w.shape[0]
        var dx = Tensor(zeros: x.shape), dw = Tensor(zeros: w.shape), db = Tensor(zeros: [cout])
        x.ptr { xp in w.ptr { wp in dy.ptr { g0 in dx.mutPtr { dxp in dw.mutPtr { dwp in db.mutPtr { dbp in
            conv2dBackward(x: xp, weight: wp, dy: g0, dx: dxp, dweight: dwp, dbias: bias ? dbp : nil,
                           batch: n, outChannels: cout, geometry: g)
        } } } } } }
        return bias ? [dx, dw, db] : [dx, dw]
    }

    func testConv2dVariants() {
        // (Cin, H, W, Cout, k, stride, padding, dilation): stride-1 (flipped-kernel input gradient),
        // strided and over-padded (col2im input gradient), pointwise, dilated.
        let variants = [(2, 6, 5, 3, 3, 1, 1, 1), (2, 7, 6, 3, 3, 2, 1, 1), (3, 5, 5, 2, 1, 1, 0, 1),
                        (2, 7, 7, 2, 3, 1, 2, 2), (1, 5, 6, 2, 3, 1, 3, 1), (2, 6, 6, 2, 5, 1, 2, 1)]
        for (cin, h, w, cout, k, s, p, d) in variants {
            let g = ConvGeometry(channels: cin, height: h, width: w, kernelH: k, kernelW: k, stride: s, padding: p, dilation: d)
            for bias in [true, false] {
                var inputs = [random([2, cin, h, w]), random([cout, cin, k, k], scale: 0.5)]
                if bias { inputs.append(random([cout])) }
                check("conv2d k\(k) s\(s) p\(p) d\(d) bias=\(bias)", inputs,
                      forward: { conv($0, g, bias: bias) }, backward: { convBackward($0, $1, g, bias: bias) })
            }
        }
    }

    func testConvTranspose2d() {
        for (k, s, p, op) in [(2, 2, 0, 0), (3, 2, 1, 1), (4, 2, 1, 0), (3, 1, 1, 0)] {
            let cin = 3, cout = 2, h = 4, w = 3
            let g = ConvGeometry.transposed(outChannels: cout, inH: h, inW: w, kernelH: k, kernelW: k, stride: s,
                                            padding: p, outputPadding: op)
            check("conv_transpose2d k\(k) s\(s) p\(p) op\(op)", [random([2, cin, h, w]), random([cin, cout, k, k]), random([cout])],
                  forward: { xs in
                      var y = Tensor(zeros: [2, cout, g.height, g.width])
                      xs[0].ptr { xp in xs[1].ptr { wp in xs[2].ptr { bp in y.mutPtr { yp in
                          convTranspose2dForward(x: xp, weight: wp, bias: bp, y: yp, batch: 2, inChannels: cin, geometry: g)
                      } } } }
                      return y
                  }, backward: { xs, dy in
                      var dx = Tensor(zeros: xs[0].shape), dw = Tensor(zeros: xs[1].shape), db = Tensor(zeros: [cout])
                      xs[0].ptr { xp in xs[1].ptr { wp in dy.ptr { gp in dx.mutPtr { a in dw.mutPtr { b in db.mutPtr { c in
                          convTranspose2dBackward(x: xp, weight: wp, dy: gp, dx: a, dweight: b, dbias: c, batch: 2,
                                                  inChannels: cin, geometry: g)
                      } } } } } }
                      return [dx, dw, db]
                  })
        }
    }

    // MARK: Resampling

    func testMaxPool() {
        for (h, w) in [(6, 6), (5, 7)] {
            let (oh, ow) = maxPool2dOutputSize(height: h, width: w)
            var arg = [Int32](repeating: 0, count: 2 * 2 * oh * ow)
            check("max_pool2d \(h)x\(w)", [random([2, 2, h, w])], step: 1e-3, forward: { xs in
                var y = Tensor(zeros: [2, 2, oh, ow])
                xs[0].ptr { xp in y.mutPtr { yp in arg.withUnsafeMutableBufferPointer { a in
                    maxPool2dForward(x: xp, y: yp, argmax: a.baseAddress!, planes: 4, height: h, width: w)
                } } }
                return y
            }, backward: { xs, dy in
                var a2 = [Int32](repeating: 0, count: arg.count), y = Tensor(zeros: [2, 2, oh, ow]), dx = Tensor(zeros: xs[0].shape)
                xs[0].ptr { xp in y.mutPtr { yp in a2.withUnsafeMutableBufferPointer { a in
                    maxPool2dForward(x: xp, y: yp, argmax: a.baseAddress!, planes: 4, height: h, width: w)
                } } }
                dy.ptr { g in dx.mutPtr { d in a2.withUnsafeBufferPointer { a in
                    maxPool2dBackward(dy: g, argmax: a.baseAddress!, dx: d, planes: 4, height: h, width: w, outH: oh, outW: ow)
                } } }
                return [dx]
            })
        }
    }

    func testBilinear() {
        for (oh, ow, align) in [(8, 10, true), (8, 10, false), (7, 4, false), (3, 3, true)] {
            check("bilinear \(oh)x\(ow) align=\(align)", [random([1, 2, 4, 5])], forward: { xs in
                var y = Tensor(zeros: [1, 2, oh, ow])
                xs[0].ptr { xp in y.mutPtr { yp in
                    bilinearForward(x: xp, y: yp, planes: 2, inH: 4, inW: 5, outH: oh, outW: ow, alignCorners: align)
                } }
                return y
            }, backward: { xs, dy in
                var dx = Tensor(zeros: xs[0].shape)
                dy.ptr { g in dx.mutPtr { d in
                    bilinearBackward(dy: g, dx: d, planes: 2, inH: 4, inW: 5, outH: oh, outW: ow, alignCorners: align)
                } }
                return [dx]
            })
        }
    }

    func testPadIncludingCrop() {
        for p in [Padding(left: 1, right: 0, top: 2, bottom: 1), Padding(left: -1, right: 2, top: 0, bottom: -1)] {
            let oh = 4 + p.top + p.bottom, ow = 5 + p.left + p.right
            check("pad \(p)", [random([1, 2, 4, 5])], forward: { xs in
                var y = Tensor(zeros: [1, 2, oh, ow])
                xs[0].ptr { xp in y.mutPtr { yp in padForward(x: xp, y: yp, planes: 2, height: 4, width: 5, padding: p) } }
                return y
            }, backward: { xs, dy in
                var dx = Tensor(zeros: xs[0].shape)
                dy.ptr { g in dx.mutPtr { d in padBackward(dy: g, dx: d, planes: 2, height: 4, width: 5, padding: p) } }
                return [dx]
            })
        }
    }

    func testConcatAndAdd() {
        check("concat", [random([2, 2, 3, 3]), random([2, 1, 3, 3])], forward: { xs in
            var y = Tensor(zeros: [2, 3, 3, 3])
            xs[0].ptr { a in xs[1].ptr { b in y.mutPtr { yp in
                concatChannelsForward(a: a, b: b, y: yp, batch: 2, channelsA: 2, channelsB: 1, pixels: 9)
            } } }
            return y
        }, backward: { xs, dy in
            var da = Tensor(zeros: xs[0].shape), db = Tensor(zeros: xs[1].shape)
            dy.ptr { g in da.mutPtr { a in db.mutPtr { b in
                concatChannelsBackward(dy: g, da: a, db: b, batch: 2, channelsA: 2, channelsB: 1, pixels: 9)
            } } }
            return [da, db]
        })
        check("add", [random([2, 3]), random([2, 3])], forward: { $0[0] + $0[1] }, backward: { _, dy in [dy, dy] })
    }

    func testAdaptiveAvgPool() {
        for out in [1, 2, 3] {
            check("adaptive_avg_pool \(out)", [random([1, 2, 7, 5])], forward: { xs in
                var y = Tensor(zeros: [1, 2, out, out])
                xs[0].ptr { xp in y.mutPtr { yp in
                    adaptiveAvgPool2dForward(x: xp, y: yp, planes: 2, height: 7, width: 5, outH: out, outW: out)
                } }
                return y
            }, backward: { xs, dy in
                var dx = Tensor(zeros: xs[0].shape)
                dy.ptr { g in dx.mutPtr { d in
                    adaptiveAvgPool2dBackward(dy: g, dx: d, planes: 2, height: 7, width: 5, outH: out, outW: out)
                } }
                return [dx]
            })
        }
    }

    // MARK: Normalisation and activations

    func testBatchNormTraining() {
        for relu in [false, true] {
            func forward(_ xs: [Tensor], _ saved: inout BatchNormSaved) -> Tensor {
                var y = Tensor(zeros: xs[0].shape), rm = Tensor(zeros: [3]), rv = Tensor(repeating: 1, shape: [3])
                xs[0].ptr { xp in xs[1].ptr { gp in xs[2].ptr { bp in y.mutPtr { yp in rm.mutPtr { a in rv.mutPtr { b in
                    batchNorm2dTrainForward(x: xp, gamma: gp, beta: bp, y: yp, runningMean: a, runningVar: b, saved: &saved,
                                            batch: 2, channels: 3, pixels: 12, momentum: 0.1, eps: 1e-5, relu: relu)
                } } } } } }
                return y
            }
            check("batch_norm relu=\(relu)", [random([2, 3, 3, 4], scale: 2), random([3]), random([3])],
                  step: relu ? 1e-3 : 1e-2, tolerance: 2e-2, forward: { xs in
                var saved = BatchNormSaved(channels: 3)
                return forward(xs, &saved)
            }, backward: { xs, dy in
                var saved = BatchNormSaved(channels: 3)
                let y = forward(xs, &saved)
                var dx = Tensor(zeros: xs[0].shape), dg = Tensor(zeros: [3]), db = Tensor(zeros: [3])
                xs[0].ptr { xp in y.ptr { yp in dy.ptr { g in xs[1].ptr { gp in dx.mutPtr { d in dg.mutPtr { a in db.mutPtr { b in
                    batchNorm2dTrainBackward(x: xp, mask: relu ? .output(yp) : .none, dy: g, gamma: gp, saved: saved, dx: d, dgamma: a, dbeta: b,
                                             batch: 2, channels: 3, pixels: 12)
                } } } } } } }
                return [dx, dg, db]
            })
        }
    }

    /// An activation whose backward reads its own output.
    func checkActivation(_ name: String, _ input: Tensor, step: Float = 1e-2,
                         forward: @escaping (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void,
                         backward: @escaping (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void) {
        func apply(_ x: Tensor) -> Tensor {
            var y = Tensor(zeros: x.shape)
            x.ptr { xp in y.mutPtr { forward(xp, $0, x.count) } }
            return y
        }
        check(name, [input], step: step, forward: { apply($0[0]) }, backward: { xs, dy in
            let y = apply(xs[0])
            var dx = Tensor(zeros: xs[0].shape)
            y.ptr { yp in dy.ptr { g in dx.mutPtr { backward(yp, g, $0, y.count) } } }
            return [dx]
        })
    }

    /// Batch norm's backward with the ReLU mask recomputed from x (`.input`) equals the one
    /// reading the kept output bit for bit, and `batchNorm2dReapply` rebuilds that output exactly.
    func testBatchNormMaskFromTheInputAndTheRebuiltOutput() {
        let shape = [3, 5, 7, 9], n = 3, c = 5, p = 63   // 63 pixels: vector lanes and a scalar tail
        let x = random(shape, scale: 2), gamma = random([c]), beta = random([c]), dy = random(shape)
        var y = Tensor(zeros: shape), rebuilt = Tensor(zeros: shape), rm = Tensor(zeros: [c]), rv = Tensor(repeating: 1, shape: [c])
        var saved = BatchNormSaved(channels: c)
        x.ptr { xp in gamma.ptr { gp in beta.ptr { bp in y.mutPtr { yp in rm.mutPtr { a in rv.mutPtr { b in
            batchNorm2dTrainForward(x: xp, gamma: gp, beta: bp, y: yp, runningMean: a, runningVar: b, saved: &saved,
                                    batch: n, channels: c, pixels: p, momentum: 0.1, eps: 1e-5, relu: true)
        } } } } } }
        x.ptr { xp in gamma.ptr { gp in beta.ptr { bp in rebuilt.mutPtr { yp in
            batchNorm2dReapply(x: xp, gamma: gp, beta: bp, y: yp, saved: saved, batch: n, channels: c, pixels: p, relu: true)
        } } } }
        XCTAssertEqual(rebuilt.storage, y.storage, "the rebuilt output is the forward's, bit for bit")
        XCTAssertTrue(y.storage.contains(0) && y.storage.contains { $0 > 0 }, "the ReLU cuts some values and passes others")
        func backward(fromInput: Bool) -> [[Float]] {
            var dx = Tensor(zeros: shape), dg = Tensor(zeros: [c]), db = Tensor(zeros: [c])
            x.ptr { xp in y.ptr { yp in dy.ptr { g in gamma.ptr { gp in beta.ptr { bp in dx.mutPtr { d in dg.mutPtr { a in db.mutPtr { b in
                batchNorm2dTrainBackward(x: xp, mask: fromInput ? .input(gamma: gp, beta: bp) : .output(yp), dy: g, gamma: gp,
                                         saved: saved, dx: d, dgamma: a, dbeta: b, batch: n, channels: c, pixels: p)
            } } } } } } } }
            return [dx.storage, dg.storage, db.storage]
        }
        XCTAssertEqual(backward(fromInput: true), backward(fromInput: false))
    }

    func testReLUAndSigmoid() {
        checkActivation("relu", random([3, 7]), step: 1e-3,
                        forward: { reluForward(x: $0, y: $1, count: $2) },
                        backward: { reluBackward(y: $0, dy: $1, dx: $2, count: $3) })
        checkActivation("sigmoid", random([3, 7], scale: 3),
                        forward: { sigmoidForward(x: $0, y: $1, count: $2) },
                        backward: { sigmoidBackward(y: $0, dy: $1, dx: $2, count: $3) })
    }

    func testDropoutWithAFixedMask() {
        func run(_ x: Tensor) -> (Tensor, [Float]) {
            var gen = SeededGenerator(seed: 9)
            var y = Tensor(zeros: x.shape), mask = [Float](repeating: 0, count: x.count)
            x.ptr { xp in y.mutPtr { yp in mask.withUnsafeMutableBufferPointer { m in
                dropoutForward(x: xp, y: yp, mask: m.baseAddress!, count: x.count, p: 0.3, generator: &gen)
            } } }
            return (y, mask)
        }
        let (_, mask) = run(random([200]))
        let kept = mask.filter { $0 > 0 }
        XCTAssertTrue(kept.allSatisfy { abs($0 - 1 / 0.7) < 1e-6 }, "kept elements are scaled by 1/(1-p)")
        XCTAssertEqual(Double(kept.count) / 200, 0.7, accuracy: 0.1)
        check("dropout", [random([4, 6])], forward: { run($0[0]).0 }, backward: { xs, dy in
            let (_, m) = run(xs[0])
            var dx = Tensor(zeros: xs[0].shape)
            dy.ptr { g in m.withUnsafeBufferPointer { mp in dx.mutPtr { dropoutBackward(dy: g, mask: mp.baseAddress!, dx: $0, count: 24) } } }
            return [dx]
        })
    }

    // MARK: Losses (the objective is the loss itself: r is a single 1)

    func lossCheck(_ name: String, _ logits: Tensor, loss: @escaping (Tensor, UnsafeMutablePointer<Float>?) -> Float) {
        check(name, [logits], forward: { xs in Tensor(shape: [1], storage: [loss(xs[0], nil)]) }, backward: { xs, dy in
            var g = Tensor(zeros: xs[0].shape)
            _ = g.mutPtr { loss(xs[0], $0) }
            return [Tensor(shape: g.shape, storage: g.storage.map { $0 * dy.storage[0] })]
        })
    }

    func oneHot(_ classes: Int, _ n: Int, _ pixels: Int) -> (Tensor, [Int32]) {
        var t = Tensor(zeros: [n, classes, pixels]), idx = [Int32]()
        for b in 0..<n { for p in 0..<pixels {
            let c = rng.integer(0, classes); idx.append(Int32(c)); t.storage[(b * classes + c) * pixels + p] = 1
        } }
        return (t, idx)
    }

    func testLosses() throws {
        let (target, indices) = oneHot(3, 2, 10)
        lossCheck("bce_with_logits", random([2, 3, 10])) { x, g in
            x.ptr { xp in target.ptr { bceWithLogits(logits: xp, targets: $0, count: 60, grad: g) } }
        }
        var ignoring = indices
        ignoring[3] = -100; ignoring[11] = -100
        lossCheck("cross_entropy with ignore_index", random([2, 3, 10])) { x, g in
            x.ptr { xp in ignoring.withUnsafeBufferPointer { t in
                try! softmaxCrossEntropy(logits: xp, targets: t.baseAddress!, batch: 2, classes: 3, pixels: 10, grad: g)
            } }
        }
        let weights: [Float] = [0.5, 2, 1]
        lossCheck("cross_entropy with class weights", random([2, 3, 10])) { x, g in
            x.ptr { xp in ignoring.withUnsafeBufferPointer { t in weights.withUnsafeBufferPointer { w in
                try! softmaxCrossEntropy(logits: xp, targets: t.baseAddress!, batch: 2, classes: 3, pixels: 10,
                                         classWeights: w.baseAddress!, grad: g)
            } } }
        }
        for activation in [DiceActivation.sigmoid, .softmax] {
            lossCheck("soft dice \(activation)", random([2, 3, 10])) { x, g in
                x.ptr { xp in target.ptr {
                    softDiceLoss(logits: xp, targets: $0, batch: 2, classes: 3, pixels: 10, activation: activation, grad: g)
                } }
            }
        }
    }

    func testCrossEntropyRejectsOutOfRangeTargets() {
        let logits = Tensor(zeros: [1, 2, 1]), bad: [Int32] = [5]
        XCTAssertThrowsError(try logits.ptr { x in try bad.withUnsafeBufferPointer {
            try softmaxCrossEntropy(logits: x, targets: $0.baseAddress!, batch: 1, classes: 2, pixels: 1, grad: nil)
        } }) { XCTAssertEqual($0 as? LossError, .targetOutOfRange(5, classes: 2)) }
    }

    func testDiceOfAPerfectPredictionIsNearZero() {
        let (target, _) = oneHot(2, 1, 16)
        let logits = Tensor(shape: target.shape, storage: target.storage.map { $0 > 0 ? 30 : -30 })
        let loss = logits.ptr { x in target.ptr { softDiceLoss(logits: x, targets: $0, batch: 1, classes: 2, pixels: 16, grad: nil) } }
        XCTAssertEqual(loss, 0, accuracy: 1e-5)
    }
}
