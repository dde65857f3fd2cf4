import XCTest
import SegCore
import SegTestSupport

/// The ops MobileNetV3 adds — grouped and depthwise convolutions, hardswish, hardsigmoid and the
/// squeeze-and-excitation channel scaling — against direct loops (forward) and central finite
/// differences (every gradient), and against PyTorch's own F.conv2d(groups=), F.hardswish,
/// F.hardsigmoid and broadcast multiply (Tests/Fixtures/make_mobilenet_fixtures.py).
extension FiniteDifferenceTests {
    /// F.conv2d(groups=G) written out as loops.
    func referenceGroupedConv(_ x: Tensor, _ w: Tensor, _ b: Tensor?, _ g: ConvGeometry, groups: Int) -> Tensor {
        let (n, c, h, wd) = x.nchw, cout = w.shape[0], ci = c / groups, co = cout / groups
        var y = Tensor(zeros: [n, cout, g.outH, g.outW])
        for b0 in 0..<n { for oc in 0..<cout { for oh in 0..<g.outH { for ow in 0..<g.outW {
            var acc = b?.storage[oc] ?? 0
            for cc in 0..<ci { for kh in 0..<g.kernelH { for kw in 0..<g.kernelW {
                let ih = oh * g.stride - g.padding + kh * g.dilation, iw = ow * g.stride - g.padding + kw * g.dilation
                guard ih >= 0, ih < h, iw >= 0, iw < wd else { continue }
                let ic = (oc / co) * ci + cc
                acc += w.storage[((oc * ci + cc) * g.kernelH + kh) * g.kernelW + kw] * x.storage[((b0 * c + ic) * h + ih) * wd + iw]
            } } }
            y.storage[((b0 * cout + oc) * g.outH + oh) * g.outW + ow] = acc
        } } } }
        return y
    }

    func testGroupedAndDepthwiseConvolutions() {
        let cpu = CPUBackend.shared
        // (channels in, out, groups, kernel, stride, padding, dilation, size)
        let cases = [(4, 4, 4, 3, 1, 1, 1, 7), (4, 8, 4, 3, 2, 1, 1, 9), (3, 3, 3, 5, 1, 4, 2, 8), (6, 6, 6, 5, 2, 2, 1, 10),
                     (4, 6, 2, 3, 1, 1, 1, 6), (6, 4, 2, 1, 1, 0, 1, 5),
                     // depthwise, two outputs per input at stride 1; unpadded (a smaller output)
                     (4, 8, 4, 3, 1, 1, 1, 9), (4, 4, 4, 3, 1, 0, 1, 12),
                     // ungrouped, dilation at least the map's sides: only the centre tap reads the
                     // image (the 1x1 shortcut); then just short of it on one side, and well inside
                     (3, 5, 1, 3, 1, 12, 12, 7), (3, 5, 1, 3, 1, 8, 8, 8), (3, 5, 1, 3, 1, 4, 4, 7)]
        for (c, cout, groups, k, s, p, d, size) in cases {
            let name = "conv \(c)->\(cout) groups \(groups) k\(k) s\(s) p\(p) d\(d)"
            let g = ConvGeometry(channels: c, height: size, width: size + 1, kernelH: k, kernelW: k, stride: s, padding: p, dilation: d)
            let x = random([2, c, size, size + 1]), w = random([cout, c / groups, k, k]), b = random([cout])
            if groups == 1 { XCTAssertEqual(g.onlyTap != nil, d >= size + 1, "\(name): the 1x1 shortcut exactly when every other tap reads padding") }
            let y = cpu.groupedConv2dForward(x, weight: w, bias: b, geometry: g, groups: groups)
            let expected = referenceGroupedConv(x, w, b, g, groups: groups)
            let worst = zip(y.storage, expected.storage).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThan(worst, 1e-5, "\(name): forward differs from the loops by \(worst)")
            check(name, [x, w, b], forward: { cpu.groupedConv2dForward($0[0], weight: $0[1], bias: $0[2], geometry: g, groups: groups) },
                  backward: { xs, dy in
                      let dw = Tensor(zeros: xs[1].shape), db = Tensor(zeros: [cout])
                      let dx = cpu.groupedConv2dBackward(x: xs[0], weight: xs[1], dy: dy, geometry: g, groups: groups, inputGradient: true,
                                                         weightGradient: dw, biasGradient: db)!
                      return [dx, dw, db]
                  })
        }
    }

