import Foundation
import SegCore

/// Ranks as threads of one process: `ThreadCommunicator.group(size)` makes one communicator per
/// rank, each to be used from its own thread. The collectives have MPI's meaning (every rank
/// ends with the same sum, rank `root`'s bytes), so the distributed logic above them —
/// gradient buckets, synchronized batch norm, the start agreement, data-parallel steps — runs
/// in a unit test in milliseconds, without `mpirun`.
///
/// Sums are taken in rank order (deterministic). A rank that does not reach a collective
/// within `timeout` seconds ends the process naming the collective, as MPICommunicator's
/// watchdog does.
public final class ThreadCommunicator: Communicator {
    public let rank: Int
    public var size: Int { shared.size }
    private let shared: Rendezvous

    /// One communicator per rank of a group of `size`.
    public static func group(_ size: Int, timeout: TimeInterval = 60) -> [ThreadCommunicator] {
        let shared = Rendezvous(size: size, timeout: timeout)
        return (0..<size).map { ThreadCommunicator(rank: $0, shared: shared) }
    }

    private init(rank: Int, shared: Rendezvous) {
        self.rank = rank; self.shared = shared
    }

    /// Runs `body(communicator)` on `size` threads at once, one per rank, and returns each
    /// rank's result (or rethrows the lowest rank's error once every rank has ended).
    public static func run<T>(ranks size: Int, timeout: TimeInterval = 60,
                              _ body: @escaping (ThreadCommunicator) throws -> T) throws -> [T] {
        let communicators = group(size, timeout: timeout)
        let results = Results<T>(size)
        let done = DispatchGroup()
        for communicator in communicators {
            done.enter()
            let thread = Thread {
                results.set(communicator.rank, Result { try body(communicator) })
                done.leave()
            }
            thread.stackSize = 16 << 20   // a training step's recursion, as on a main thread
            thread.start()
        }
        done.wait()
        return try results.values.map { try $0!.get() }
    }

    public func sumInPlace(_ values: UnsafeMutablePointer<Double>, count: Int) { sum(values, count: count, label: "sum") }
    public func sumInPlace(_ values: UnsafeMutablePointer<Float>, count: Int) { sum(values, count: count, label: "sum") }

    public func startSum(_ values: UnsafeMutablePointer<Float>, count: Int, label: String) -> PendingCollective {
        sum(values, count: count, label: label)
        return LocalCommunicator.Done()
    }

    public func broadcast(_ bytes: UnsafeMutableRawPointer, count: Int, root: Int) {
        shared.slots[rank] = bytes
        shared.meet(rank: rank, label: "broadcast")
        if rank != root, count > 0 { bytes.copyMemory(from: shared.slots[root]!, byteCount: count) }
        shared.meet(rank: rank, label: "broadcast")   // root's bytes stay in place until every rank has them
    }

    public func barrier(label: String) { shared.meet(rank: rank, label: label) }

    public func abort(_ message: String, code: Int32) -> Never {
        FileHandle.standardError.write(Data("segdist: rank \(rank): \(message)\n".utf8))
        exit(code)
    }

    /// Every rank publishes its buffer, each then adds all of them up in rank order into a
    /// scratch copy, and writes it back only once every rank has read every buffer.
    private func sum<T: FloatingPoint>(_ values: UnsafeMutablePointer<T>, count: Int, label: String) {
        shared.slots[rank] = UnsafeMutableRawPointer(values)
        shared.meet(rank: rank, label: label)
        var total = [T](repeating: 0, count: count)
        for r in 0..<size {
            let other = shared.slots[r]!.assumingMemoryBound(to: T.self)
            for i in 0..<count { total[i] += other[i] }
        }
        shared.meet(rank: rank, label: label)
        values.update(from: total, count: count)
    }
}

/// Each rank's result, written by its thread.
private final class Results<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var slots: [Result<T, Error>?]
    init(_ size: Int) { slots = Array(repeating: nil, count: size) }
    func set(_ rank: Int, _ result: Result<T, Error>) { lock.lock(); slots[rank] = result; lock.unlock() }
    var values: [Result<T, Error>?] { lock.lock(); defer { lock.unlock() }; return slots }
}

/// The meeting point of a thread group: a reusable barrier and one published pointer per rank.
private final class Rendezvous: @unchecked Sendable {
    let size: Int
    let timeout: TimeInterval
    var slots: [UnsafeMutableRawPointer?]
    private let condition = NSCondition()
    private var arrived = 0
    private var generation = 0

    init(size: Int, timeout: TimeInterval) {
        self.size = size; self.timeout = timeout
        slots = [UnsafeMutableRawPointer?](repeating: nil, count: size)
    }

    /// Returns once every rank has called it (for this generation).
    func meet(rank: Int, label: String) {
        condition.lock()
        defer { condition.unlock() }
        let mine = generation
        arrived += 1
        if arrived == size {
            arrived = 0; generation += 1
            condition.broadcast()
            return
        }
        let deadline = Date().addingTimeInterval(timeout)
        while generation == mine {
            if !condition.wait(until: deadline) && generation == mine {
                FileHandle.standardError.write(Data("segdist: rank \(rank) waited \(Int(timeout)) s in \(label) for the other ranks (\(arrived) of \(size) arrived)\n".utf8))
                exit(3)
            }
        }
    }
}
