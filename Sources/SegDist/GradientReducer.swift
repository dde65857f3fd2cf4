import Foundation
import SegCore

/// Sums the gradient buffer over the group in buckets of `bucketElements` consecutive
/// elements, each started as soon as every parameter overlapping it has its final gradient.
/// The tape reports that (`parameterReady`) during backward, in an order fixed by the model's
/// graph — the same on every rank, so every rank starts the same collectives in the same
/// order — whatever order the model registered or used its parameters in. `finish` starts
/// what is left (parameters the pass did not use) and waits for every bucket.
///
/// How a bucket reaches MPI (`Transport`: host memory, device memory to a CUDA-aware MPI, or
/// staged through page-locked or plain host memory) is decided once, at construction.
public final class GradientReducer {
    public let communicator: Communicator
    public let buckets: [Range<Int>]
    private let gradients: Tensor
    /// Where `gradients` live.
    private let backend: Backend
    /// How a bucket reaches MPI, decided once (`broadcast` of the model uses it too).
    public let transport: Transport
    /// For each parameter, the buckets it overlaps.
    private let bucketsOfParameter: [[Int]]
    /// For each bucket, how many overlapping parameters are not final yet in this pass.
    private var waitingOn: [Int] = []
    private let parametersPerBucket: [Int]
    private var started: [Bool] = []
    private var armed = false
    private var pending: [PendingCollective] = []
    /// Seconds `finish` spent waiting for communication since the last `resetTimers`.
    public private(set) var exposedSeconds = 0.0

    /// - Parameters:
    ///   - gradients: the flat gradient buffer.
    ///   - parameterRanges: each parameter's element range in that buffer, by parameter index.
    public init(communicator: Communicator, gradients: Tensor, backend: Backend = CPUBackend.shared, parameterRanges: [Range<Int>],
                bucketElements: Int) {
        self.communicator = communicator
        self.gradients = gradients
        self.backend = backend
        transport = Transport(device: gradients.device, backend: backend, communicator: communicator, count: gradients.count)
        let size = max(1, bucketElements), count = gradients.count
        let buckets = stride(from: 0, to: count, by: size).map { $0..<min(count, $0 + size) }
        self.buckets = buckets
        bucketsOfParameter = parameterRanges.map { r in
            r.isEmpty ? [] : Array((r.lowerBound / size)...((r.upperBound - 1) / size))
        }
        var perBucket = [Int](repeating: 0, count: buckets.count)
        for list in bucketsOfParameter { for b in list { perBucket[b] += 1 } }
        parametersPerBucket = perBucket
    }

    /// Arms the reducer for one backward pass.
    public func begin() {
        waitingOn = parametersPerBucket
        started = [Bool](repeating: false, count: buckets.count)
        pending.removeAll(keepingCapacity: true)
        armed = true
    }

    /// Parameter `index`'s gradient is final: start every bucket that now has all of its.
    public func parameterReady(_ index: Int) {
        guard armed else { return }
        for b in bucketsOfParameter[index] {
            waitingOn[b] -= 1
            if waitingOn[b] == 0 { start(b) }
        }
        // Give MPI a chance to progress the earlier buckets while computation goes on.
        if communicator.size > 1 { for p in pending { _ = p.test() } }
    }

    private func start(_ b: Int) {
        guard !started[b] else { return }
        started[b] = true
        guard communicator.size > 1 else { return }
        let base: UnsafeMutablePointer<Float>
        let range = buckets[b]
        let slice = { Tensor(shape: [range.count], buffer: self.gradients.buffer, offset: self.gradients.offset + range.lowerBound) }
        // a staged device bucket is copied down here, summed on the host, copied back up in `finish`
        switch transport {
        case .host:
            base = gradients.hostPointer
        case let .deviceDirect(device):
            device.synchronize()   // the bucket's gradients must be written before MPI reads them
            base = Transport.address(gradients)
        case let .pinned(device, staging):
            device.copy(slice(), toHost: staging.hostPointer + range.lowerBound)   // page-locked, in place
            base = staging.hostPointer
        case let .copied(staging):
            backend.download(slice()).ptr { (staging.hostPointer + range.lowerBound).update(from: $0, count: range.count) }
            base = staging.hostPointer
        }
        pending.append(communicator.startSum(base + buckets[b].lowerBound, count: buckets[b].count,
                                             label: "gradient all-reduce (bucket \(b + 1) of \(buckets.count))"))
    }

    /// Starts whatever is left (highest bucket first) and waits for every bucket.
    public func finish() {
        guard armed else { return }
        for b in buckets.indices.reversed() { start(b) }
        armed = false
        guard communicator.size > 1 else { return }
        let t0 = Date()
        for p in pending { p.wait() }
        switch transport {
        case .host, .deviceDirect: break
        case let .pinned(device, staging): device.copy(fromHost: staging.hostPointer, into: gradients)
        case let .copied(staging): backend.copy(backend.upload(staging), into: gradients)
        }
        exposedSeconds += Date().timeIntervalSince(t0)
    }

    public func resetTimers() { exposedSeconds = 0 }
}
