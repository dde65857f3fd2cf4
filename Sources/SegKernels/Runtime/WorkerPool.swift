import Foundation
import CSystem
import Synchronization

/// The threads behind `Parallel.chunks`: `helpers` threads that stay up for the whole process
/// and, between parallel regions, spin for a while on a generation counter before they sleep.
///
/// A training step has thousands of parallel regions (every convolution, batch norm and
/// Winograd transform splits its work), many of them tens of microseconds long. With
/// `DispatchQueue.concurrentPerform` each one woke a parked thread through the kernel; in a VM
/// that wake-up is an interprocessor interrupt and a VM exit, and the caller's core waited for
/// it. Here the next region's work is seen by a spinning helper within a few hundred cycles.
/// Regions are split exactly as before (one contiguous slice per worker, the caller running
/// slice 0), so every result is bit-identical to the dispatch version.
final class WorkerPool: @unchecked Sendable {
    let helpers: Int
    /// Bumped once per region; a helper runs the job when it sees a value it has not run.
    private let generation = Atomic<Int>(0)
    /// Helpers still running the current region's job.
    private let pending = Atomic<Int>(0)
    /// Helpers asleep (or about to be) on `condition`.
    private let sleepers = Atomic<Int>(0)
    /// Held by the one caller a region at a time; another caller (a nested region, a second
    /// thread) finds it taken and runs its region without the pool.
    private let busy = Atomic<Bool>(false)
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    /// The current region's job, set before `generation` moves and read by the helpers after.
    nonisolated(unsafe) private var job: ((Int) -> Void)?

    /// PAUSEs a helper spins through before it sleeps: ~50-150 us on current x86 cores, longer
    /// than the gaps between the regions of one step, short against a data-loading wait.
    private static let spinLimit = 1 << 11

    init(helpers: Int) {
        self.helpers = helpers
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
        for index in stride(from: 1, through: helpers, by: 1) {   // worker 0 is the caller
            let thread = Thread { [self] in loop(index) }
            thread.name = "segdist-worker-\(index)"
            thread.start()
        }
    }

    /// Runs `job(i)` for every i in `0...helpers`, job(0) on the calling thread, and returns
    /// when all have finished; false, with nothing run, when the pool is already in a region.
    func run(_ job: (Int) -> Void) -> Bool {
        guard busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else { return false }
        defer { busy.store(false, ordering: .releasing) }
        withoutActuallyEscaping(job) { job in
            self.job = job
            pending.store(helpers, ordering: .relaxed)
            generation.wrappingAdd(1, ordering: .sequentiallyConsistent)
            if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
                pthread_mutex_lock(mutex); pthread_cond_broadcast(condition); pthread_mutex_unlock(mutex)
            }
            job(0)
            var spins = 0
            while pending.load(ordering: .acquiring) > 0 {
                spins += 1
                if spins < Self.spinLimit { segdist_pause() } else { sched_yield() }   // a helper's core was taken
            }
            self.job = nil
        }
        return true
    }

    private func loop(_ index: Int) {
        var seen = 0
        while true {
            var spins = 0
            while generation.load(ordering: .acquiring) == seen {
                spins += 1
                if spins < Self.spinLimit { segdist_pause(); continue }
                // a helper that counts itself asleep under the lock and then finds the
                // generation unchanged cannot miss the broadcast of the region that moves it
                pthread_mutex_lock(mutex)
                sleepers.wrappingAdd(1, ordering: .sequentiallyConsistent)
                while generation.load(ordering: .sequentiallyConsistent) == seen { pthread_cond_wait(condition, mutex) }
                sleepers.wrappingSubtract(1, ordering: .sequentiallyConsistent)
                pthread_mutex_unlock(mutex)
            }
            seen = generation.load(ordering: .acquiring)
            job!(index)
            pending.wrappingSubtract(1, ordering: .releasing)
        }
    }
}
