import Foundation
import SegCore
import SegDist
import SegNN

/// Times full training steps (forward, BCE loss, backward, SGD) on seeded random data.
public struct Benchmark {
    public struct Result: Codable, Equatable {
        public var model: String, width: Int, batch: Int, size: Int, threads: Int, steps: Int
        public var ms_per_step: Double, images_per_s: Double
        public var gflop_per_step: Double, gflop_per_s: Double
        public var parameters: Int
        public var peak_rss_mb: Double
        /// The most host tensor memory alive at once during the timed steps (rank 0's), of
        /// which `state_mb` — parameters, gradients, optimizer state — is there throughout.
        public var peak_tensor_mb: Double, state_mb: Double
        public var ranks: Int
        /// Share of the step spent waiting for gradient communication (not hidden by backward).
        public var communication_share: Double
        /// The GEMM kernel path: OpenBLAS's core name for this CPU.
        public var kernels: String
        /// Per rank: its worker threads and the CPUs of its affinity mask (its binding).
        public var threads_per_rank: [Int]
        public var cpus_per_rank: [Int]
    }

    public var architecture: ModelArchitecture
    public var width = 16, batch = 8, size = 128, steps = 10, warmup = 2, seed: UInt64 = 0
    /// Inference only: predict each image in windows of this side (0: whole images).
    public var tile = 0
    /// Training with the auxiliary FCN head on layer3 (ResNet models; its loss weighted 0.5).
    public var auxiliary = false
    /// Where the steps run (`DevicePlacement`); the CPU by default.
    public var backend: Backend = CPUBackend.shared

    public init(architecture: ModelArchitecture) { self.architecture = architecture }

    public func run(communicator: Communicator = LocalCommunicator(), bucketMB: Float = 1,
                    progress: ((Int, Double) -> Void)? = nil) throws -> Result {
        let model = architecture.make(inputChannels: 1, classes: 2, width: width, seed: seed, auxiliary: auxiliary)
        model.store.move(to: backend)
        let trainer = Trainer(model: model, optimizer: try SGD(momentum: 0.9, weightDecay: 5e-4), loss: .bce,
                              schedule: LearningRateSchedule(base: 1e-3))
        let parallel = try DataParallelStep(trainer: trainer, communicator: communicator, globalBatch: batch, microBatch: 0,
                                            bucketElements: Int(bucketMB * 1024 * 1024) / 4)
        var rng = SeededGenerator(seed: seed, stream: 1)
        let plane = size * size
        let pixels = (0..<(batch * plane)).map { _ in rng.nextUnit() }
        var oneHot = [Float](repeating: 0, count: batch * 2 * plane)
        for b in 0..<batch {
            for p in 0..<plane {
                let fg: Float = rng.nextUnit() > 0.5 ? 1 : 0
                oneHot[(b * 2 + 1) * plane + p] = fg
                oneHot[(b * 2) * plane + p] = 1 - fg
            }
        }
        let images = Tensor(shape: [batch, 1, size, size], storage: pixels)
        let targets = Tensor(shape: [batch, 2, size, size], storage: oneHot)
        func slice(_ r: Range<Int>) -> (Tensor, Tensor) {
            if r.count == batch { return (images, targets) }
            return (Tensor(shape: [r.count, 1, size, size], storage: Array(pixels[(r.lowerBound * plane)..<(r.upperBound * plane)])),
                    Tensor(shape: [r.count, 2, size, size], storage: Array(oneHot[(r.lowerBound * 2 * plane)..<(r.upperBound * 2 * plane)])))
        }
        parallel.broadcastModel()
        for _ in 0..<warmup { _ = try parallel.step(batch: slice) }
        communicator.barrier(label: "benchmark start")
        var times: [Double] = []
        parallel.reducer.resetTimers()
        HostMemoryMeter.resetPeak()
        for s in 0..<steps {
            let t0 = DispatchTime.now().uptimeNanoseconds
            _ = try parallel.step(batch: slice)
            backend.synchronize()   // a GPU step ends when its kernels have run
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
            times.append(dt)
            progress?(s + 1, dt)
        }
        let peakTensorMB = Double(HostMemoryMeter.peakBytes) / 1048576
        let exposed = communicator.maximum(parallel.reducer.exposedSeconds * 1000 / Double(steps))
        // The slowest rank sets the pace.
        times = times.map { communicator.maximum($0) }
        times.sort()
        let median = times.count % 2 == 1 ? times[times.count / 2] : (times[times.count / 2 - 1] + times[times.count / 2]) / 2
        // PyTorch's FLOP counter: 2 FLOPs per multiply-add forward; backward counts the weight
        // gradient and, where needed, the input gradient at the same cost each.
        // one recorded forward of the global batch counts the convolutions' multiply-adds
        let work = ConvolutionWork()
        var counting = Pass.training(tape: Tape(backend: model.store.backend))
        counting.work = work
        _ = model.trainingOutputs(model.store.backend.upload(images), counting)
        let flops = 2.0 * Double(work.forward) * 2 + 2.0 * Double(work.inputGradient)
        // every rank's threads and CPUs, gathered as a sum of one-hot rows
        var placement = [Float](repeating: 0, count: 2 * communicator.size)
        placement[communicator.rank] = Float(Parallel.threads)
        placement[communicator.size + communicator.rank] = Float(Parallel.availableCores)
        if communicator.size > 1 { placement.withUnsafeMutableBufferPointer { communicator.sumInPlace($0.baseAddress!, count: $0.count) } }
        return Result(model: architecture.rawValue, width: width, batch: batch, size: size, threads: Parallel.threads,
                      steps: steps, ms_per_step: median, images_per_s: Double(batch) / (median / 1000),
                      gflop_per_step: flops / 1e9, gflop_per_s: flops / 1e9 / (median / 1000),
                      parameters: model.store.parameterCount, peak_rss_mb: communicator.maximum(peakResidentMegabytes()),
                      peak_tensor_mb: peakTensorMB, state_mb: Double(model.store.parameterCount * 4 * (2 + trainer.optimizer.stateBuffers.count)) / 1048576,
                      ranks: communicator.size, communication_share: exposed / median, kernels: backend.kernelsDescription,
                      threads_per_rank: placement[..<communicator.size].map { Int($0) },
                      cpus_per_rank: placement[communicator.size...].map { Int($0) })
    }
}

