import ArgumentParser
import Foundation
import SegCore
import SegNN
import SegTrain

/// `--config FILE` and `--set key=value`, shared by the commands that read a recipe.
struct ConfigOptions: ParsableArguments {
    @Option(help: "Recipe file (YAML-lite `key: value` lines). Default: the built-in recipe, equal to configs/unet.cfg.")
    var config: String?

    @Option(name: .customLong("set"), help: ArgumentHelp("Override one key, e.g. --set lr=0.01 (repeatable); `segdist config` lists them.", valueName: "key=value"))
    var overrides: [String] = []

    @Option(help: "Worker threads per process (the same as --set threads=N; default: the cores available).")
    var threads: Int?

    @Option(help: "Where each rank computes: auto (a GPU when one is usable), cpu or cuda (the same as --set device=...).")
    var device: String?

    @Flag(help: "Let ranks share a GPU when a node has more ranks than GPUs (the same as --set share_gpu=true).")
    var shareGpu = false

    /// The file's config (or `fallback`, or the built-in default) with the overrides applied.
    /// Without `checkingData` (predict) the model keys are not held against the training data.
    func resolve(fallback: (text: String, source: String)? = nil, checkingData: Bool = true) throws -> TrainingConfig {
        // the data keys are checked once the overrides are in (they may point elsewhere)
        var cfg = TrainingConfig()
        if let config {
            cfg = try TrainingConfig.load(path: config, checkingData: false)
        } else if let fallback {
            try cfg.apply(text: fallback.text, source: fallback.source, checkingData: false)
        }
        let flags = (threads.map { ["threads=\($0)"] } ?? []) + (device.map { ["device=\($0)"] } ?? []) + (shareGpu ? ["share_gpu=true"] : [])
        for o in overrides + flags { try cfg.override(o) }
        try cfg.validate(source: overrides.isEmpty ? (config ?? fallback?.source ?? "built-in config") : "--set",
                         checkingData: checkingData)
        return cfg
    }
}

/// `--checkpoint` or `--weights`: where `eval`, `predict` and `export` take the model from.
struct ModelSource: ParsableArguments {
    @Option(help: "A segdist checkpoint (its config unless --config/--set say otherwise).") var checkpoint: String?
    @Option(help: "A plain state_dict (safetensors, e.g. converted torchvision weights) for the model named by --config/--set, instead of a checkpoint.")
    var weights: String?
}

/// The model `eval` and `predict` run: a training checkpoint (its config unless --config/--set
/// say otherwise), or a plain state_dict (`--weights`) for the model the recipe names. Returns
/// the config, the loaded model, the checkpoint's step (nil for weights) and the file read.
func loadModel(_ source: ModelSource, recipe: ConfigOptions, checkingData: Bool = true) throws
    -> (TrainingConfig, SegmentationModel, Int?, String) {
    switch (source.checkpoint, source.weights) {
    case let (path?, nil):
        let ckpt = try Checkpoint(path: path)
        let config = try recipe.resolve(fallback: (ckpt.configText, path), checkingData: checkingData)
        configureThreads(config.threads)
        let model = config.makeModel()
        try ckpt.restore(model: model, optimizer: nil)
        return (config, model, ckpt.step, path)
    case let (nil, path?):
        let config = try recipe.resolve(checkingData: checkingData)
        configureThreads(config.threads)
        let model = config.makeModel()
        let report: StateDictReport
        do {
            report = try model.store.loadStateDict(try SafeTensorsFile(path: path))
        } catch let e as ModelError {
            throw ValidationError(e.description)
        }
        guard report.missing.isEmpty else {
            throw ValidationError("\(path) lacks \(report.missing.count) of the \(config.model.rawValue) model's tensors (is the recipe's model, width, classes, backbone_depth and aux_loss the one these weights were made for?): \(report.summary)")
        }
        if !report.unexpected.isEmpty {
            FileHandle.standardError.write("segdist: note: \(path): ignored \(report.unexpected.count) tensor(s) the model has no place for: \(report.unexpected.prefix(8).joined(separator: ", "))\n".data(using: .utf8)!)
        }
        return (config, model, nil, path)
    default:
        throw ValidationError("give exactly one of --checkpoint (a segdist checkpoint) and --weights (a plain state_dict)")
    }
}

/// Runs `body`, turning any user-facing error into one line on stderr and exit code 2.
func reportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let e as ExitCode {
        throw e
    } catch let e as CleanExit {
        throw e
    } catch {
        // Under mpirun every rank meets the same bad input; one message is enough.
        let rank = ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_RANK"] ?? ProcessInfo.processInfo.environment["PMIX_RANK"] ?? "0"
        if rank == "0" { FileHandle.standardError.write("segdist: error: \(error)\n".data(using: .utf8)!) }
        throw ExitCode(2)
    }
}

func configureThreads(_ requested: Int) {
    MemoryPolicy.keepFreedMemoryForReuse()
    Parallel.configure(threads: requested > 0 ? requested : Parallel.availableCores)
}

func printJSON(_ object: [String: Any], to path: String? = nil) throws {
    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    print(String(decoding: data, as: UTF8.self))
    if let path { try writeFileAtomically(data + Data("\n".utf8), to: path) }
}
