import Foundation
import SegCore
import SegNN

/// What a step (or a prediction) will ask of memory, measured rather than guessed: a probe
/// pass on one small image counts the tensor bytes alive at its peak and the largest im2col
/// scratch, and both grow with the pixels of a pass; parameters, gradients, running statistics
/// and optimizer state come from the model's sizes.
public struct MemoryEstimate: Equatable, Sendable {
    public var activationBytes: Int
    public var scratchBytes: Int
    public var modelBytes: Int
    public var totalBytes: Int { activationBytes + scratchBytes + modelBytes }

    public var summary: String {
        func gb(_ b: Int) -> String { String(format: "%.2f GB", Double(b) / 1e9) }
        return "about \(gb(totalBytes)) (activations \(gb(activationBytes)), convolution scratch \(gb(scratchBytes)), model and optimizer \(gb(modelBytes)))"
    }

    /// One training forward + backward of `imagesPerPass` images of `height x width`.
    public static func training(config: TrainingConfig, imagesPerPass: Int, height: Int, width: Int) throws -> MemoryEstimate {
        let probe = config.makeModel()     // a fresh copy: the probe moves its batch statistics
        let (ph, pw) = probeSize(config.model, height, width)
        let x = Tensor(zeros: [1, config.inChannels, ph, pw])
        let targets = Tensor(zeros: [1, probe.classes, ph, pw])
        let work = ConvolutionWork()
        let baseline = HostMemoryMeter.liveBytes
        HostMemoryMeter.resetPeak()
        do {
            let tape = Tape(backend: probe.store.backend)
            var pass = Pass.training(tape: tape)
            pass.work = work
            let loss = try config.loss.apply(to: probe.trainingOutputs(x, pass), oneHot: targets, pass)
            tape.backward(from: loss)
        }
        let measured = HostMemoryMeter.peakBytes - baseline
        let scale = Double(imagesPerPass * height * width) / Double(ph * pw)
        let states = config.optimizer == .sgd ? (config.momentum > 0 ? 1 : 0) : 2
        let model = (probe.store.parameterCount * (2 + states) + probe.store.bufferCount) * 4
        let perImage = Double(height * width) / Double(ph * pw)
        return MemoryEstimate(activationBytes: Int(Double(measured) * scale),
                              scratchBytes: Int(Double(work.largestColumn * 4) * perImage) * Parallel.threads,
                              modelBytes: model)
    }

    /// One inference pass of `model` on an image of `height x width`.
    public static func prediction(model: SegmentationModel, architecture: ModelArchitecture, height: Int, width: Int) -> MemoryEstimate {
        let (ph, pw) = probeSize(architecture, height, width)
        var pass = Pass.inference(backend: model.store.backend)
        let work = ConvolutionWork()
        pass.work = work
        let baseline = HostMemoryMeter.liveBytes
        HostMemoryMeter.resetPeak()
        _ = model.forward(model.store.backend.upload(Tensor(zeros: [1, model.inputChannels, ph, pw])), pass)
        let measured = HostMemoryMeter.peakBytes - baseline
        let scale = Double(height * width) / Double(ph * pw)
        // the prediction also holds the probabilities on the host and its pictures
        let outputs = model.classes * height * width * 4 * 2 + height * width * 16
        return MemoryEstimate(activationBytes: Int(Double(measured) * scale) + outputs,
                              scratchBytes: Int(Double(work.largestColumn * 4) * scale) * Parallel.threads,
                              modelBytes: (model.store.parameterCount + model.store.bufferCount) * 4)
    }

    /// A small image of the same aspect that the model's downsamplings survive (64 px on the
    /// short side, or the image itself when smaller).
    static func probeSize(_ model: ModelArchitecture, _ height: Int, _ width: Int) -> (Int, Int) {
        let unit = 1 << model.downsamplings
        let short = min(height, width)
        guard short > 64 else { return (height, width) }
        let f = 64.0 / Double(short)
        func side(_ v: Int) -> Int { max(unit, Int((Double(v) * f / Double(unit)).rounded()) * unit) }
        return (side(height), side(width))
    }

    /// Memory this process may still use: MemAvailable, or the cgroup's limit less its usage
    /// when that is lower.
    public static var availableBytes: Int? {
        var best: Int?
        if let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
           let line = text.split(separator: "\n").first(where: { $0.hasPrefix("MemAvailable:") }),
           let kb = Int(line.split(separator: " ").dropFirst().first ?? "") {
            best = kb * 1024
        }
        if let limit = (try? String(contentsOfFile: "/sys/fs/cgroup/memory.max", encoding: .utf8)).flatMap({ Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }),
           let used = (try? String(contentsOfFile: "/sys/fs/cgroup/memory.current", encoding: .utf8)).flatMap({ Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }) {
            best = min(best ?? Int.max, limit - used)
        }
        return best
    }
}
