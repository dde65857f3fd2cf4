import ArgumentParser
import Foundation
import SegCore
import SegNN
import SegTrain

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time full training steps (forward, backward, SGD) on random data; prints one JSON line.")

    @Option(help: "Model: \(ModelArchitecture.allCases.map(\.rawValue).joined(separator: ", ")).")
    var model = "unet"
    @Option(help: "Channels of the first level (the lab uses 64).") var width = 16
    @Option(help: "Images per step.") var batch = 8
    @Option(help: "Image side in pixels.") var size = 128
    @Option(help: "Timed steps (after 2 warm-up steps).") var steps = 10
    @Option(help: "Worker threads (default: all cores of this process).") var threads: Int?

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
    }

    func run() throws {
        MemoryPolicy.keepFreedMemoryForReuse()
        Parallel.configure(threads: threads ?? Parallel.availableCores)
        var bench = Benchmark(architecture: ModelArchitecture(rawValue: model)!)
        bench.width = width; bench.batch = batch; bench.size = size; bench.steps = steps
        let result = try bench.run { step, ms in
            FileHandle.standardError.write("step \(step)/\(steps): \(String(format: "%.0f", ms)) ms\n".data(using: .utf8)!)
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var json = String(data: try encoder.encode(result), encoding: .utf8)!
        json = json.replacingOccurrences(of: #"(\d+\.\d{3})\d+"#, with: "$1", options: .regularExpression)
        print(json)
    }
}
