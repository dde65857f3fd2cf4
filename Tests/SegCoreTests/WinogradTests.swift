import XCTest
import SegCore
@testable import SegKernels

/// The Winograd paths, F(2x2, 3x3) and F(4x4, 3x3) (3x3, stride 1, padding 1, >= 8 input
/// channels; the 4x4 tiles from 8x8 images up) against a
/// direct convolution written out in the test: output, input gradient and weight gradient, on
/// even and odd image sizes (partial edge tiles) and channel counts that are not multiples of
/// anything, whole images, blocks of tile rows and whole batches, and a layer wide enough
/// (130 x 128 kernels) for the weight transforms to split over the workers. 38 x 41 puts a
/// partial last tile row under groups of 8 tiles that F(4x4) stores back as whole rows.
final class WinogradTests: XCTestCase {
    func testWinogradMatchesDirectConvolution() {
        // three workers: blocks, images and channel shares split unevenly between them
        let threads = Parallel.threads
        Parallel.configure(threads: 3)
        defer { Parallel.configure(threads: threads) }
        var rng = SeededGenerator(seed: 9)
        for (n, cin, cout, h, w) in [(2, 16, 3, 8, 8), (1, 17, 20, 7, 9), (3, 32, 16, 5, 4), (2, 16, 16, 13, 6), (1, 16, 17, 9, 11),
                                     (2, 20, 16, 12, 8), (1, 16, 16, 16, 35), (1, 24, 18, 33, 17), (1, 16, 16, 64, 66),
                                     (2, 130, 128, 6, 5), (2, 8, 8, 16, 16), (1, 9, 8, 7, 10), (1, 8, 9, 38, 41)] {
            let g = ConvGeometry(channels: cin, height: h, width: w, kernelH: 3, kernelW: 3, stride: 1, padding: 1)
            XCTAssertTrue(g.isWinograd3x3)
            let x = (0..<(n * cin * h * w)).map { _ in rng.uniform(-1, 1) }
            let wt = (0..<(cout * cin * 9)).map { _ in rng.uniform(-1, 1) }
            let bias = (0..<cout).map { _ in rng.uniform(-1, 1) }
            let dy = (0..<(n * cout * h * w)).map { _ in rng.uniform(-1, 1) }
            let (y, dx, dw) = directConv3x3(n, cin, cout, h, w, dilation: 1, x: x, weight: wt, bias: bias, dy: dy)
            var gotY = [Float](repeating: 0, count: y.count), gotDx = [Float](repeating: 0, count: dx.count)
            var gotDw = [Float](repeating: 0, count: dw.count), gotDb = [Float](repeating: 0, count: cout)
            conv2dForward(x: x, weight: wt, bias: bias, y: &gotY, batch: n, outChannels: cout, geometry: g)
            conv2dBackward(x: x, weight: wt, dy: dy, dx: &gotDx, dweight: &gotDw, dbias: &gotDb, batch: n, outChannels: cout, geometry: g)
            // the 4x4-tile kernel directly, whatever side the dispatch would pick it from
            var y4 = [Float](repeating: 0, count: y.count)
            winogradConv3x3(.f4, x: x, weight: wt, bias: bias, y: &y4, batch: n, inChannels: cin, outChannels: cout, height: h, width: w)
            let label = "\(n)x\(cin)->\(cout) \(h)x\(w)"
            // F(4x4, 3x3)'s transforms (fractions down to 1/24, factors up to 8) cost a few ulps
            XCTAssertLessThan(worst(gotY, y), 1e-5, "y " + label)
            XCTAssertLessThan(worst(y4, y), 1e-5, "y F(4x4) " + label)
            var dw4 = [Float](repeating: 0, count: dw.count)
            winogradConv3x3WeightGradient(.f4, x: x, dy: dy, dweight: &dw4, batch: n, inChannels: cin, outChannels: cout, height: h, width: w)
            XCTAssertLessThan(worst(dw4, dw), 1e-5, "dw F(4x4) " + label)
            // blocks of 1 and 2 tile rows (the last one partial on odd tile counts) and the whole
            // batch in one plane, its wider channel side whole or in groups of 8 (uneven ones
            // where 8 does not divide it), both variants
            for schedule in [WinogradSchedule.blocks(rows: 1), .blocks(rows: 2), .wholeBatch(groupChannels: .max),
                             .wholeBatch(groupChannels: 8)] {
                for (name, variant) in [("F(2x2)", WinogradVariant.f2), ("F(4x4)", .f4)] {
                    var yb = [Float](repeating: 0, count: y.count), dwb = [Float](repeating: 0, count: dw.count)
                    winogradConv3x3(variant, x: x, weight: wt, bias: bias, y: &yb, batch: n, inChannels: cin, outChannels: cout,
                                    height: h, width: w, schedule: schedule)
                    winogradConv3x3WeightGradient(variant, x: x, dy: dy, dweight: &dwb, batch: n, inChannels: cin, outChannels: cout,
                                                  height: h, width: w, schedule: schedule)
                    // the input gradient: the adjoint's kernels read flipped from the weight in place
                    var dxb = [Float](repeating: 0, count: dx.count)
                    dy.withUnsafeBufferPointer { d in
                        wt.withUnsafeBufferPointer { k in
                            winogradConv3x3(variant, inputs: ChannelParts([(d.baseAddress!, cout)]), kernels: .adjoint(of: k.baseAddress!),
                                            bias: nil, y: &dxb, batch: n, outChannels: cin, height: h, width: w, schedule: schedule)
                        }
                    }
                    XCTAssertLessThan(worst(yb, y), 1e-5, "y \(name) \(schedule) " + label)
                    XCTAssertLessThan(worst(dwb, dw), 1e-5, "dw \(name) \(schedule) " + label)
                    XCTAssertLessThan(worst(dxb, dx), 1e-5, "dx \(name) \(schedule) " + label)
                }
            }
            XCTAssertLessThan(worst(gotDx, dx), 1e-5, "dx " + label)
            XCTAssertLessThan(worst(gotDw, dw), 1e-5, "dw " + label)
        }
    }

