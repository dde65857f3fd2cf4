import XCTest
import Foundation
@testable import SegKernels

/// `Parallel.chunks` on its worker pool: the same slices to the same workers as before, every
/// index once, regions inside regions and regions from several threads at once (those run
/// without the pool), and helpers that went to sleep between regions woken by the next one.
final class WorkerPoolTests: XCTestCase {
    override func setUp() { saved = Parallel.threads; Parallel.configure(threads: 3) }
    override func tearDown() { Parallel.configure(threads: saved) }
    private var saved = 1

    /// (worker, range) of every call of one region over `count`, sorted by worker.
    private func slices(_ count: Int) -> [(Int, Range<Int>)] {
        let lock = NSLock()
        var seen: [(Int, Range<Int>)] = []
        Parallel.chunks(count) { w, r in lock.lock(); seen.append((w, r)); lock.unlock() }
        return seen.sorted { $0.0 < $1.0 }
    }

    func testSlicesAreOnePerWorkerInOrder() {
        for count in [1, 2, 3, 7, 100, 1001] {
            let got = slices(count), workers = min(3, count)
            XCTAssertEqual(got.map(\.0), Array(0..<workers), "count \(count)")
            XCTAssertEqual(got.map(\.1), (0..<workers).map { ($0 * count / workers)..<(($0 + 1) * count / workers) }, "count \(count)")
        }
    }

    func testHelpersAsleepAreWokenAndEveryIndexRunsOnce() {
        var hits = [Int](repeating: 0, count: 999)
        for region in 0..<2000 {
            // now and then a pause long enough for the helpers to give up spinning and sleep
            if region % 200 == 0 { usleep(20_000) }
            hits.withUnsafeMutableBufferPointer { h in
                let base = h.baseAddress!
                Parallel.chunks(999) { _, r in for i in r { base[i] += 1 } }
            }
        }
        XCTAssertEqual(Set(hits), [2000])
    }

    func testRegionsInsideRegionsAndFromSeveralThreads() {
        // a region inside a region: the pool is busy, so the inner one runs on dispatch
        var inner = [Int](repeating: 0, count: 3 * 50)
        inner.withUnsafeMutableBufferPointer { h in
            let base = h.baseAddress!
            Parallel.chunks(3) { _, outer in
                for o in outer { Parallel.chunks(50) { _, r in for i in r { base[o * 50 + i] += 1 } } }
            }
        }
        XCTAssertEqual(Set(inner), [1])
        // four threads' regions at once (ranks as threads do this): each gets its own sums right
        let done = expectation(description: "threads")
        done.expectedFulfillmentCount = 4
        let totals = Totals()
        for _ in 0..<4 {
            Thread {
                var sum = 0
                for _ in 0..<300 {
                    let parts = UnsafeMutablePointer<Int>.allocate(capacity: 3)
                    parts.initialize(repeating: 0, count: 3)
                    Parallel.chunks(1000) { w, r in parts[w] = r.reduce(0, +) }
                    sum += parts[0] + parts[1] + parts[2]
                    parts.deallocate()
                }
                totals.add(sum)
                done.fulfill()
            }.start()
        }
        wait(for: [done], timeout: 120)
        XCTAssertEqual(totals.all, [Int](repeating: 300 * 999 * 1000 / 2, count: 4))
    }

    /// One image's per-pixel kernels (softmax, sigmoid, arg-max) split over the workers in
    /// blocks of pixels: every pixel exactly as computed alone, across block edges and the
    /// tail; ties go to the first class.
    func testOneImagesPixelsSplitOverTheWorkersAsEachAlone() {
        let (n, k, p) = (2, 3, 40_000)   // 3 blocks an image, the last partial
        var rng = SeededGenerator(seed: 7)
        var x = (0..<(n * k * p)).map { _ in Float(Int(rng.next() % 4001)) / 400 - 5 }
        x[5] = x[p + 5]; x[2 * p + 5] = x[5] - 1   // a tie between classes 0 and 1 at pixel 5
        var softmax = [Float](repeating: .nan, count: x.count), sigmoids = softmax
        var winners = [Int32](repeating: -1, count: n * p)
        x.withUnsafeBufferPointer { xb in
            let xp = xb.baseAddress!
            softmax.withUnsafeMutableBufferPointer { softmaxChannels(xp, $0.baseAddress!, batch: n, classes: k, pixels: p) }
            sigmoids.withUnsafeMutableBufferPointer { sigmoidForward(x: xp, y: $0.baseAddress!, count: x.count) }
            winners.withUnsafeMutableBufferPointer { argmaxChannels(xp, $0.baseAddress!, batch: n, classes: k, pixels: p) }
            var alone = [Float](repeating: 0, count: k * p)
            for i in 0..<n {
                for q in 0..<p {
                    let base = i * k * p + q
                    alone.withUnsafeMutableBufferPointer { softmaxProbabilities(xp + base, $0.baseAddress! + q, classes: k, pixels: p) }
                    let values = (0..<k).map { x[base + $0 * p] }
                    XCTAssertEqual(winners[i * p + q], Int32(values.firstIndex(of: values.max()!)!), "image \(i) pixel \(q)")
                }
                XCTAssertEqual(Array(softmax[(i * k * p)..<((i + 1) * k * p)]), alone, "image \(i)")
            }
        }
        XCTAssertEqual(sigmoids, x.map { sigmoid($0) })
        XCTAssertEqual(winners[5], 0)
    }
}

/// The threads' sums, appended under a lock.
private final class Totals: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Int] = []
    func add(_ v: Int) { lock.lock(); values.append(v); lock.unlock() }
    var all: [Int] { lock.lock(); defer { lock.unlock() }; return values }
}
