import Foundation

/// A run directory belongs to one run. Its identity is the `# run: ID` first line of its
/// `config.cfg`, and every checkpoint carries the same id in its metadata, so a new run never
/// overwrites, prunes or resumes another run's files.
public struct RunDirectory {
    public let path: String
    public init(path: String) { self.path = path }

    var configPath: String { path + "/config.cfg" }

    /// The id of the run that owns this directory (nil when there is none yet).
    public var runID: String? {
        guard let text = try? String(contentsOfFile: configPath, encoding: .utf8),
              let first = text.split(separator: "\n").first, first.hasPrefix("# run: ") else { return nil }
        return String(first.dropFirst("# run: ".count))
    }

    /// What a run already left here: its config, metrics, checkpoints or pictures.
    public var earlierRunFiles: [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        return names.filter {
            $0 == "config.cfg" || $0 == "metrics.jsonl" || $0 == "loss.png" || ($0.hasSuffix(".safetensors") && !$0.hasPrefix("."))
        }.sorted()
    }

    /// Why a run with id `runID` (resuming when `resuming`) may not use this directory, or nil.
    public func refusal(runID: String?, resuming: Bool) -> String? {
        let existing = earlierRunFiles
        guard !existing.isEmpty else { return nil }
        let owner = self.runID
        if resuming {
            // a resumed run continues in its own directory, or in one without a run of its own
            guard let owner, let runID, owner != runID else { return nil }
            return "\(path) belongs to another run (run \(owner)) than the checkpoint (run \(runID)); resume into its own directory or set checkpoint_dir to a new one"
        }
        return "\(path) already holds a run (\(existing.prefix(4).joined(separator: ", "))\(existing.count > 4 ? ", ..." : "")); continue it with --resume \(path), or set checkpoint_dir to a new directory"
    }

    /// Removes temporary files a killed write left behind (`.NAME.tmp-PID`).
    public func removeLeftoverTemporaries() {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        for name in names where name.hasPrefix(".") && name.contains(".tmp-") {
            try? FileManager.default.removeItem(atPath: path + "/" + name)
        }
    }
}
