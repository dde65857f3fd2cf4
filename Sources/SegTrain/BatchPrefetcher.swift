import Foundation
import SegCore
import SegData

/// Makes the next step's batch (this rank's slice of the global batch) on a background thread
/// while the current step computes; `take` waits only if it is not ready yet, and counts that
/// wait. The samples are the same ones the step would make itself: prefetching changes when
/// they are made, never which.
final class BatchPrefetcher {
    private final class Slot: @unchecked Sendable { var batch: (Tensor, Tensor)? }
    private let data: SegmentationDataset
    private let queue = DispatchQueue(label: "segdist.prefetch")
    private var pending: (cursors: [Int], group: DispatchGroup, slot: Slot)?
    /// Seconds steps spent waiting for their data.
    private(set) var waitSeconds = 0.0

    init(data: SegmentationDataset) { self.data = data }

    /// Starts making the samples at `cursors`.
    func prefetch(_ cursors: [Int]) {
        let group = DispatchGroup(), slot = Slot(), data = self.data
        queue.async(group: group) { slot.batch = data.trainingBatch(cursors) }
        pending = (cursors, group, slot)
    }

    /// The samples at `cursors`: prefetched, or made now.
    func take(_ cursors: [Int]) -> (Tensor, Tensor) {
        let t0 = Date()
        defer { waitSeconds += Date().timeIntervalSince(t0) }
        if let p = pending, p.cursors == cursors {
            pending = nil
            p.group.wait()
            return p.slot.batch!
        }
        pending?.group.wait()
        pending = nil
        return data.trainingBatch(cursors)
    }
}

extension Tensor {
    /// Items `range` of the first dimension, as a view (no copy).
    func items(_ range: Range<Int>) -> Tensor {
        let per = shape.dropFirst().reduce(1, *)
        return Tensor(shape: [range.count] + shape.dropFirst(), buffer: buffer, offset: offset + range.lowerBound * per)
    }
}
