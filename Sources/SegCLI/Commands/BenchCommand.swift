import ArgumentParser
import Foundation
import SegCore
import SegDist
import SegNN
import SegTrain

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time full training steps (forward, backward, SGD), or with --inference evaluation-mode forward passes, on random data; prints one JSON line.")

    @Option(help: "Model: \(ModelArchitecture.allCases.map(\.rawValue).joined(separator: ", ")).")
    var model = "unet"
    @Option(help: "Channels of the first level (the lab uses 64).") var width = 16
    @Option(help: "Images per step.") var batch = 8
    @Option(help: "Image side in pixels.") var size = 128
    @Option(help: "Timed steps (after 2 warm-up steps).") var steps = 10
    @Option(help: "Worker threads per rank (default: the node's cores shared among its ranks).") var threads: Int?
    @Option(help: "Ranks; N > 1 starts mpirun -n N (the batch is the global batch, split over the ranks).") var ranks: Int?
    @Option(help: "Gradient all-reduce bucket size in MiB.") var bucketMb: Float = 1
    @Option(help: "Where to run: auto (a GPU when one is usable), cpu or cuda.") var device = "auto"
    @Flag(help: "Let ranks share a GPU when a node has more ranks than GPUs.") var shareGpu = false
    @Flag(help: "Time evaluation-mode forward passes of --batch images (as predict runs the model) instead of training steps; one process.")
    var inference = false
    @Flag(help: "Train with the auxiliary FCN head on layer3 (models that take aux_loss).") var aux = false
    @Option(help: "With --inference: predict each image in windows of this side, as predict --tile does (0: whole images).")
    var tile = 0

    func validate() throws {
        guard let arch = ModelArchitecture(rawValue: model) else {
            throw ValidationError("unknown model '\(model)'; choose one of \(ModelArchitecture.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard width >= 1, batch >= 1, steps >= 1 else { throw ValidationError("width, batch and steps must be at least 1") }
        let factor = 1 << arch.downsamplings
        guard size >= factor else {
            throw ValidationError("--size \(size) is too small: \(model) halves the image \(arch.downsamplings) times, so it needs at least \(factor) pixels")
        }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        guard tile >= 0, tile == 0 || inference else { throw ValidationError("--tile goes with --inference and must not be negative") }
        if aux && !(ModelArchitecture(rawValue: model)?.takesAuxiliaryHead ?? false) {
            throw ValidationError("--aux: \(model) has no auxiliary head")
        }
        if inference, let ranks, ranks > 1 { throw ValidationError("--inference runs in one process; leave out --ranks") }
        guard TrainingConfig.DeviceKind(rawValue: device) != nil else {
            throw ValidationError("--device must be one of \(TrainingConfig.DeviceKind.allCases.map(\.rawValue).joined(separator: ", ")), got '\(device)'")
        }
    }

    func run() throws {
        if RankContext.shouldLaunch(ranks: ranks) {
            var code: Int32 = 0
            try reportingErrors { code = try RankContext.launch(ranks: ranks!, arguments: Array(CommandLine.arguments.dropFirst())) }
            throw ExitCode(code)
        }
        let context = try RankContext.join(collectiveTimeout: 120)
        let communicator = context.communicator, localRanks = context.localRanks
        guard batch >= communicator.size else { throw ValidationError("--batch \(batch) cannot be split over \(communicator.size) ranks") }
        MemoryPolicy.keepFreedMemoryForReuse()
        Parallel.configure(threads: threads ?? Launch.defaultThreads(localRanks: localRanks))
        if communicator.rank == 0, threads == nil, let warning = Launch.idleCoresWarning(rank: 0, localRanks: localRanks, threads: Parallel.threads) {
            FileHandle.standardError.write((warning + "\n").data(using: .utf8)!)
        }
        var bench = Benchmark(architecture: ModelArchitecture(rawValue: model)!)
        bench.width = width; bench.batch = batch; bench.size = size; bench.steps = steps; bench.tile = tile; bench.auxiliary = aux
        let root = communicator.rank == 0
        var result: Benchmark.Result?, inferenceResult: Benchmark.InferenceResult?, code: Int32 = 0
        try reportingErrors { code = try context.run { () throws -> Int32 in
            let placement = try DevicePlacement.choose(TrainingConfig.DeviceKind(rawValue: device)!,
                                                       localRank: context.localRank,
                                                       ranksOnThisNode: localRanks, shareGPU: shareGpu)
            bench.backend = placement.backend
            if root, let note = placement.note, bench.backend.device != .host || device != "auto" {
                FileHandle.standardError.write((note + "\n").data(using: .utf8)!)
            }
            let report = { (step: Int, ms: Double) in
                if root { FileHandle.standardError.write("\(inference ? "pass" : "step") \(step)/\(steps): \(String(format: "%.0f", ms)) ms\n".data(using: .utf8)!) }
            }
            if inference {
                inferenceResult = try bench.runInference(progress: report)
            } else {
                result = try bench.run(communicator: communicator, bucketMB: bucketMb, progress: report)
            }
            return 0
        } }
        if code != 0 { throw ExitCode(code) }
        guard root else { return }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var json = String(data: try inferenceResult.map { try encoder.encode($0) } ?? encoder.encode(result!), encoding: .utf8)!
        json = json.replacingOccurrences(of: #"(\d+\.\d{3})\d+"#, with: "$1", options: .regularExpression)
        print(json)
    }
}
