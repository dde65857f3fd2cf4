import Foundation
import SegCore
import SegNN

// Rank 0's files in the run directory: its config, checkpoints and their pruning.
extension TrainingRun {
    /// The step checkpoint (every rank first takes rank 0's batch-norm statistics); its path on
    /// rank 0, nil on the others.
    func writeStepCheckpoint() throws -> String? {
        parallel.broadcastBuffers()
        guard isRoot else { return nil }
        let path = try writeCheckpoint(named: String(format: "step-%06d.safetensors", step))
        try pruneCheckpoints()
        return path
    }

    @discardableResult
    func writeCheckpoint(named name: String) throws -> String {
        let path = runDirectory + "/" + name
        try Checkpoint.write(to: path, model: model, optimizer: trainer.optimizer, config: config, step: step, epoch: epoch,
                             dataCursor: step * config.batchSize, bestDice: bestDice, runID: runID)
        return path
    }

    /// Keeps the newest `keep_checkpoints` step checkpoints (best.safetensors is separate).
    func pruneCheckpoints() throws {
        // by step number, not by name (step-1000000 sorts before step-999999)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: runDirectory)) ?? []
        let steps = names.compactMap { name -> (Int, String)? in
            guard name.hasPrefix("step-"), name.hasSuffix(".safetensors"),
                  let n = Int(name.dropFirst(5).dropLast(12)) else { return nil }
            return (n, name)
        }.sorted { $0.0 < $1.0 }
        for (_, old) in steps.dropLast(config.keepCheckpoints) { try? FileManager.default.removeItem(atPath: runDirectory + "/" + old) }
    }

    /// Creates the run directory, stores the effective config, and on resume keeps only the
    /// metrics up to the checkpoint's step.
    func prepareRunDirectory() throws {
        do {
            try FileManager.default.createDirectory(atPath: runDirectory, withIntermediateDirectories: true)
            RunDirectory(path: runDirectory).removeLeftoverTemporaries()
            let lineage = parent.map { "# parent: run \($0.runID ?? "?") at step \($0.step), \($0.file?.path ?? "")\n" } ?? ""
            try writeFileAtomically(Data(("# run: \(runID)\n" + lineage + config.rendered()).utf8), to: runDirectory + "/config.cfg")
            // a branch starts with its parent's best model (when it is not from after the branch point)
            if let parent, let dir = parent.directory, let best = try? Checkpoint(path: dir + "/best.safetensors"),
               best.runID == parent.runID, best.step <= parent.step, !FileManager.default.fileExists(atPath: runDirectory + "/best.safetensors") {
                try best.copy(to: runDirectory + "/best.safetensors", runID: runID)
            }
        } catch {
            throw TrainingError("cannot write the run directory \(runDirectory): \(describeFileProblem(at: runDirectory, error))")
        }
        // resuming: this run's metrics up to the checkpoint (a branch's from its parent's directory)
        try recorder.restore(upTo: step, from: parent?.directory.map { $0 + "/metrics.jsonl" } ?? metricsPath)
    }

}
