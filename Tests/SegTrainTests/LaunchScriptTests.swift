import XCTest
import Foundation

/// The launch scripts run for real where their tools are installed: a one-node Slurm cluster
/// (Debian's slurmctld + slurmd) runs `launch/slurm.sbatch` on 2 ranks, preempts it with
/// `scontrol requeue`, and the requeued job resumes from the run's own checkpoint and trains
/// every step exactly once (`launch/slurm-local.sh check` asserts it).
final class LaunchScriptTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func testSlurmJobIsPreemptedRequeuedAndResumes() throws {
        let binary = Self.root.appendingPathComponent(".build/debug/segdist").path
        let missing = ["slurmctld", "slurmd", "sbatch", "scontrol"].filter { tool in
            !["/usr/sbin", "/usr/bin"].contains { FileManager.default.isExecutableFile(atPath: "\($0)/\(tool)") }
        }
        guard missing.isEmpty, getuid() == 0, FileManager.default.isExecutableFile(atPath: binary) else {
            throw XCTSkip("Slurm preemption check did not run: needs root, the segdist debug build and Slurm's daemons"
                  + (missing.isEmpty ? "" : " (missing: \(missing.joined(separator: ", ")); apt-get install slurmctld slurmd slurm-client)"))
        }
        let dir = NSTemporaryDirectory() + "segdist-slurm-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let p = Process()
        p.executableURL = Self.root.appendingPathComponent("launch/slurm-local.sh")
        p.arguments = ["check", dir]
        p.environment = ProcessInfo.processInfo.environment.merging(["SEGDIST": binary]) { $1 }
        let out = Pipe()
        p.standardOutput = out; p.standardError = out
        try p.run()
        let said = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, said)
        XCTAssertTrue(said.contains("slurm-local: OK:"), said)
        XCTAssertTrue(said.contains("stopped by ") && said.contains("resuming at step"), said)
        print(said.split(separator: "\n").filter { $0.hasPrefix("slurm-local:") }.joined(separator: "\n"))
    }
}
