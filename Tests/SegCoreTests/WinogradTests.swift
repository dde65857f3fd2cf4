import XCTest
import SegCore
@testable import SegKernels

/// The Winograd paths, F(2x2, 3x3) and F(4x4, 3x3) (3x3, stride 1, padding 1, >= 16 input
/// channels; the 4x4 tiles from 8x8 images up) against a
/// direct convolution written out in the test: output, input gradient and weight gradient, on
/// even and odd image sizes (partial edge tiles) and channel counts that are not multiples of
/// anything, whole images and blocks of tile rows.
final class WinogradTests: XCTestCase {
    func testWinogradMatchesDirectConvolution() {
        var rng = SeededGenerator(seed: 9)
        for (n, cin, cout, h, w) in [(2, 16, 3, 8, 8), (1, 17, 20, 7, 9), (3, 32, 16, 5, 4), (2, 16, 16, 13, 6), (1, 16, 17, 9, 11),
                                     (2, 20, 16, 12, 8), (1, 16, 16, 16, 35), (1, 24, 18, 33, 17), (1, 16, 16, 64, 66)] {
            let g = ConvGeometry(channels: cin, height: h, width: w, kernelH: 3, kernelW: 3, stride: 1, padding: 1)
            XCTAssertTrue(g.isWinograd3x3)
            let x = (0..<(n * cin * h * w)).map { _ in rng.uniform(-1, 1) }
            let wt = (0..<(cout * cin * 9)).map { _ in rng.uniform(-1, 1) }
            let bias = (0..<cout).map { _ in rng.uniform(-1, 1) }
            let dy = (0..<(n * cout * h * w)).map { _ in rng.uniform(-1, 1) }
            // direct: y[n,co,i,j] = b + sum x[n,ci,i+a-1,j+b-1] w[co,ci,a,b]
            var y = [Double](repeating: 0, count: n * cout * h * w), dx = [Double](repeating: 0, count: x.count)
            var dw = [Double](repeating: 0, count: wt.count)
            for b in 0..<n { for co in 0..<cout { for i in 0..<h { for j in 0..<w {
                let o = ((b * cout + co) * h + i) * w + j
                var s = Double(bias[co])
                for ci in 0..<cin { for a in 0..<3 { for c in 0..<3 {
                    let yy = i + a - 1, xx = j + c - 1
                    guard yy >= 0, yy < h, xx >= 0, xx < w else { continue }
                    let xi = ((b * cin + ci) * h + yy) * w + xx, wi = ((co * cin + ci) * 3 + a) * 3 + c
                    s += Double(x[xi]) * Double(wt[wi])
                    dx[xi] += Double(dy[o]) * Double(wt[wi])
                    dw[wi] += Double(dy[o]) * Double(x[xi])
                } } }
                y[o] = s
            } } } }
            var gotY = [Float](repeating: 0, count: y.count), gotDx = [Float](repeating: 0, count: dx.count)
            var gotDw = [Float](repeating: 0, count: dw.count), gotDb = [Float](repeating: 0, count: cout)
            conv2dForward(x: x, weight: wt, bias: bias, y: &gotY, batch: n, outChannels: cout, geometry: g)
            conv2dBackward(x: x, weight: wt, dy: dy, dx: &gotDx, dweight: &gotDw, dbias: &gotDb, batch: n, outChannels: cout, geometry: g)
            // the 4x4-tile kernel directly, whatever side the dispatch would pick it from
            var y4 = [Float](repeating: 0, count: y.count)
            winogradConv3x3(.f4, x: x, weight: wt, bias: bias, y: &y4, batch: n, inChannels: cin, outChannels: cout, height: h, width: w)
            func worst(_ a: [Float], _ b: [Double]) -> Double {
                let scale = max(b.map { abs($0) }.max()!, 1e-9)
                return zip(a, b).map { abs(Double($0) - $1) }.max()! / scale
            }
            let label = "\(n)x\(cin)->\(cout) \(h)x\(w)"
            // F(4x4, 3x3)'s transforms (fractions down to 1/24, factors up to 8) cost a few ulps
            XCTAssertLessThan(worst(gotY, y), 1e-5, "y " + label)
            XCTAssertLessThan(worst(y4, y), 1e-5, "y F(4x4) " + label)
            var dw4 = [Float](repeating: 0, count: dw.count)
            winogradConv3x3WeightGradient(.f4, x: x, dy: dy, dweight: &dw4, batch: n, inChannels: cin, outChannels: cout, height: h, width: w)
            XCTAssertLessThan(worst(dw4, dw), 1e-5, "dw F(4x4) " + label)
            // blocks of 1 and 2 tile rows (the last one partial on odd tile counts), both variants
            for rows in [1, 2] {
                for (name, variant) in [("F(2x2)", WinogradVariant.f2), ("F(4x4)", .f4)] {
                    var yb = [Float](repeating: 0, count: y.count), dwb = [Float](repeating: 0, count: dw.count)
                    winogradConv3x3(variant, x: x, weight: wt, bias: bias, y: &yb, batch: n, inChannels: cin, outChannels: cout,
                                    height: h, width: w, blockRows: rows)
                    winogradConv3x3WeightGradient(variant, x: x, dy: dy, dweight: &dwb, batch: n, inChannels: cin, outChannels: cout,
                                                  height: h, width: w, blockRows: rows)
                    XCTAssertLessThan(worst(yb, y), 1e-5, "y \(name) blocks of \(rows) " + label)
                    XCTAssertLessThan(worst(dwb, dw), 1e-5, "dw \(name) blocks of \(rows) " + label)
                }
            }
            XCTAssertLessThan(worst(gotDx, dx), 1e-5, "dx " + label)
            XCTAssertLessThan(worst(gotDw, dw), 1e-5, "dw " + label)
        }
    }
}
