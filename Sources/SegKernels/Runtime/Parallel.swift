import Foundation
import COpenBLAS
import CSystem

/// How a process spends its cores.
///
/// segdist parallelises over images and channels itself and calls BLAS single-threaded from
/// each worker: on small-M convolution GEMMs two 1-thread sgemms beat one 2-thread sgemm, and
/// the non-GEMM kernels (im2col, batch-norm, pooling) scale too. Set `threads` once at start.
public enum Parallel {
    nonisolated(unsafe) public private(set) static var threads: Int = 1

    /// The helper threads of `threads` workers (`WorkerPool`), made on first use of a count and
    /// kept: tests reconfigure back and forth.
    nonisolated(unsafe) private static var pools: [Int: WorkerPool] = [:]
    nonisolated(unsafe) private static var pool: WorkerPool?

    public static func configure(threads requested: Int) {
        threads = max(1, requested)
        OpenBLAS.api.setNumThreads(1)
        if threads > 1 && pools[threads] == nil { pools[threads] = WorkerPool(helpers: threads - 1) }
        pool = pools[threads]
    }

    /// Cores this process may run on: its CPU affinity mask, which mpirun's binding narrows.
    public static var availableCores: Int {
        let allowed = Int(segdist_cores_allowed())
        return allowed > 0 ? allowed : ProcessInfo.processInfo.activeProcessorCount
    }

    /// Runs `body(worker, range)` on contiguous slices of `0..<count`, one slice per worker.
    /// `worker` is in `0..<workers` so callers can keep per-worker scratch and accumulators.
    public static func chunks(_ count: Int, workers requested: Int? = nil,
                              _ body: (_ worker: Int, _ range: Range<Int>) -> Void) {
        guard count > 0 else { return }
        let workers = min(requested ?? threads, count)
        if workers <= 1 { body(0, 0..<count); return }
        if let pool, workers <= pool.helpers + 1,
           pool.run({ w in if w < workers { body(w, (w * count / workers)..<((w + 1) * count / workers)) } }) { return }
        // a region inside a region, or a second thread's, or more workers than the pool has
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            body(w, (w * count / workers)..<((w + 1) * count / workers))
        }
    }

    /// Runs `body(i)` for every `i` in `0..<count`, spread over the workers.
    public static func forEach(_ count: Int, _ body: (Int) -> Void) {
        chunks(count) { _, range in for i in range { body(i) } }
    }

    /// Number of workers `chunks(count)` will use.
    public static func workers(for count: Int) -> Int { max(1, min(threads, count)) }
}