    func testHardswishAndHardsigmoid() {
        let cpu = CPUBackend.shared
        for kind in [HardActivation.hardswish, .hardsigmoid] {
            check(kind.rawValue, [random([3, 11], scale: 3)], step: 1e-3, forward: { cpu.hardActivation(kind, $0[0]) },
                  backward: { xs, dy in [cpu.hardActivationBackward(kind, x: xs[0], dy: dy)] })
        }
        // the values and PyTorch's gradients at and around the kinks (torch 2.15)
        let x = Tensor(shape: [7], storage: [-4, -3, -1.5, 0, 1.5, 3, 4]), ones = Tensor(repeating: 1, shape: [7])
        XCTAssertEqual(cpu.hardActivation(.hardswish, x).storage, [0, 0, -0.375, 0, 1.125, 3, 4])
        XCTAssertEqual(cpu.hardActivationBackward(.hardswish, x: x, dy: ones).storage, [0, 0, 0, 0.5, 1, 1, 1])
        XCTAssertEqual(cpu.hardActivation(.hardsigmoid, x).storage, [0, 0, 0.25, 0.5, 0.75, 1, 1])
        XCTAssertEqual(cpu.hardActivationBackward(.hardsigmoid, x: x, dy: ones).storage, [0, 0, 1.0 / 6, 1.0 / 6, 1.0 / 6, 0, 0])
    }

    func testChannelScaling() {
        let cpu = CPUBackend.shared
        check("scale channels", [random([2, 3, 4, 5]), random([2, 3, 1, 1])], forward: { cpu.scaleChannels($0[0], by: $0[1]) },
              backward: { xs, dy in
                  let (dx, ds) = cpu.scaleChannelsBackward(x: xs[0], scales: xs[1], dy: dy)
                  return [dx, ds]
              })
    }

    func testTheOpsMatchPyTorch() throws {
        let f = try Fixtures.mobileNet(), cases = try Fixtures.cases(f), cpu = CPUBackend.shared
        func t(_ c: String, _ k: String) throws -> Tensor { try f.tensor("\(c).\(k)") }
        func close(_ got: Tensor, _ want: Tensor, _ what: String, _ tolerance: Double = 1e-5) {
            XCTAssertEqual(got.shape, want.shape, what)
            let scale = max(want.storage.map { abs(Double($0)) }.max() ?? 0, 1e-6)
            let d = (zip(got.storage, want.storage).map { abs(Double($0) - Double($1)) }.max() ?? 0) / scale
            XCTAssertLessThanOrEqual(d, tolerance, "\(what): \(d)")
        }
        var checked = 0
        for (c, meta) in cases {
            switch meta["op"] as? String {
            case "conv2d":
                let x = try t(c, "x"), w = try t(c, "w"), groups = meta["groups"] as! Int
                let g = ConvGeometry(channels: x.shape[1], height: x.shape[2], width: x.shape[3], kernelH: w.shape[2], kernelW: w.shape[3],
                                     stride: meta["stride"] as! Int, padding: meta["padding"] as! Int, dilation: meta["dilation"] as! Int)
                close(cpu.groupedConv2dForward(x, weight: w, bias: try t(c, "b"), geometry: g, groups: groups), try t(c, "y"), "\(c).y")
                let dw = Tensor(zeros: w.shape), db = Tensor(zeros: [w.shape[0]])
                let dx = cpu.groupedConv2dBackward(x: x, weight: w, dy: try t(c, "dy"), geometry: g, groups: groups, inputGradient: true,
                                                   weightGradient: dw, biasGradient: db)!
                close(dx, try t(c, "dx"), "\(c).dx"); close(dw, try t(c, "dw"), "\(c).dw"); close(db, try t(c, "db"), "\(c).db")
            case "hardswish", "hardsigmoid":
                let kind = HardActivation(rawValue: c)!, x = try t(c, "x")
                close(cpu.hardActivation(kind, x), try t(c, "y"), "\(c).y")
                close(cpu.hardActivationBackward(kind, x: x, dy: try t(c, "dy")), try t(c, "dx"), "\(c).dx")
            case "scale_channels":
                let x = try t(c, "x"), s = try t(c, "s")
                close(cpu.scaleChannels(x, by: s), try t(c, "y"), "\(c).y")
                let (dx, ds) = cpu.scaleChannelsBackward(x: x, scales: s, dy: try t(c, "dy"))
                close(dx, try t(c, "dx"), "\(c).dx"); close(ds, try t(c, "ds"), "\(c).ds")
            default: continue
            }
            checked += 1
        }
        XCTAssertEqual(checked, 6, "three convolutions, two activations, the scaling")
    }
}