    /// F(4x4) from 64 px up, and from 16 px up where both channel sides are at least 256 (the
    /// ResNet layers and heads); F(2x2) on 8 px maps and narrow layers.
    func testWideLayersTakeFourByFourTilesFromSixteenPixels() {
        for (side, channels, four) in [(64, 16, true), (32, 64, false), (16, 255, false), (16, 256, true), (32, 2048, true),
                                       (8, 1024, false), (15, 512, false)] {
            XCTAssertEqual(WinogradVariant.forMap(height: side, width: side + 3, channels: channels).side == 4, four,
                           "\(side) px, \(channels) channels")
        }
    }

    /// A wide layer on a small map (FCN's 2048 -> 512 head at 16 px, batch 4) runs on the whole
    /// batch with its input channels in groups whose transformed weights and tiles stay within
    /// `winogradGroupBytes` (a single pass held 64 MB of U, and 134 MB of weight-gradient
    /// partials on blocks); groups cover the channels in consecutive, near-even ranges.
    func testWideLayersRunInChannelGroupsWithinTheBudget() {
        XCTAssertEqual(channelGroups(20, size: 8), [0..<7, 7..<14, 14..<20])
        XCTAssertEqual(channelGroups(16, size: 8), [0..<8, 8..<16])
        XCTAssertEqual(channelGroups(5, size: .max), [0..<5])
        for (cin, cout) in [(2048, 512), (512, 2048), (4096, 512)] {
            guard case .wholeBatch(let group) = WinogradVariant.f2.schedule(batch: 4, inChannels: cin, outChannels: cout, height: 16, width: 16)
            else { return XCTFail("\(cin) -> \(cout) at 16 px should run on the whole batch") }
            let plane = 4 * 64, points = 16, narrow = min(cin, cout), wide = max(cin, cout)
            let most = channelGroups(wide, size: group).map(\.count).max()!
            XCTAssertGreaterThan(channelGroups(wide, size: group).count, 1, "\(cin) -> \(cout)")
            XCTAssertLessThanOrEqual(4 * points * most * (narrow + plane), winogradGroupBytes, "\(cin) -> \(cout)")
        }
    }

