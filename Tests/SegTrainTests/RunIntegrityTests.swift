import XCTest
import Foundation
import SegCore
import SegTrain
import SegTestSupport

/// No run is ever mixed with another, silently rewritten or left behind: one writer per run
/// directory, resume writes where it reads, older checkpoints branch instead of replacing newer
/// ones, damaged checkpoints are named, and the launcher's ranks end with it.
final class RunIntegrityTests: XCTestCase {
    var dir: String!
    let binary = repositoryRoot.appendingPathComponent(".build/debug/segdist").path

    override func setUpWithError() throws {
        guard FileManager.default.isExecutableFile(atPath: binary) else { throw XCTSkip("segdist is not built at \(binary)") }
        dir = NSTemporaryDirectory() + "segdist-integrity-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { if let dir { try? FileManager.default.removeItem(atPath: dir) } }

    func recipe(_ run: String, steps: Int) -> [String] {
        ["--set", "model=unet_shallow", "--set", "width=2", "--set", "image_size=16", "--set", "batch_size=2", "--set", "epochs=1",
         "--set", "steps_per_epoch=\(steps)", "--set", "val_images=2", "--set", "eval_every=2", "--set", "checkpoint_every=2",
         "--set", "keep_checkpoints=10", "--set", "log_every=1", "--set", "checkpoint_dir=\(dir!)/\(run)", "--threads", "1"]
    }

    func segdist(_ args: [String]) throws -> (code: Int32, stdout: String, stderr: String) {
        try runSegdist(args, in: dir, environment: rootMPI)
    }

    var rootMPI: [String: String] {
        ProcessInfo.processInfo.environment.merging(["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"]) { $1 }
    }

    func start(_ args: [String]) throws -> (Process, Pipe) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = args
        p.environment = rootMPI
        p.currentDirectoryURL = URL(fileURLWithPath: dir)
        let err = Pipe()
        p.standardOutput = FileHandle.nullDevice; p.standardError = err
        try p.run()
        return (p, err)
    }

