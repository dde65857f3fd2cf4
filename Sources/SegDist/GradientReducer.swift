import Foundation

/// Averages (sums) the gradient buffer over the group in buckets of `bucketElements`, each
/// started as soon as backward has finished every gradient in it: backward produces gradients
/// from the end of the buffer towards the start, so buckets are launched last-first while
/// earlier layers are still computing. `finish` waits for all of them.
public final class GradientReducer {
    public let communicator: Communicator
    public let buckets: [Range<Int>]
    private let gradients: UnsafeMutablePointer<Float>
    private var next = -1
    private var pending: [PendingCollective] = []
    /// Seconds `finish` spent waiting for communication since the last `resetTimers`.
    public private(set) var exposedSeconds = 0.0

    public init(communicator: Communicator, gradients: UnsafeMutablePointer<Float>, count: Int, bucketElements: Int) {
        self.communicator = communicator
        self.gradients = gradients
        let size = max(1, bucketElements)
        buckets = stride(from: 0, to: count, by: size).map { $0..<min(count, $0 + size) }
    }

    /// Arms the reducer for one backward pass.
    public func begin() {
        next = buckets.count - 1
        pending.removeAll(keepingCapacity: true)
    }

    /// Every gradient from `offset` to the end is final: start the buckets that are complete.
    public func ready(from offset: Int) {
        guard communicator.size > 1, next >= 0 else { return }
        while next >= 0 && buckets[next].lowerBound >= offset {
            let b = buckets[next]
            pending.append(communicator.startSum(gradients + b.lowerBound, count: b.count,
                                                 label: "gradient all-reduce (bucket \(next + 1) of \(buckets.count))"))
            next -= 1
        }
        // Give MPI a chance to progress the earlier buckets while computation goes on.
        for p in pending { _ = p.test() }
    }

    /// Starts whatever is left and waits for every bucket.
    public func finish() {
        guard communicator.size > 1 else { return }
        ready(from: 0)
        let t0 = Date()
        for p in pending { p.wait() }
        exposedSeconds += Date().timeIntervalSince(t0)
        next = -1
    }

    public func resetTimers() { exposedSeconds = 0 }
}
