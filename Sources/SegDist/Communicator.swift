import SegCore

/// A group of training processes: this process's rank and the collectives training needs.
/// `LocalCommunicator` is the group of one (no MPI); `MPICommunicator` is OpenMPI.
/// Collectives never return an error: a failed collective means a rank is gone, so the
/// implementation reports it and ends the whole job.
public protocol Communicator: CollectiveSum {
    var rank: Int { get }
    var size: Int { get }
    func sumInPlace(_ values: UnsafeMutablePointer<Float>, count: Int)
    /// Starts a sum without waiting; `wait` on the result before reading the buffer.
    func startSum(_ values: UnsafeMutablePointer<Float>, count: Int, label: String) -> PendingCollective
    func broadcast(_ bytes: UnsafeMutableRawPointer, count: Int, root: Int)
    func barrier(label: String)
    /// Ends every process of the job with `message` (printed once, by this rank).
    func abort(_ message: String, code: Int32) -> Never
    /// Whether collectives may be handed GPU memory directly (a CUDA-aware MPI).
    var acceptsDeviceMemory: Bool { get }
    /// Ends this process's part in the job (MPI_Finalize); nothing for one process.
    func finalize()
}

public protocol PendingCollective {
    /// True when finished; lets MPI make progress while computation runs.
    func test() -> Bool
    func wait()
}

extension Communicator {
    public var isRoot: Bool { rank == 0 }

    public var acceptsDeviceMemory: Bool { false }
    public func finalize() {}

    public func broadcast(floats: UnsafeMutablePointer<Float>, count: Int, root: Int = 0) {
        broadcast(UnsafeMutableRawPointer(floats), count: count * MemoryLayout<Float>.stride, root: root)
    }

    /// Rank 0's string on every rank.
    public func broadcast(string: String, root: Int = 0) -> String {
        var length = Int64(string.utf8.count)
        withUnsafeMutableBytes(of: &length) { broadcast($0.baseAddress!, count: 8, root: root) }
        var bytes = rank == root ? Array(string.utf8) : [UInt8](repeating: 0, count: Int(length))
        bytes.withUnsafeMutableBytes { if $0.count > 0 { broadcast($0.baseAddress!, count: $0.count, root: root) } }
        return String(decoding: bytes, as: UTF8.self)
    }

    public func sum(_ value: Double) -> Double {
        var v = value
        sumInPlace(&v, count: 1)
        return v
    }

    /// Makes a rank's local failure every rank's: each rank passes the error it met (nil if
    /// none); if any rank failed, every rank throws the same `AgreementError` carrying the lowest
    /// failing rank's message, so one rank's bad file or refused state never leaves the others
    /// waiting in a collective, and the job can end cleanly with one message.
    public func agree(_ local: Error?) throws {
        if size == 1 { if let local { throw local }; return }
        let first = -maximum(local == nil ? -Double(size) : -Double(rank))
        guard first < Double(size) else { return }
        let message = broadcast(string: local.map { "\($0)" } ?? "", root: Int(first))
        throw AgreementError(description: "rank \(Int(first)): \(message)")
    }

    /// The largest value over the ranks.
    public func maximum(_ value: Double) -> Double {
        // max(a, b) = -min(-a, -b); with sums only: gather every rank's value.
        var all = [Double](repeating: 0, count: size)
        all[rank] = value
        all.withUnsafeMutableBufferPointer { sumInPlace($0.baseAddress!, count: size) }
        return all.max() ?? value
    }
}

/// A failure every rank knows of (see `Communicator.agree`): no rank is left waiting, so the
/// job ends without MPI_Abort and rank 0 prints it once.
public struct AgreementError: Error, CustomStringConvertible {
    public let description: String
    public init(description: String) { self.description = description }
}

/// The group of one: every collective is the identity.
public final class LocalCommunicator: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func sumInPlace(_ values: UnsafeMutablePointer<Double>, count: Int) {}
    public func sumInPlace(_ values: UnsafeMutablePointer<Float>, count: Int) {}
    public func startSum(_ values: UnsafeMutablePointer<Float>, count: Int, label: String) -> PendingCollective { Done() }
    public func broadcast(_ bytes: UnsafeMutableRawPointer, count: Int, root: Int) {}
    public func barrier(label: String) {}
    public func abort(_ message: String, code: Int32) -> Never {
        FileHandle.standardError.write((message + "\n").data(using: .utf8)!)
        exit(code)
    }
    struct Done: PendingCollective { func test() -> Bool { true }; func wait() {} }
}

import Foundation
