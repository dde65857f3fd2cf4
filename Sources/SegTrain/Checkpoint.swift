import Foundation
import SegCore
import SegNN

/// A training checkpoint as safetensors: model tensors under the reference state_dict names
/// (so `UNet(...).load_state_dict(load_file(path), strict=False)` in PyTorch loads them, with
/// `num_batches_tracked` as int64), optimizer state under `optimizer.` (one flat tensor per state
/// buffer, in the parameter buffer's layout), and metadata: config, step, epoch, data cursor,
/// best Dice, version.
public struct Checkpoint {
    public static let formatVersion = "1"

    public var configText: String
    public var step: Int
    public var epoch: Int
    /// Index of the next training sample.
    public var dataCursor: Int
    public var bestDice: Double?
    /// The run this checkpoint belongs to (nil in checkpoints from before run ids).
    public var runID: String?
    public var file: SafeTensorsFile?
    /// Newer checkpoints `resolve` passed over, each with why (damaged, unreadable).
    public var skipped: [String] = []
    /// The directory this checkpoint file is in.
    public var directory: String? { file.map { URL(fileURLWithPath: $0.path).deletingLastPathComponent().standardizedFileURL.path } }

    public static func write(to path: String, model: SegmentationModel, optimizer: Optimizer, config: TrainingConfig,
                             step: Int, epoch: Int, dataCursor: Int, bestDice: Double?, runID: String? = nil) throws {
        let store = model.store
        var w = SafeTensorsWriter(metadata: [
            "format": "segdist-checkpoint", "version": formatVersion, "segdist_version": segdistVersion,
            "config": config.rendered(), "step": String(step), "epoch": String(epoch),
            "data_cursor": String(dataCursor), "optimizer": optimizer.name,
            "optimizer_step": String(optimizer.stepCount),
            "best_dice": bestDice.map { String($0) } ?? "", "run_id": runID ?? "",
        ])
        for (name, tensor) in store.floatStateDict() { w.add(name, tensor) }
        for (i, name) in store.counterNames.enumerated() { w.add(name, int64s: [store.counters[i]], shape: []) }
        for (name, values) in optimizer.stateBuffers.sorted(by: { $0.key < $1.key }) {
            w.add("optimizer.\(name)", store.backend.download(values))
        }
        try w.write(to: path)
    }

    /// Reads a checkpoint; `verifying` checks every tensor's checksum (listing a directory
    /// reads only the metadata).
    public init(path: String, verifying: Bool = true) throws {
        let f = try SafeTensorsFile(path: path)
        func meta(_ key: String) throws -> String {
            guard let v = f.metadata[key] else { throw SafeTensorsError(path: path, problem: "is not a segdist checkpoint (no '\(key)' in its metadata)") }
            return v
        }
        guard try meta("format") == "segdist-checkpoint" else {
            throw SafeTensorsError(path: path, problem: "is not a segdist checkpoint")
        }
        if verifying { try f.verifyChecksums() }
        configText = try meta("config")
        guard let step = Int(try meta("step")), let epoch = Int(try meta("epoch")), let cursor = Int(try meta("data_cursor")) else {
            throw SafeTensorsError(path: path, problem: "has a malformed step, epoch or data_cursor")
        }
        self.step = step; self.epoch = epoch; dataCursor = cursor
        bestDice = Double(f.metadata["best_dice"] ?? "")
        runID = f.metadata["run_id"].flatMap { $0.isEmpty ? nil : $0 }
        file = f
    }

    /// A checkpoint file, or — given a run directory — that run's newest checkpoint by the step
    /// in its metadata (never by file name), among those of the directory's own run. Newer
    /// files that are damaged or unreadable are skipped, each named in `skipped` with why.
    public static func resolve(_ path: String) throws -> Checkpoint {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
            return try Checkpoint(path: path)
        }
        let owner = RunDirectory(path: path).runID
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        var candidates: [(step: Int, name: String)] = [], unreadable: [String] = []
        for name in names where name.hasSuffix(".safetensors") && !name.hasPrefix(".") {
            do {
                let c = try Checkpoint(path: path + "/" + name, verifying: false)
                if let owner, let id = c.runID, id != owner { continue }
                candidates.append((c.step, name))
            } catch { unreadable.append("\(name) (\(error))") }
        }
        // newest first; at one step, a step- file before best.safetensors
        candidates.sort { $0.step != $1.step ? $0.step > $1.step : $0.name.hasPrefix("step-") && !$1.name.hasPrefix("step-") }
        var skipped = unreadable
        for candidate in candidates {
            do {
                var c = try Checkpoint(path: path + "/" + candidate.name)
                c.skipped = skipped
                return c
            } catch { skipped.append("\(candidate.name) (\(error))") }
        }
        throw SafeTensorsError(path: path, problem: "holds no checkpoint of its run to resume from" + (skipped.isEmpty ? "" : "; skipped: " + skipped.joined(separator: "; ")))
    }

    /// Writes this checkpoint's tensors and metadata to `path` as a checkpoint of run `runID`
    /// (a branch carrying its parent's best model over under its own id).
    public func copy(to path: String, runID: String) throws {
        guard let f = file else { return }
        var metadata = f.metadata
        metadata["run_id"] = runID
        metadata[SafeTensorsFile.checksumKey] = nil
        var w = SafeTensorsWriter(metadata: metadata)
        for e in f.entries {
            if e.dtype == .I64 { w.add(e.name, int64s: try f.int64s(e.name), shape: e.shape) } else { w.add(e.name, try f.tensor(e.name)) }
        }
        try w.write(to: path)
    }

    /// Loads every model tensor (and, when given, the optimizer state) from the checkpoint;
    /// throws naming the first tensor that is missing or has the wrong shape.
    public func restore(model: SegmentationModel, optimizer: Optimizer?) throws {
        guard let f = file else { return }
        let store = model.store
        for (name, _) in store.floatStateDict() {
            guard f.entry(name) != nil else { throw SafeTensorsError(path: f.path, problem: "has no tensor '\(name)' for this model") }
            let values = try f.tensor(name)
            if let bad = values.storage.first(where: { !$0.isFinite }) {
                throw SafeTensorsError(path: f.path, problem: "tensor '\(name)' holds \(bad): the weights are corrupt (training diverged before this checkpoint?)")
            }
            do { try store.load(name, values) } catch let e as ModelError {
                throw SafeTensorsError(path: f.path, problem: e.description)
            }
        }
        for (i, name) in store.counterNames.enumerated() {
            store.counters[i] = try f.int64s(name).first ?? 0
        }
        guard let optimizer else { return }
        guard f.metadata["optimizer"] == optimizer.name else {
            throw SafeTensorsError(path: f.path, problem: "holds \(f.metadata["optimizer"] ?? "no") optimizer state, the config asks for \(optimizer.name)")
        }
        optimizer.stepCount = Int(f.metadata["optimizer_step"] ?? "") ?? step
        var buffers: [String: Tensor] = [:]
        for e in f.entries where e.name.hasPrefix("optimizer.") {
            let values = store.backend.upload(try f.tensor(e.name))
            guard values.count == store.parameterCount else {
                throw SafeTensorsError(path: f.path, problem: "optimizer state '\(e.name)' has \(values.count) values, the model has \(store.parameterCount) parameters")
            }
            buffers[String(e.name.dropFirst("optimizer.".count))] = values
        }
        optimizer.stateBuffers = buffers
    }
}

public let segdistVersion = "0.2.0"
