import Foundation
import SegCore

/// A new GPU backend runs the ops a UNet training step uses on small random inputs and must
/// agree with the CPU backend (relative 1e-3) before anything trains on it: a driver, compiler
/// or kernel problem then ends the run with the op's name instead of training on garbage.
public enum CUDASelfCheck {
    public static func run(_ gpu: Backend, tolerance: Double = 1e-3) throws {
        // a failing CUDA call during the check is an answer (thrown), not the end of the process;
        // it is named before the disagreement it caused
        do { try compareOps(gpu, tolerance: tolerance) } catch {
            try gpu.checkHealthy()
            throw error
        }
        try gpu.checkHealthy()
    }

    static func compareOps(_ gpu: Backend, tolerance: Double) throws {
        let cpu = CPUBackend.shared
        var rng = SeededGenerator(seed: 7)
        func random(_ shape: [Int]) -> Tensor {
            Tensor(shape: shape, storage: (0..<shape.reduce(1, *)).map { _ in rng.uniform(-1, 1) })
        }
        func compare(_ what: String, _ a: Tensor, _ b: Tensor) throws {
            let x = cpu.download(a).storage, y = gpu.download(b).storage
            guard x.count == y.count else { throw CUDAError("self-check: \(what) has \(y.count) values on the GPU, \(x.count) on the CPU") }
            let d = y.allSatisfy(\.isFinite) ? relativeDifference(y, x) : .infinity
            if d > tolerance {
                throw CUDAError("self-check: \(what) differs from the CPU by \(String(format: "%.2e", d)) (relative); not training on this GPU")
            }
        }
        let x = random([2, 16, 12, 10]), w = random([8, 16, 3, 3]), bias = random([8])
        let g = ConvGeometry(channels: 16, height: 12, width: 10, kernelH: 3, kernelW: 3, stride: 1, padding: 1)
        let gx = gpu.upload(x), gw = gpu.upload(w), gb = gpu.upload(bias)
        let y = cpu.conv2dForward(x, weight: w, bias: bias, geometry: g), gy = gpu.conv2dForward(gx, weight: gw, bias: gb, geometry: g)
        try compare("conv2d forward", y, gy)
        let dy = random(y.shape), gdy = gpu.upload(dy)
        let dw = cpu.zeros(w.shape), db = cpu.zeros([8]), gdw = gpu.zeros(w.shape), gdb = gpu.zeros([8])
        let dx = cpu.conv2dBackward(x: x, weight: w, dy: dy, geometry: g, inputGradient: true, weightGradient: dw, biasGradient: db)!
        let gdx = gpu.conv2dBackward(x: gx, weight: gw, dy: gdy, geometry: g, inputGradient: true, weightGradient: gdw, biasGradient: gdb)!
        try compare("conv2d input gradient", dx, gdx)
        try compare("conv2d weight gradient", dw, gdw)
        try compare("conv2d bias gradient", db, gdb)

        let gamma = random([8]), beta = random([8])
        let rm = cpu.zeros([8]), rv = Tensor(repeating: 1, shape: [8]), grm = gpu.zeros([8]), grv = gpu.upload(Tensor(repeating: 1, shape: [8]))
        let (z, s) = cpu.batchNormTrainForward(y, gamma: gamma, beta: beta, runningMean: rm, runningVar: rv, momentum: 0.1, eps: 1e-5,
                                               relu: true, group: nil)
        let (gz, gs) = gpu.batchNormTrainForward(gy, gamma: gpu.upload(gamma), beta: gpu.upload(beta), runningMean: grm, runningVar: grv,
                                                 momentum: 0.1, eps: 1e-5, relu: true, group: nil)
        try compare("batch norm + ReLU forward", z, gz)
        try compare("batch norm running variance", rv, grv)
        let dg = cpu.zeros([8]), dbeta = cpu.zeros([8]), gdg = gpu.zeros([8]), gdbeta = gpu.zeros([8])
        let dz = cpu.batchNormTrainBackward(x: y, y: z, dy: dy, gamma: gamma, statistics: s, gammaGradient: dg, betaGradient: dbeta,
                                            relu: true, group: nil)
        let gdz = gpu.batchNormTrainBackward(x: gy, y: gz, dy: gdy, gamma: gpu.upload(gamma), statistics: gs, gammaGradient: gdg,
                                             betaGradient: gdbeta, relu: true, group: nil)
        try compare("batch norm backward", dz, gdz)
        try compare("batch norm gamma gradient", dg, gdg)

        let (p, indices) = cpu.maxPool2dForward(z, kernel: 2, stride: 2, padding: 0, ceilMode: false)
        let (gp, gindices) = gpu.maxPool2dForward(gz, kernel: 2, stride: 2, padding: 0, ceilMode: false)
        try compare("max pool", p, gp)
        let dp = random(p.shape)
        try compare("max pool backward", cpu.maxPool2dBackward(dy: dp, indices: indices, inputShape: z.shape),
                    gpu.maxPool2dBackward(dy: gpu.upload(dp), indices: gindices, inputShape: z.shape))
        let u = cpu.bilinearForward(p, height: 12, width: 10, alignCorners: true)
        try compare("bilinear resize", u, gpu.bilinearForward(gp, height: 12, width: 10, alignCorners: true))
        let du = random(u.shape)
        try compare("bilinear backward", cpu.bilinearBackward(dy: du, inputShape: p.shape, alignCorners: true),
                    gpu.bilinearBackward(dy: gpu.upload(du), inputShape: p.shape, alignCorners: true))
        try compare("channel concatenation", cpu.concatChannels(z, u), gpu.concatChannels(gz, gpu.upload(u)))
        let targets = Tensor(shape: y.shape, storage: (0..<y.count).map { _ in rng.uniform(0, 1) > 0.5 ? 1 : 0 })
        let (loss, grad) = cpu.bceWithLogits(logits: y, targets: targets)
        let (gloss, ggrad) = gpu.bceWithLogits(logits: gy, targets: gpu.upload(targets))
        try compare("BCE loss", loss, gloss)
        try compare("BCE gradient", grad, ggrad)
        let counts = cpu.overlapCounts(logits: y, targets: targets, activation: .sigmoid)
        let gcounts = gpu.overlapCounts(logits: gy, targets: gpu.upload(targets), activation: .sigmoid)
        if counts != gcounts { throw CUDAError("self-check: Dice/Jaccard pixel counts differ from the CPU's; not training on this GPU") }
        let params = random([1000]), grads = random([1000]), gparams = gpu.upload(params)
        let momentum = cpu.zeros([1000]), gmomentum = gpu.zeros([1000])
        for first in [true, false] {
            cpu.sgdUpdate(parameters: params, gradients: grads, momentumBuffer: momentum, learningRate: 0.01, momentum: 0.9, dampening: 0,
                          weightDecay: 5e-4, nesterov: false, firstStep: first)
            gpu.sgdUpdate(parameters: gparams, gradients: gpu.upload(grads), momentumBuffer: gmomentum, learningRate: 0.01, momentum: 0.9,
                          dampening: 0, weightDecay: 5e-4, nesterov: false, firstStep: first)
        }
        try compare("SGD step", params, gparams)
    }
}
