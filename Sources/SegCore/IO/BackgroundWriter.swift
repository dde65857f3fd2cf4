import Foundation

/// Runs file-writing jobs on one background thread, in the order given, so that the next
/// image's computation overlaps this one's disk time — fsync's wait above all, which on a
/// network disk is milliseconds a file. Each job writes its files as it likes (atomically,
/// `writeFileAtomically`). At most `limitBytes` of jobs (running or waiting) are held at once,
/// or a single larger one (a producer that gets ahead waits); the first failure stops the
/// writing (later jobs are dropped, never half done) and is thrown by the next `submit` or by
/// `finish`, so a full disk ends the command with the file it could not write, every file
/// before it in place.
public final class BackgroundWriter: @unchecked Sendable {
    private struct Job {
        let bytes: Int
        let run: () throws -> Void
    }

    private let condition = NSCondition()
    private let limitBytes: Int
    private var jobs: [Job] = []
    private var queuedBytes = 0
    private var busy = false
    private var failure: Error?
    private var closed = false
    private var thread: Thread?

    public init(limitBytes: Int = 64 << 20) {
        self.limitBytes = limitBytes
    }

    /// Queues `run` (about `bytes` in memory until it is done); throws an earlier job's failure.
    public func submit(bytes: Int, _ run: @escaping () throws -> Void) throws {
        condition.lock()
        defer { condition.unlock() }
        precondition(!closed, "BackgroundWriter: submit after finish")
        if thread == nil {
            let t = Thread { self.drain() }   // the thread holds the writer until it is done
            t.name = "segdist-writer"
            thread = t
            t.start()
        }
        // queuedBytes counts the running job too: one over the limit (a large image's outputs)
        // waits until the writer is idle, so at most one such image is held besides the one computed
        while failure == nil && queuedBytes > 0 && queuedBytes + bytes > limitBytes { condition.wait() }
        if let failure { throw failure }
        jobs.append(Job(bytes: bytes, run: run))
        queuedBytes += bytes
        condition.broadcast()
    }

    /// Waits until every queued job is done (or one failed); throws the first failure.
    public func finish() throws {
        condition.lock()
        defer { condition.unlock() }
        closed = true
        condition.broadcast()
        while failure == nil && (busy || !jobs.isEmpty) { condition.wait() }
        if let failure { throw failure }
    }

    private func drain() {
        condition.lock()
        while true {
            while jobs.isEmpty && !closed { condition.wait() }
            if jobs.isEmpty || failure != nil { break }
            let job = jobs.removeFirst()
            busy = true
            condition.unlock()
            var error: Error?
            do { try job.run() } catch let e { error = e }
            condition.lock()
            busy = false
            queuedBytes -= job.bytes
            if let error {
                failure = error
                jobs.removeAll()
                queuedBytes = 0
            }
            condition.broadcast()
        }
        condition.unlock()
    }
}