    /// Dilated 3x3 convolutions with padding = dilation (DeepLab's, FCN's) run on the Winograd
    /// path split into phase images, small ones interleaved across images: output, input and
    /// weight gradients against the direct convolution, and a size the split does not divide
    /// (the im2col path) alike.
    func testDilatedConvolutionOnPhaseImagesMatchesDirectConvolution() {
        let threads = Parallel.threads
        Parallel.configure(threads: 3)
        defer { Parallel.configure(threads: threads) }
        var rng = SeededGenerator(seed: 11)
        // interleaved: phase images under 16 px wide run with 8 phase images on the lanes
        // (`DilatedWinogradLanes.swift`): 8 px phases, 8 images (full lanes); 8x9 phases of 9
        // images (a lane tail, an odd width); 4 px phases of 16 images; batch 4 at dilation 4
        // (64 images, FCN's layer4 in small); 16 px phases take the tile-row transforms
        for (n, cin, cout, h, w, d, phased, interleaved) in [
            (2, 16, 16, 16, 16, 2, true, true), (1, 20, 17, 32, 36, 4, true, true), (1, 16, 24, 24, 27, 3, true, true),
            (1, 16, 16, 16, 16, 4, true, true), (4, 24, 40, 16, 16, 4, true, true), (1, 16, 16, 32, 32, 2, true, false),
            (1, 16, 16, 12, 12, 4, false, false), (2, 16, 16, 9, 8, 2, false, false)] {
            let g = ConvGeometry(channels: cin, height: h, width: w, kernelH: 3, kernelW: 3, stride: 1, padding: d, dilation: d)
            XCTAssertEqual(g.winogradPhases(outChannels: cout) != nil, phased, "\(h)x\(w) dilation \(d)")
            let lanes = g.winogradPhases(outChannels: cout).map { g.interleavesPhases(outChannels: cout, phases: $0, batch: n) } ?? false
            XCTAssertEqual(lanes, interleaved, "\(h)x\(w) dilation \(d): phases interleaved")
            checkDilatedConvolution(&rng, n, cin, cout, g)
        }
    }
}

/// y (also with the ReLU epilogue), dx, dweight (accumulated onto 0.25) and dbias of
/// `conv2dForward` / `conv2dBackward` against the direct convolution, on random values.
private func checkDilatedConvolution(_ rng: inout SeededGenerator, _ n: Int, _ cin: Int, _ cout: Int, _ g: ConvGeometry,
                                     file: StaticString = #filePath, line: UInt = #line) {
    let (h, w, d) = (g.height, g.width, g.dilation)
    let x = (0..<(n * cin * h * w)).map { _ in rng.uniform(-1, 1) }
    let wt = (0..<(cout * cin * 9)).map { _ in rng.uniform(-1, 1) }
    let bias = (0..<cout).map { _ in rng.uniform(-1, 1) }
    let dy = (0..<(n * cout * h * w)).map { _ in rng.uniform(-1, 1) }
    let (y, dx, dw) = directConv3x3(n, cin, cout, h, w, dilation: d, x: x, weight: wt, bias: bias, dy: dy)
    var gotY = [Float](repeating: 0, count: y.count), gotDx = [Float](repeating: 0, count: dx.count)
    var gotDw = [Float](repeating: 0.25, count: dw.count), gotDb = [Float](repeating: 0, count: cout)
    conv2dForward(x: x, weight: wt, bias: bias, y: &gotY, batch: n, outChannels: cout, geometry: g)
    conv2dBackward(x: x, weight: wt, dy: dy, dx: &gotDx, dweight: &gotDw, dbias: &gotDb, batch: n, outChannels: cout, geometry: g)
    let label = "\(n)x\(cin)->\(cout) \(h)x\(w) dilation \(d)"
    XCTAssertLessThan(worst(gotY, y), 1e-5, "y " + label, file: file, line: line)
    XCTAssertLessThan(worst(gotDx, dx), 1e-5, "dx " + label, file: file, line: line)
    XCTAssertLessThan(worst(gotDw.map { $0 - 0.25 }, dw), 1e-5, "dw " + label, file: file, line: line)
    let db = (0..<cout).map { co in (0..<n).reduce(0.0) { s, b in s + (0..<(h * w)).reduce(0.0) { $0 + Double(dy[(b * cout + co) * h * w + $1]) } } }
    XCTAssertLessThan(worst(gotDb, db), 1e-5, "db " + label, file: file, line: line)
    var relu = [Float](repeating: 0, count: y.count)
    conv2dForward(x: x, weight: wt, bias: bias, y: &relu, batch: n, outChannels: cout, geometry: g, relu: true)
    XCTAssertLessThan(worst(relu, y.map { max($0, 0) }), 1e-5, "relu " + label, file: file, line: line)
}

