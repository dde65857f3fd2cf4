import XCTest
@testable import SegKernels

/// 2x2 / stride-2 max pooling runs eight outputs at a time on SIMD lanes: its maxima and argmax
/// indices must be the window walk's (first maximum in row-major order, a NaN wins), on planes
/// wide enough for the lanes, with odd sides, ties and NaNs, and ceil mode's partial windows —
/// with the indices and without them.
final class MaxPoolLanesTests: XCTestCase {
    func testPairwiseLanesMatchTheWindowWalk() {
        var rng = SeededGenerator(seed: 4)
        for (h, w, ceil) in [(6, 40, false), (7, 37, true), (5, 33, false), (4, 16, false)] {
            let planes = 3
            // few distinct values so that windows hold ties; some NaNs
            var x = (0..<(planes * h * w)).map { _ in Float(Int(rng.uniform(0, 4))) }
            for i in stride(from: 5, to: x.count, by: 23) { x[i] = .nan }
            let (oh, ow) = maxPool2dOutputSize(height: h, width: w, kernel: 2, stride: 2, padding: 0, ceilMode: ceil)
            var y = [Float](repeating: 0, count: planes * oh * ow), arg = [Int32](repeating: -1, count: planes * oh * ow)
            maxPool2dForward(x: x, y: &y, argmax: &arg, planes: planes, height: h, width: w, kernel: 2, stride: 2, padding: 0, ceilMode: ceil)
            // without the indices (a pass with no backward): the same maxima, NaNs where they were
            var values = [Float](repeating: 0, count: y.count)
            maxPool2dForward(x: x, y: &values, argmax: nil, planes: planes, height: h, width: w, kernel: 2, stride: 2, padding: 0, ceilMode: ceil)
            XCTAssertEqual(values.map(\.bitPattern), y.map(\.bitPattern), "\(h)x\(w) maxima without indices")
            for p in 0..<planes { for i in 0..<oh { for j in 0..<ow {
                var best = -Float.infinity, index = 2 * i * w + 2 * j
                walk: for r in (2 * i)..<min(2 * i + 2, h) { for c in (2 * j)..<min(2 * j + 2, w) {
                    let v = x[p * h * w + r * w + c]
                    if v > best || v.isNaN { best = v; index = r * w + c; if v.isNaN { break walk } }
                } }
                let o = p * oh * ow + i * ow + j
                XCTAssertEqual(arg[o], Int32(index), "\(h)x\(w) plane \(p) output (\(i), \(j))")
                XCTAssertTrue(y[o] == best || (y[o].isNaN && best.isNaN), "\(h)x\(w) plane \(p) output (\(i), \(j)): \(y[o]) vs \(best)")
            } } }
        }
    }
}
