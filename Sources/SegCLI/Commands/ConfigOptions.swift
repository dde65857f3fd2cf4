import ArgumentParser
import Foundation
import SegCore
import SegNN
import SegTrain

/// `--config FILE` and `--set key=value`, shared by the commands that read a recipe.
struct ConfigOptions: ParsableArguments {
    @Option(help: "Recipe file (YAML-lite `key: value` lines), or the name of a shipped recipe (unet.cfg, deeplabv3.cfg, ...: configs/, built in) when no such file exists. Default: the built-in recipe, equal to configs/unet.cfg.")
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
    /// `presets` are applied first (the recipe and --set win over them), `determined` last (what a
    /// state_dict's tensors fix). Without `checkingData` (predict) the model keys are not held
    /// against the training data.
    func resolve(fallback: (text: String, source: String)? = nil, checkingData: Bool = true, presets: [String] = [],
                 determined: [String] = []) throws -> TrainingConfig {
        // the data keys are checked once the overrides are in (they may point elsewhere)
        var cfg = TrainingConfig()
        for p in presets { try cfg.override(p) }
        if let config {
            try cfg.apply(recipe: config, checkingData: false)
        } else if let fallback {
            try cfg.apply(text: fallback.text, source: fallback.source, checkingData: false)
        }
        let flags = (threads.map { ["threads=\($0)"] } ?? []) + (device.map { ["device=\($0)"] } ?? []) + (shareGpu ? ["share_gpu=true"] : [])
        for o in overrides + flags + determined { try cfg.override(o) }
        try cfg.validate(source: overrides.isEmpty ? (config ?? fallback?.source ?? "built-in config") : "--set",
                         checkingData: checkingData)
        return cfg
    }
}

/// `--checkpoint` or `--weights`: where `eval`, `predict` and `export` take the model from;
/// several of one kind make an ensemble (the mean of their probabilities).
struct ModelSource: ParsableArguments {
    @Option(help: "A segdist checkpoint (its recipe unless --config/--set say otherwise); repeat it for an ensemble.")
    var checkpoint: [String] = []
    @Option(help: "A plain state_dict (safetensors, e.g. torchvision's) for the model named by --config/--set: width, classes, input channels, backbone depth and aux head are read from its tensors; repeat it for an ensemble.")
    var weights: [String] = []
}

/// The models `eval`, `predict` and `export` run and the recipe they run with.
struct LoadedModels {
    var config: TrainingConfig
    var models: [SegmentationModel]
    /// The first checkpoint's step (nil for weights).
    var step: Int?
    var files: [String]
}

/// torchvision's segmentation models run as torchvision runs them: softmax over the classes,
/// inputs / 255 then ImageNet's mean and std (unless the recipe says otherwise).
let torchvisionPipeline = ["loss=ce", "input_scaling=divide_255", "in_channels=3",
                           "normalize_mean=0.485, 0.456, 0.406", "normalize_std=0.229, 0.224, 0.225"]

/// The keys of a recipe that decide how an image becomes a mask: ensemble members must agree.
let pipelineKeys = ["model", "in_channels", "classes", "loss", "input_scaling", "normalize_mean", "normalize_std", "resize",
                    "ignore_index", "class_colors", "data"]