    /// Every file of a directory (the lock aside) with its bytes.
    func snapshot(_ path: String) throws -> [String: Data] {
        var out: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: path) where name != ".lock" {
            out[name] = try Data(contentsOf: URL(fileURLWithPath: path + "/" + name))
        }
        return out
    }

    func waitFor(_ path: String, seconds: Double = 60) {
        let t0 = Date()
        while !FileManager.default.fileExists(atPath: path) && Date().timeIntervalSince(t0) < seconds { usleep(50_000) }
    }

    /// Processes whose command line mentions `text`.
    func processes(mentioning text: String) -> [pid_t] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return names.compactMap { name in
            guard let pid = pid_t(name), pid != getpid(), let data = FileManager.default.contents(atPath: "/proc/\(name)/cmdline") else { return nil }
            return String(decoding: data, as: UTF8.self).contains(text) ? pid : nil
        }
    }

    func testASecondWriterIsRefusedWhileARunTrains() throws {
        let (a, aErr) = try start(recipe("shared", steps: 100_000))
        defer { if a.isRunning { kill(a.processIdentifier, SIGKILL) } }
        waitFor(dir + "/shared/config.cfg")
        let second = try segdist(recipe("shared", steps: 4))
        XCTAssertEqual(second.code, 2)
        XCTAssertTrue(second.stderr.contains("\(dir!)/shared is in use by segdist pid \(a.processIdentifier)"), second.stderr)
        waitFor(dir + "/shared/step-000002.safetensors")
        let resume = try segdist(["--resume", dir + "/shared"])
        XCTAssertEqual(resume.code, 2)
        XCTAssertTrue(resume.stderr.contains("is in use by segdist pid \(a.processIdentifier)"), resume.stderr)
        kill(a.processIdentifier, SIGTERM)
        _ = aErr.fileHandleForReading.readDataToEndOfFile()
        a.waitUntilExit()
        XCTAssertEqual(a.terminationStatus, 0)
        // one run's files only: its metrics in step order, every checkpoint of its run
        let text = try String(contentsOfFile: dir + "/shared/metrics.jsonl", encoding: .utf8)
        let steps = text.split(separator: "\n").compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["step"] as? Int }
        XCTAssertEqual(steps, steps.sorted())
        let owner = RunDirectory(path: dir + "/shared").runID
        for (_, name) in RunDirectory(path: dir + "/shared").checkpoints(of: nil) {
            XCTAssertEqual(try Checkpoint(path: "\(dir!)/shared/\(name)").runID, owner, name)
        }
        // the lock went with the process: the run can be resumed now
        XCTAssertNil(RunDirectory(path: dir + "/shared").lockHolder)
    }

    func testResumingACopiedDirectoryWritesIntoTheCopyAndLeavesTheOriginalAlone() throws {
        XCTAssertEqual(try segdist(recipe("base", steps: 4)).code, 0)
        let original = try snapshot(dir + "/base")
        try FileManager.default.copyItem(atPath: dir + "/base", toPath: dir + "/copy")
        let resumed = try segdist(["--resume", dir + "/copy", "--set", "epochs=2", "--set", "seed=7"])
        XCTAssertEqual(resumed.code, 0, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("segdist: warning: seed 7 differs from the checkpoint's 0"), resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("resuming at step 4 from \(dir!)/copy/step-000004.safetensors in \(dir!)/copy"), resumed.stderr)
        XCTAssertEqual(try snapshot(dir + "/base"), original, "the original is byte for byte as it was")
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/copy/step-000008.safetensors"))
    }

    func testAnOlderCheckpointBranchesInsteadOfReplacingNewerOnes() throws {
        XCTAssertEqual(try segdist(recipe("long", steps: 8)).code, 0)
        let original = try snapshot(dir + "/long")
        let older = dir + "/long/step-000004.safetensors"
        let refused = try segdist(["--resume", older, "--set", "lr=0.05"])
        XCTAssertEqual(refused.code, 2)
        XCTAssertTrue(refused.stderr.contains("holds newer checkpoints of this run (step-000008.safetensors at step 8); resuming step 4 here would replace them. Branch instead: --resume \(older) --set checkpoint_dir=NEW_DIR"), refused.stderr)
        XCTAssertEqual(try snapshot(dir + "/long"), original, "the newer files are byte for byte as they were")
        // the branch: a run of its own that names its parent, with the parent's history
        let branch = try segdist(["--resume", older, "--set", "lr=0.05", "--set", "checkpoint_dir=\(dir!)/branch"])
        XCTAssertEqual(branch.code, 0, branch.stderr)
        XCTAssertEqual(try snapshot(dir + "/long"), original)
        let parentID = try XCTUnwrap(RunDirectory(path: dir + "/long").runID), branchID = try XCTUnwrap(RunDirectory(path: dir + "/branch").runID)
        XCTAssertNotEqual(branchID, parentID)
        let config = try String(contentsOfFile: dir + "/branch/config.cfg", encoding: .utf8)
        XCTAssertTrue(config.contains("# parent: run \(parentID) at step 4, \(older)\n"), config)
        for (_, name) in RunDirectory(path: dir + "/branch").checkpoints(of: nil) {
            XCTAssertEqual(try Checkpoint(path: "\(dir!)/branch/\(name)").runID, branchID, "\(name) is the branch's")
        }
        let metrics = try String(contentsOfFile: dir + "/branch/metrics.jsonl", encoding: .utf8)
        XCTAssertTrue(metrics.hasPrefix(String(decoding: original["metrics.jsonl"]!, as: UTF8.self).split(separator: "\n").prefix(4).joined(separator: "\n")),
                      "the branch keeps its parent's history up to step 4")
    }

    func testADamagedCheckpointIsNamedAndResumeSaysWhatItSkipped() throws {
        XCTAssertEqual(try segdist(recipe("hurt", steps: 6)).code, 0)
        let newest = dir + "/hurt/step-000006.safetensors"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: newest))
        bytes[bytes.count - 5] ^= 0x10   // inside the last tensor's bytes
        try bytes.write(to: URL(fileURLWithPath: newest))
        let eval = try segdist(["eval", "--checkpoint", newest])
        XCTAssertEqual(eval.code, 2)
        XCTAssertTrue(eval.stderr.contains("\(newest): tensor '") && eval.stderr.contains("is damaged"), eval.stderr)
        let resumed = try segdist(["--resume", dir + "/hurt", "--set", "epochs=2"])
        XCTAssertEqual(resumed.code, 0, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("segdist: warning: skipped step-000006.safetensors (") && resumed.stderr.contains("is damaged"), resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("resuming at step 4 from"), resumed.stderr)
    }

    func testARunKilledBeforeItsFirstCheckpointCanStartAgainInPlace() throws {
        let (p, err) = try start(recipe("early", steps: 100_000) + ["--set", "checkpoint_every=1000000", "--set", "eval_every=1000000"])
        waitFor(dir + "/early/metrics.jsonl")
        kill(p.processIdentifier, SIGKILL)
        _ = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: dir + "/early").contains { $0.hasSuffix(".safetensors") })
        let again = try segdist(recipe("early", steps: 2))
        XCTAssertEqual(again.code, 0, again.stderr)
        XCTAssertTrue(again.stderr.contains("segdist: note: \(dir!)/early holds a run that stopped before its first checkpoint (config.cfg, metrics.jsonl"), again.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/early/step-000002.safetensors"))
    }

    func testTheLaunchersRanksEndWithIt() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/mpirun") else { throw XCTSkip("mpirun is not installed") }
        let (p, err) = try start(["--ranks", "2"] + recipe("orphans", steps: 100_000))
        waitFor(dir + "/orphans/step-000002.safetensors")
        XCTAssertGreaterThanOrEqual(processes(mentioning: dir + "/orphans").count, 3, "the launcher, mpirun and two ranks")
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        let t0 = Date()
        while !processes(mentioning: dir + "/orphans").isEmpty && Date().timeIntervalSince(t0) < 10 { usleep(100_000) }
        let left = processes(mentioning: dir + "/orphans")
        for pid in left { kill(pid, SIGKILL) }
        XCTAssertEqual(left, [], "no segdist or mpirun is left running after the launcher died")
        _ = err
    }

    func testAStoppedRankIsNamedWithItsCollective() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/mpirun") else { throw XCTSkip("mpirun is not installed") }
        let (p, err) = try start(["--ranks", "2"] + recipe("stuck", steps: 100_000) + ["--set", "collective_timeout=3"])
        waitFor(dir + "/stuck/step-000002.safetensors")
        // the ranks: children of mpirun running segdist (not the launcher, not mpirun)
        let ranks = processes(mentioning: dir + "/stuck").filter { pid in
            pid != p.processIdentifier && (FileManager.default.contents(atPath: "/proc/\(pid)/cmdline").map { !String(decoding: $0, as: UTF8.self).hasPrefix("mpirun") && !String(decoding: $0, as: UTF8.self).contains("/mpirun") } ?? false)
        }
        XCTAssertEqual(ranks.count, 2, "\(ranks)")
        guard let victim = ranks.first else { return }
        kill(victim, SIGSTOP)
        let said = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        for pid in processes(mentioning: dir + "/stuck") { kill(pid, SIGCONT); kill(pid, SIGKILL) }
        XCTAssertNotEqual(p.terminationStatus, 0)
        XCTAssertTrue(said.contains("segdist: error: rank ") && said.contains(" waited 3 s in ") && said.contains("a rank has probably died or hung"), said)
    }

    func testFileProblemsReadAsOneLine() throws {
        // Foundation's errors in a command-line tool's words
        XCTAssertEqual(systemMessage(NSError(domain: NSCocoaErrorDomain, code: NSFileReadNoPermissionError)), "permission denied")
        XCTAssertEqual(systemMessage(NSError(domain: NSCocoaErrorDomain, code: NSFileReadNoSuchFileError,
                                             userInfo: [NSUnderlyingErrorKey: NSError(domain: NSPOSIXErrorDomain, code: Int(EACCES))])), "permission denied")
        XCTAssertEqual(systemMessage(FileWriteError(path: "/x", problem: "full")), "/x: full")
        // a file written where a directory is
        XCTAssertEqual(try segdist(recipe("exp", steps: 2)).code, 0)
        try FileManager.default.createDirectory(atPath: dir + "/model.onnx", withIntermediateDirectories: true)
        let export = try segdist(["export", "--checkpoint", dir + "/exp/step-000002.safetensors", "--output", dir + "/model.onnx"])
        XCTAssertEqual(export.code, 2)
        XCTAssertEqual(export.stderr, "segdist: error: \(dir!)/model.onnx: is a directory; give a file name\n")
    }

    func testRanksIsCheckedLikeEveryOtherValue() throws {
        let bad = try segdist(["--ranks", "-1"])
        XCTAssertEqual(bad.code, 2)
        XCTAssertTrue(bad.stderr.contains("--ranks must be at least 1, got -1"), bad.stderr)
    }
}
