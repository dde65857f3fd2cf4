import XCTest
import Foundation
@testable import SegCore

/// The background writer: jobs run in order on its thread, a producer ahead of the limit
/// waits, the first failure stops the writing and reaches the producer, and `finish` returns
/// only when everything queued is done.
final class BackgroundWriterTests: XCTestCase {
    private struct Full: Error, Equatable { let job: Int }

    func testJobsRunInOrderAndFinishWaitsForThem() throws {
        let writer = BackgroundWriter(limitBytes: 10)
        let log = Log()
        for i in 0..<20 {
            try writer.submit(bytes: 4) {
                Thread.sleep(forTimeInterval: 0.001)
                log.add(i)
            }
            // never more than 10 bytes' worth waiting: 2 queued and 1 running at most
            XCTAssertLessThanOrEqual(i - log.count, 3)
        }
        try writer.finish()
        XCTAssertEqual(log.values, Array(0..<20))
    }

    func testTheFirstFailureStopsTheWritingAndReachesTheProducer() throws {
        let writer = BackgroundWriter()
        let log = Log()
        let started = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
        try writer.submit(bytes: 1) { log.add(0) }
        try writer.submit(bytes: 1) { started.signal(); release.wait(); throw Full(job: 1) }
        started.wait()
        try writer.submit(bytes: 1) { log.add(2) }   // queued behind the failing job: dropped
        release.signal()
        XCTAssertThrowsError(try writer.finish()) { XCTAssertEqual($0 as? Full, Full(job: 1)) }
        XCTAssertEqual(log.values, [0], "nothing after the failure ran")
        let again = BackgroundWriter()
        try again.submit(bytes: 1) { throw Full(job: 7) }
        var thrown: Error?
        for _ in 0..<1000 where thrown == nil {
            do { try again.submit(bytes: 1) { log.add(8) }; Thread.sleep(forTimeInterval: 0.001) } catch { thrown = error }
        }
        XCTAssertEqual(thrown as? Full, Full(job: 7), "a later submit throws the failure")
        XCTAssertThrowsError(try again.finish())
        XCTAssertEqual(log.values, [0])
    }

    func testFinishWithNothingQueued() throws {
        try BackgroundWriter().finish()
    }
}

/// Values appended under a lock.
private final class Log: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [Int] = []
    func add(_ v: Int) { lock.lock(); items.append(v); lock.unlock() }
    var values: [Int] { lock.lock(); defer { lock.unlock() }; return items }
    var count: Int { values.count }
}