/// Loads training checkpoints (each with its recipe unless --config/--set say otherwise) or plain
/// state_dicts (`--weights`, for the model the recipe names; what the tensors determine is read
/// from them and printed).
func loadModels(_ source: ModelSource, recipe: ConfigOptions, checkingData: Bool = true) throws -> LoadedModels {
    let files: [String]
    let load: (String) throws -> (config: TrainingConfig, model: SegmentationModel, step: Int?)
    switch (source.checkpoint.isEmpty, source.weights.isEmpty) {
    case (false, true):
        files = source.checkpoint
        load = { path in
            let ckpt = try Checkpoint(path: path)
            let config = try recipe.resolve(fallback: (ckpt.configText, path), checkingData: checkingData)
            if path == files[0] { configureThreads(config.threads) }
            // every tensor comes from the checkpoint (restore refuses one that lacks any)
            let model = RandomInitialization.skipping { config.makeModel() }
            try ckpt.restore(model: model, optimizer: nil)
            return (config, model, ckpt.step)
        }
    case (true, false):
        files = source.weights
        let named = try recipe.resolve(checkingData: checkingData)
        load = { path in
            let (config, model) = try loadWeights(path, named: named, recipe: recipe, checkingData: checkingData, announce: path == files[0])
            return (config, model, nil)
        }
    default:
        throw ValidationError("give --checkpoint (segdist checkpoints) or --weights (plain state_dicts), one or more of one kind")
    }
    // an ensemble: every member turns images into masks the same way as the first
    var loaded: LoadedModels?
    for path in files {
        let (config, model, step) = try load(path)
        guard var l = loaded else { loaded = LoadedModels(config: config, models: [model], step: step, files: [path]); continue }
        let mine = config.rendered(keys: pipelineKeys), first = l.config.rendered(keys: pipelineKeys)
        if mine != first {
            let differing = zip(mine.split(separator: "\n"), first.split(separator: "\n")).filter { $0 != $1 }.map { "'\($0.0)' where \(l.files[0]) has '\($0.1)'" }
            throw ValidationError("\(path) cannot join the ensemble: its recipe turns images into masks differently (\(differing.joined(separator: "; ")))")
        }
        l.models.append(model); l.files.append(path)
        loaded = l
    }
    return loaded!
}

/// A plain state_dict for the model `named` names: what its tensors determine is read from them
/// (and, with `announce`, printed), torchvision's models get torchvision's pipeline unless the
/// recipe says otherwise, and a shape that disagrees names the tensor and the likely model.
func loadWeights(_ path: String, named: TrainingConfig, recipe: ConfigOptions, checkingData: Bool, announce: Bool) throws
    -> (TrainingConfig, SegmentationModel) {
    let presets = named.model.isTorchvisionModel ? torchvisionPipeline : []
    let file = try SafeTensorsFile(path: path)
    try file.verifyChecksums()
    let shapes = Dictionary(file.entries.map { ($0.name, $0.shape) }, uniquingKeysWith: { a, _ in a })
    var settings = named.model.settings(fromShapes: shapes)
    if settings.backboneDepth == named.model.defaultBackboneDepth { settings.backboneDepth = nil }
    let config = try recipe.resolve(checkingData: checkingData, presets: presets, determined: settings.overrides)
    if announce {
        configureThreads(config.threads)
        var note = "segdist: \(path): \(config.model.rawValue)"
        if !settings.overrides.isEmpty { note += " with " + settings.overrides.joined(separator: ", ") + " (from its tensors)" }
        if !presets.isEmpty { note += "; run as torchvision runs it (unless the recipe says otherwise)" }
        FileHandle.standardError.write((note + "\n").data(using: .utf8)!)
    }
    // every tensor comes from the file (one that lacks any is refused below)
    let model = RandomInitialization.skipping { config.makeModel() }
    let report: StateDictReport
    do {
        report = try model.store.loadStateDict(file)
    } catch let e as ModelError {
        let guess = ModelArchitecture.guess(fromNames: Set(file.names)).flatMap { $0 == config.model ? nil : $0.rawValue }
        throw ValidationError(e.description + " (the recipe's model is \(config.model.rawValue); " + (guess.map { "these tensors look like \($0)'s: set model=\($0)" } ?? "set model= to the one these weights were made for") + ")")
    }
    guard report.missing.isEmpty else {
        throw ValidationError("\(path) lacks \(report.missing.count) of the \(config.model.rawValue) model's tensors (is model=\(config.model.rawValue) the one these weights were made for?): \(report.summary)")
    }
    if !report.unexpected.isEmpty {
        FileHandle.standardError.write("segdist: note: \(path): ignored \(report.unexpected.count) tensor(s) the model has no place for: \(report.unexpected.prefix(8).joined(separator: ", "))\n".data(using: .utf8)!)
    }
    return (config, model)
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