extension WinogradTests {
    /// A dilated 3x3 convolution whose taps read mostly padding (DeepLabV3's ASPP, dilation 12
    /// on 16 px) runs one GEMM per tap over the pixels it reads: output, input and weight
    /// gradients against the direct convolution, on uneven channel shares (3 workers).
    func testDilatedConvolutionOnMostlyPaddingRunsTapwise() {
        let threads = Parallel.threads
        Parallel.configure(threads: 3)
        defer { Parallel.configure(threads: threads) }
        func geometry(_ c: Int, _ h: Int, _ w: Int, _ d: Int) -> ConvGeometry {
            ConvGeometry(channels: c, height: h, width: w, kernelH: 3, kernelW: 3, stride: 1, padding: d, dilation: d)
        }
        XCTAssertTrue(geometry(2048, 16, 16, 12).isTapwise)
        XCTAssertFalse(geometry(2048, 16, 16, 2).isTapwise, "dilation 2 reads the image on most taps")
        XCTAssertFalse(geometry(2048, 16, 16, 24).isTapwise, "dilation 24 is the 1x1 shortcut")
        var rng = SeededGenerator(seed: 12)
        for (n, cin, cout, h, w, d) in [(2, 16, 17, 16, 16, 12), (1, 5, 7, 13, 10, 8), (3, 4, 3, 7, 9, 5)] {
            let g = geometry(cin, h, w, d)
            XCTAssertTrue(g.isTapwise, "\(h)x\(w) dilation \(d)")
            checkDilatedConvolution(&rng, n, cin, cout, g)
        }
    }
}

/// Largest |a - b| over the largest |b|.
private func worst(_ a: [Float], _ b: [Double]) -> Double {
    let scale = max(b.map { abs($0) }.max()!, 1e-9)
    return zip(a, b).map { abs(Double($0) - $1) }.max()! / scale
}

/// y, dx and dw of a 3x3 convolution with padding = dilation, stride 1, in Double, tap by tap:
/// y[n,co,i,j] = b + sum x[n,ci,i+d(a-1),j+d(c-1)] w[co,ci,a,c].
private func directConv3x3(_ n: Int, _ cin: Int, _ cout: Int, _ h: Int, _ w: Int, dilation d: Int, x: [Float], weight wt: [Float],
                           bias: [Float], dy: [Float]) -> (y: [Double], dx: [Double], dw: [Double]) {
    var y = [Double](repeating: 0, count: n * cout * h * w), dx = [Double](repeating: 0, count: x.count)
    var dw = [Double](repeating: 0, count: wt.count)
    for b in 0..<n { for co in 0..<cout { for i in 0..<h { for j in 0..<w {
        let o = ((b * cout + co) * h + i) * w + j
        var s = Double(bias[co])
        for ci in 0..<cin { for a in 0..<3 { for c in 0..<3 {
            let yy = i + d * (a - 1), xx = j + d * (c - 1)
            guard yy >= 0, yy < h, xx >= 0, xx < w else { continue }
            let xi = ((b * cin + ci) * h + yy) * w + xx, wi = ((co * cin + ci) * 3 + a) * 3 + c
            s += Double(x[xi]) * Double(wt[wi])
            dx[xi] += Double(dy[o]) * Double(wt[wi])
            dw[wi] += Double(dy[o]) * Double(x[xi])
        } } }
        y[o] = s
    } } } }
    return (y, dx, dw)
}

extension WinogradTests {
    /// The interleaved phase layout (C, H/d, W/d, N d²): pixel (i, j) of phase image
    /// (n d + r) d + s holds x[n, c, d i + r, d j + s], and merging gives x back exactly.
    func testInterleavedPhasesHoldEachPixelWhereItsPhaseImageReadsIt() {
        let (n, c, h, w, d) = (2, 3, 6, 9, 3)
        let x = (0..<(n * c * h * w)).map { Float($0) }
        var xp = [Float](repeating: -1, count: x.count), back = [Float](repeating: -1, count: x.count)
        splitPhasesInterleaved(x, &xp, batch: n, channels: c, height: h, width: w, phases: d)
        mergePhasesInterleaved(xp, &back, batch: n, channels: c, height: h, width: w, phases: d)
        XCTAssertEqual(back, x)
        let (ph, pw, images) = (h / d, w / d, n * d * d)
        for b in 0..<n { for ch in 0..<c { for i in 0..<ph { for j in 0..<pw { for r in 0..<d { for s in 0..<d {
            let image = (b * d + r) * d + s
            XCTAssertEqual(xp[((ch * ph + i) * pw + j) * images + image], x[((b * c + ch) * h + d * i + r) * w + d * j + s])
        } } } } } }
    }
}
