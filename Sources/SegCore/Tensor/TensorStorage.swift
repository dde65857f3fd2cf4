/// Where a tensor's memory lives.
public enum Device: Equatable, Hashable, Sendable, CustomStringConvertible {
    case host
    /// GPU `ordinal` of a device backend (see `Backend`).
    case cuda(Int)

    public var description: String {
        switch self {
        case .host: return "cpu"
        case let .cuda(i): return "cuda:\(i)"
        }
    }
}

import Foundation

/// Bytes of host tensor memory alive now and at most since the last `resetPeak` — what a
/// memory estimate measures a probe step with.
public enum HostMemoryMeter {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var live = 0
    nonisolated(unsafe) private static var peak = 0

    static func allocated(_ bytes: Int) {
        lock.lock(); live += bytes; peak = max(peak, live); lock.unlock()
    }
    static func released(_ bytes: Int) { lock.lock(); live -= bytes; lock.unlock() }

    public static var liveBytes: Int { lock.lock(); defer { lock.unlock() }; return live }
    /// The most bytes alive since the last reset.
    public static var peakBytes: Int { lock.lock(); defer { lock.unlock() }; return peak }
    public static func resetPeak() { lock.lock(); peak = live; lock.unlock() }
}

/// One allocation of memory on one device: the handle every tensor's values sit behind.
///
/// Host storage is memory from plain malloc (glibc aligns it to 16 bytes) this object owns: malloc reuses
/// the freed activations of the last step; aligned allocation measurably fragmented the heap. A device backend makes storage
/// with its own address and release function (`cuMemFree` for CUDA); host code never
/// dereferences such an address — it goes through the backend (`Backend.download`).
public final class TensorStorage {
    public let device: Device
    public let byteCount: Int
    /// The first byte: a host pointer when `device == .host`, else the device's address.
    public let address: UnsafeMutableRawPointer
    private let release: (UnsafeMutableRawPointer) -> Void

    /// Uninitialised host memory of `byteCount` bytes.
    public init(hostBytes byteCount: Int) {
        precondition(byteCount >= 0, "Storage size must be non-negative, got \(byteCount)")
        device = .host
        self.byteCount = byteCount
        address = .allocate(byteCount: max(byteCount, 16), alignment: 16)
        HostMemoryMeter.allocated(byteCount)
        release = { $0.deallocate(); HostMemoryMeter.released(byteCount) }
    }

    /// Memory a backend allocated; `release` is called once, when the last tensor lets go.
    public init(device: Device, byteCount: Int, address: UnsafeMutableRawPointer,
                release: @escaping (UnsafeMutableRawPointer) -> Void) {
        self.device = device; self.byteCount = byteCount; self.address = address; self.release = release
    }

    deinit { release(address) }

    /// The host memory as floats; only for host storage.
    @inline(__always) public var hostFloats: UnsafeMutablePointer<Float> {
        precondition(device == .host, "Tensor memory on \(device) must be downloaded before the host reads it")
        return address.assumingMemoryBound(to: Float.self)
    }

    /// The host memory as 32-bit integers; only for host storage.
    @inline(__always) public var hostInt32s: UnsafeMutablePointer<Int32> {
        precondition(device == .host, "Tensor memory on \(device) must be downloaded before the host reads it")
        return address.assumingMemoryBound(to: Int32.self)
    }
}
