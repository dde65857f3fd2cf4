import Foundation

/// A run directory belongs to one run. Its identity is the `# run: ID` first line of its
/// `config.cfg`, and every checkpoint carries the same id in its metadata, so a new run never
/// overwrites, prunes or resumes another run's files; and while a run trains, it holds the
/// directory's lock (`RunLock`), so there is never a second writer.
public struct RunDirectory {
    public let path: String
    public init(path: String) { self.path = path }

    var configPath: String { path + "/config.cfg" }
    var lockPath: String { path + "/.lock" }

    /// The id of the run that owns this directory (nil when there is none yet).
    public var runID: String? {
        guard let text = try? String(contentsOfFile: configPath, encoding: .utf8),
              let first = text.split(separator: "\n").first, first.hasPrefix("# run: ") else { return nil }
        return String(first.dropFirst("# run: ".count))
    }

    /// What a run already left here: its config, metrics, checkpoints, pictures or events.
    public var earlierRunFiles: [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        return names.filter {
            $0 == "config.cfg" || $0 == "metrics.jsonl" || $0 == "loss.png" || $0.hasPrefix("events.out.tfevents.")
                || ($0.hasSuffix(".safetensors") && !$0.hasPrefix("."))
        }.sorted()
    }

    /// The checkpoints here of run `runID` (all when nil) that load and pass their checksums:
    /// (step, file name), by step.
    public func checkpoints(of runID: String?) -> [(step: Int, name: String)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        return names.filter { $0.hasSuffix(".safetensors") && !$0.hasPrefix(".") }.compactMap { name in
            guard let c = try? Checkpoint(path: path + "/" + name), runID == nil || c.runID == nil || c.runID == runID else { return nil }
            return (c.step, name)
        }.sorted { $0.step < $1.step }
    }

    /// What starting in this directory means for a run with id `runID` — resuming `resume` (at
    /// its step) when given: a refusal (why, and what to do), or a note of what is removed.
    public func decision(runID: String?, resume: Checkpoint?) -> (refusal: String?, note: String?) {
        let existing = earlierRunFiles
        guard !existing.isEmpty else { return (nil, nil) }
        let owner = self.runID
        if let resume {
            // a resumed run continues in its own directory, or in one without a run of its own
            if let owner, let runID, owner != runID {
                return ("\(path) belongs to another run (run \(owner)) than the checkpoint (run \(runID)); resume into its own directory or set checkpoint_dir to a new one", nil)
            }
            if let newer = checkpoints(of: runID).last(where: { $0.step > resume.step }) {
                return ("\(path) holds newer checkpoints of this run (\(newer.name) at step \(newer.step)); resuming step \(resume.step) here would replace them. Branch instead: --resume \(resume.file?.path ?? "CKPT") --set checkpoint_dir=NEW_DIR (a new run that records this one as its parent), or remove the newer checkpoints yourself", nil)
            }
            return (nil, nil)
        }
        let checkpoints = existing.filter { $0.hasSuffix(".safetensors") }
        guard checkpoints.isEmpty else {
            return ("\(path) already holds a run (\(existing.prefix(4).joined(separator: ", "))\(existing.count > 4 ? ", ..." : "")); continue it with --resume \(path), or set checkpoint_dir to a new directory", nil)
        }
        // a run that stopped before its first checkpoint left nothing to resume: start again here
        return (nil, "\(path) holds a run that stopped before its first checkpoint (\(existing.joined(separator: ", "))): nothing there can be resumed, so a new run starts in its place and replaces those files")
    }

    /// Removes temporary files a killed write left behind (`.NAME.tmp-PID`).
    public func removeLeftoverTemporaries() {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        for name in names where name.hasPrefix(".") && name.contains(".tmp-") {
            try? FileManager.default.removeItem(atPath: path + "/" + name)
        }
    }

    /// Takes the directory's lock for this process (creating the directory), or throws naming
    /// the process that holds it.
    public func lock() throws -> RunLock { try RunLock(directory: path, file: lockPath) }

    /// Who holds the lock now (nil: nobody), without taking it for long.
    public var lockHolder: String? {
        guard FileManager.default.fileExists(atPath: lockPath) else { return nil }
        do { _ = try RunLock(directory: path, file: lockPath, recordingHolder: false); return nil } catch let e as RunLock.Held { return e.holder } catch { return nil }
    }
}

/// An advisory lock (`flock`) on a run directory's `.lock`, held for a whole run. The kernel
/// drops it when the process ends however it ends, so a killed run never leaves a stale lock.
public final class RunLock {
    struct Held: Error { let holder: String }
    private let fd: Int32

    init(directory: String, file: String, recordingHolder: Bool = true) throws {
        do { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch {
            throw TrainingError("cannot write the run directory \(directory): \(describeFileProblem(at: directory, error))")
        }
        fd = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw TrainingError("cannot lock the run directory \(directory): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let holder = (try? String(contentsOfFile: file, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            close(fd)
            throw Held(holder: holder.isEmpty ? "another process" : holder)
        }
        if recordingHolder {
            let host = ProcessInfo.processInfo.hostName
            let text = "segdist pid \(getpid()) on \(host), started \(ISO8601DateFormatter().string(from: Date()))\n"
            _ = ftruncate(fd, 0)
            _ = text.withCString { write(fd, $0, strlen($0)) }
        } else {
            _ = flock(fd, LOCK_UN)
        }
    }

    deinit { close(fd) }
}

extension RunLock.Held: CustomStringConvertible {
    var description: String { "is in use by \(holder); a run directory has one writer at a time" }
}
