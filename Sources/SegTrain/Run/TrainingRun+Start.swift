import Foundation
import SegCore
import SegData
import SegDist
import SegNN

// How a run starts: where it computes, what it starts from, which directory it writes and
// whether every rank agrees — everything that can fail on one rank alone happens before the
// first collective, and then every rank learns whether any failed.
extension TrainingRun {
    /// The model moved to this rank's device; a failure is reported through `startTogether`,
    /// so every rank stops together.
    static func place(_ model: SegmentationModel, _ config: TrainingConfig, localRank: Int, ranksOnThisNode: Int)
        -> (note: String?, error: Error?) {
        do {
            let placement = try DevicePlacement.choose(config.device, localRank: localRank, ranksOnThisNode: ranksOnThisNode,
                                                       shareGPU: config.shareGPU)
            model.store.move(to: placement.backend)
            return (placement.note, nil)
        } catch { return (nil, error) }
    }

    /// Training-mode batch norm over one value per image (DeepLabV3's and PSPNet's pooling)
    /// needs two images in every pass on every rank.
    func checkEveryPassHoldsTwoImagesWhereNeeded() throws {
        guard config.model.needsTwoImagesPerPass && !(config.syncBN && communicator.size > 1) else { return }
        let smallest = min(parallel.slice(rank: communicator.size - 1).count, parallel.slice(rank: 0).count,
                           config.microBatch > 0 ? config.microBatch : Int.max)
        if smallest < 2 {
            throw TrainingError("\(config.model.rawValue) normalises one value per image in its image-pooling branch, so every forward pass needs at least 2 images; this run gives a rank \(smallest) (batch_size \(config.batchSize) over \(communicator.size) rank(s), micro_batch \(config.microBatch)); raise batch_size or micro_batch, or set sync_bn: true")
        }
    }

    /// Resuming into the checkpoint's own directory continues its run; into another one it
    /// starts a branch: a new run id, with the parent recorded. Rank 0's id is every rank's.
    func chooseRunID(resuming resume: Checkpoint?) {
        let here = URL(fileURLWithPath: config.checkpointDir).standardizedFileURL.path
        if let resume, resume.directory != here { parent = resume }
        runID = communicator.broadcast(string: parent == nil ? resume?.runID ?? UUID().uuidString.lowercased() : UUID().uuidString.lowercased())
    }

    /// The weights (resumed or `init_from`), the memory a step needs and, on rank 0, the
    /// directory — then every rank agrees, starts from the same state and takes rank 0's weights.
    func startTogether(resume: Checkpoint?, placementError: Error?, ranksOnThisNode: Int) throws {
        var local: Error? = placementError
        do {
            if let placementError { throw placementError }
            try restoreOrInitialise(resume)
            // the memory first: a run refused for it leaves no directory behind
            try checkMemory(ranksOnThisNode: ranksOnThisNode)
            if isRoot { try claimDirectory(resume: resume) }
        } catch { local = error }
        try communicator.agree(local)
        try Self.checkSameStart(step: step, optimizerStep: trainer.optimizer.stepCount,
                                checksum: resume != nil ? model.store.parameterChecksum : 0, device: model.store.backend.device,
                                communicator: communicator)
        checksumBeforeBroadcast = model.store.parameterChecksum
        // Every rank starts from rank 0's weights (and, resuming, rank 0's optimizer state is the
        // one every rank loaded from the same file).
        parallel.broadcastModel()
    }

    /// A resumed checkpoint's weights, optimizer state and step, or `init_from`'s weights.
    func restoreOrInitialise(_ resume: Checkpoint?) throws {
        if let resume {
            try resume.restore(model: model, optimizer: trainer.optimizer)
            step = resume.step
            bestDice = resume.bestDice
            guard resume.dataCursor == step * config.batchSize else {
                throw ConfigError(source: "--resume", line: nil, key: "batch_size",
                                  problem: "the checkpoint was taken at sample \(resume.dataCursor), which is not step \(step) x batch_size \(config.batchSize)")
            }
        } else if !config.initFrom.isEmpty {
            do {
                let file = try SafeTensorsFile(path: config.initFrom)
                try file.verifyChecksums()
                initialisation = try model.store.loadStateDict(file, prefix: config.initPrefix, strict: config.initStrict)
            } catch let e as ModelError {
                throw ConfigError(source: config.initFrom, line: nil, key: "init_from", problem: e.description)
            }
        }
    }