extension Benchmark {
    /// What an inference benchmark measured: evaluation-mode forward passes of `batch` images
    /// without a tape (as `predict` runs the model), median over the timed passes.
    public struct InferenceResult: Codable, Equatable {
        public var model: String, width: Int, batch: Int, size: Int, threads: Int, passes: Int
        /// Window side of tiled prediction (0: whole images).
        public var tile: Int
        public var ms_per_pass: Double, ms_per_image: Double, images_per_s: Double
        public var parameters: Int, peak_rss_mb: Double, kernels: String
    }

    /// Times evaluation-mode forward passes (no tape: activations freed as the next op reads them).
    public func runInference(progress: ((Int, Double) -> Void)? = nil) throws -> InferenceResult {
        let model = architecture.make(inputChannels: 1, classes: 2, width: width, seed: seed)
        model.store.move(to: backend)
        var rng = SeededGenerator(seed: seed, stream: 1)
        let images = Tensor(shape: [batch, 1, size, size], storage: (0..<(batch * size * size)).map { _ in rng.nextUnit() })
        let plan = tile > 0 ? TilePlan(height: size, width: size, tile: tile, overlap: tile / 4, batch: 4) : nil
        func pass() {
            if let plan {
                // predict's windowed path, one image at a time (windows blended, 4 per pass)
                for b in 0..<batch {
                    let image = Tensor(shape: [1, 1, size, size], storage: Array(images.storage[(b * size * size)..<((b + 1) * size * size)]))
                    _ = Predictor.predictTiled(model: model, input: image, activation: .softmax, plan: plan)
                }
                return
            }
            let logits = model.forward(backend.upload(images), .inference(backend: backend))
            _ = backend.download(backend.activate(logits, .softmax))
        }
        for _ in 0..<warmup { pass() }
        var times: [Double] = []
        for s in 0..<steps {
            let t0 = DispatchTime.now().uptimeNanoseconds
            pass()
            backend.synchronize()
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
            times.append(dt)
            progress?(s + 1, dt)
        }
        try backend.checkHealthy()
        times.sort()
        let median = times.count % 2 == 1 ? times[times.count / 2] : (times[times.count / 2 - 1] + times[times.count / 2]) / 2
        return InferenceResult(model: architecture.rawValue, width: width, batch: batch, size: size, threads: Parallel.threads,
                               passes: steps, tile: tile, ms_per_pass: median, ms_per_image: median / Double(batch),
                               images_per_s: Double(batch) / (median / 1000), parameters: model.store.parameterCount,
                               peak_rss_mb: peakResidentMegabytes(), kernels: backend.kernelsDescription)
    }
}

/// Peak resident set size of this process so far.
public func peakResidentMegabytes() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) / 1024   // Linux reports KiB
}
