import Foundation
import SegCore

/// Sums the gradient buffer over the group in buckets of `bucketElements` consecutive
/// elements, each started as soon as every parameter overlapping it has its final gradient.
/// The tape reports that (`parameterReady`) during backward, in an order fixed by the model's
/// graph — the same on every rank, so every rank starts the same collectives in the same
/// order — whatever order the model registered or used its parameters in. `finish` starts
/// what is left (parameters the pass did not use) and waits for every bucket.
///
/// MPI reads the buckets from host memory. A device backend either hands MPI device addresses
/// (CUDA-aware MPI) or stages each bucket through `Backend.download` / `upload` around
/// `startSum`; the buckets and the readiness signal stay as they are.
public final class GradientReducer {
    public let communicator: Communicator
    public let buckets: [Range<Int>]
    private let gradients: Tensor
    /// Where `gradients` live; for device memory each bucket is staged through `staging`.
    private let backend: Backend
    private let staging: Tensor?
    /// Whether MPI sums the device buffer itself (CUDA-aware MPI).
    private let deviceDirect: Bool
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
        // device gradients go to MPI directly when it reads device memory, else through host staging
        deviceDirect = gradients.device != .host && communicator.acceptsDeviceMemory && backend is HostStaging
        staging = gradients.device == .host || communicator.size == 1 || deviceDirect ? nil
            : (backend as? HostStaging)?.allocateStaging(gradients.count) ?? Tensor(zeros: [gradients.count])
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
        if deviceDirect, let device = backend as? HostStaging {
            // the bucket's gradients must be written before MPI reads them
            device.synchronize()
            base = UnsafeMutablePointer(bitPattern: UInt(bitPattern: gradients.buffer.address) + UInt(gradients.offset * 4))!
        } else if let staging {
            // a device bucket: copied down here, summed on the host, copied back up in `finish`
            let range = buckets[b]
            let slice = Tensor(shape: [range.count], buffer: gradients.buffer, offset: gradients.offset + range.lowerBound)
            if let direct = backend as? HostStaging {
                direct.copy(slice, toHost: staging.hostPointer + range.lowerBound)   // page-locked, in place
            } else {
                let host = backend.download(slice)
                host.ptr { (staging.hostPointer + range.lowerBound).update(from: $0, count: range.count) }
            }
            base = staging.hostPointer
        } else {
            base = gradients.hostPointer
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
        if let staging {
            if let direct = backend as? HostStaging { direct.copy(fromHost: staging.hostPointer, into: gradients) }
            else { backend.copy(backend.upload(staging), into: gradients) }
        }
        exposedSeconds += Date().timeIntervalSince(t0)
    }

    public func resetTimers() { exposedSeconds = 0 }
}