    /// Rank 0 takes the directory's lock and checks that this run may write there.
    func claimDirectory(resume: Checkpoint?) throws {
        try holdTheDirectory()
        let decision = RunDirectory(path: runDirectory).decision(runID: parent == nil ? runID : nil, resume: parent == nil ? resume : nil)
        if let problem = decision.refusal { throw TrainingError(problem) }
        startNote = decision.note
    }

    /// Rank 0's lock on the run directory (taken again by a later `run` of the same run).
    func holdTheDirectory() throws {
        guard isRoot, directoryLock == nil else { return }
        do { directoryLock = try RunDirectory(path: runDirectory).lock() } catch let held as RunLock.Held {
            throw TrainingError("\(runDirectory) \(held)")
        }
    }

    /// Measures a step's memory on a probe pass and refuses, before any step, a run whose step
    /// cannot fit in what this machine has free (shared by the ranks on it).
    func checkMemory(ranksOnThisNode: Int) throws {
        let sample = data.imageSize
        let mine = parallel.slice(rank: communicator.rank).count
        let perPass = config.microBatch > 0 ? min(config.microBatch, mine) : mine
        let estimate = try MemoryEstimate.training(config: config, imagesPerPass: perPass, height: sample.height, width: sample.width)
        memory = estimate
        guard let available = MemoryEstimate.availableBytes else { return }
        let share = available / max(1, ranksOnThisNode)
        if estimate.totalBytes > share {
            throw TrainingError(String(format: "a training step needs %@ per rank at %d image(s) of %dx%d per pass, but %.2f GB is available to each of the %d rank(s) on this machine; lower micro_batch (gradients accumulate over micro-batches at the same result), batch_size or image_size", estimate.summary, perPass, sample.height, sample.width, Double(share) / 1e9, ranksOnThisNode))
        }
    }

    /// Every rank must start from the same state: the same step and optimizer step and, when
    /// resuming, the same loaded parameters — a rank that was not resumed (or resumed from
    /// another checkpoint) is refused before any step.
    static func checkSameStart(step: Int, optimizerStep: Int, checksum: Double, device: Device = .host,
                               communicator: Communicator) throws {
        guard communicator.size > 1 else { return }
        let mine = "step \(step), optimizer step \(optimizerStep), parameter checksum \(checksum)"
        let root = communicator.broadcast(string: mine)
        try communicator.agree(root == mine ? nil : TrainingError("starts at \(mine) where rank 0 starts at \(root); every rank must resume the same checkpoint"))
        // `device: auto` resolves on each rank: all on GPUs or all on CPUs, never a mix
        let kind = device == .host ? "cpu" : "cuda", rootKind = communicator.broadcast(string: kind)
        try communicator.agree(rootKind == kind ? nil : TrainingError("computes on \(kind) where rank 0 computes on \(rootKind); give every rank a GPU or set device: cpu"))
    }

    /// Refuses to train unless every rank runs the same version with the same effective config:
    /// rank 0's is broadcast, each rank compares, and every rank learns whether any differed.
    public static func checkAgreement(config: TrainingConfig, communicator: Communicator) throws {
        guard communicator.size > 1 else { return }
        let mine = "segdist_version: \(segdistVersion)\n" + config.rendered()
        let root = communicator.broadcast(string: mine)
        var differences: [String] = []
        if root != mine {
            let a = mine.split(separator: "\n"), b = root.split(separator: "\n")
            for (x, y) in zip(a, b) where x != y { differences.append("'\(x)' where rank 0 has '\(y)'") }
            if a.count != b.count { differences.append("\(a.count) config lines where rank 0 has \(b.count)") }
            FileHandle.standardError.write("segdist: error: rank \(communicator.rank) runs a different config or version: \(differences.joined(separator: "; "))\n".data(using: .utf8)!)
        }
        let mismatched = communicator.sum(differences.isEmpty ? 0 : 1)
        if mismatched > 0 {
            // every rank knows: an agreed failure, ended cleanly with one message
            throw AgreementError(description: "\(Int(mismatched)) of \(communicator.size) ranks run a different config or version than rank 0 (see above); refusing to train")
        }
    }

}
