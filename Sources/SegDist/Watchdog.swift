import Foundation

/// Watches collectives: if one has not finished after `timeout` seconds, it reports which rank
/// was waiting in which collective and calls `onTimeout` (which aborts the MPI job). A rank that
/// died or hung would otherwise leave every other rank waiting forever.
public final class Watchdog {
    public let rank: Int
    public let timeout: Double
    public var onTimeout: ((String) -> Void)?
    private let lock = NSLock()
    private var current: (label: String, since: Date)?
    private var thread: Thread?
    private var stopped = false

    public init(rank: Int, timeout: Double) {
        self.rank = rank; self.timeout = timeout
        guard timeout > 0 else { return }
        let t = Thread { [weak self] in self?.loop() }
        t.name = "segdist-watchdog"
        thread = t
        t.start()
    }

    public func stop() { lock.lock(); stopped = true; lock.unlock() }

    public func guarding<R>(_ label: String, _ body: () throws -> R) rethrows -> R {
        lock.lock(); current = (label, Date()); lock.unlock()
        defer { lock.lock(); current = nil; lock.unlock() }
        return try body()
    }

    private func loop() {
        while true {
            Thread.sleep(forTimeInterval: min(1, timeout / 4))
            lock.lock()
            let snapshot = current, done = stopped
            lock.unlock()
            if done { return }
            if let (label, since) = snapshot, Date().timeIntervalSince(since) > timeout {
                onTimeout?("segdist: error: rank \(rank) waited \(Int(timeout)) s in \(label) without every rank joining; a rank has probably died or hung. Ending the job.")
                return
            }
        }
    }
}
