import Foundation
import SegCore

/// How a convolution's weight starts.
public enum WeightInit: Sendable {
    /// PyTorch's default for convolutions: kaiming-uniform with a = sqrt(5), i.e. uniform in
    /// +-1/sqrt(fan_in); biases uniform in the same bound.
    case pytorchDefault
    /// torchvision's ResNet: kaiming-normal, fan_out, ReLU gain (std = sqrt(2 / fan_out)).
    case kaimingNormalFanOut
}

/// Random initialization switched off for a model whose every parameter is loaded right after
/// it is built (predict, eval and export load weights or a checkpoint and refuse a file that
/// lacks a tensor): inside `skipping`, the random initializers return zeros and leave their
/// generator as it is. fcn_resnet50's draws (Box-Muller's cos and log) took ~0.8 s of every
/// `segdist predict` with it.
public enum RandomInitialization {
    @TaskLocal static var isSkipped = false

    /// `build`'s value, its random initializers drawing nothing.
    public static func skipping<T>(_ build: () throws -> T) rethrows -> T {
        try $isSkipped.withValue(true, operation: build)
    }
}

/// PyTorch's default initialisation for convolution weights: kaiming-uniform with a = sqrt(5),
/// i.e. uniform in +-1/sqrt(fan_in); biases uniform in the same bound.
public func kaimingUniformA5(count: Int, fanIn: Int, generator: inout SeededGenerator) -> [Float] {
    if RandomInitialization.isSkipped { return [Float](repeating: 0, count: count) }
    let bound = 1 / Float(fanIn).squareRoot()
    return (0..<count).map { _ in generator.uniform(-bound, bound) }
}

/// Normal with std sqrt(2 / fanOut) (`nn.init.kaiming_normal_(mode="fan_out", nonlinearity="relu")`).
public func kaimingNormalFanOut(count: Int, fanOut: Int, generator: inout SeededGenerator) -> [Float] {
    if RandomInitialization.isSkipped { return [Float](repeating: 0, count: count) }
    let std = (2 / Double(fanOut)).squareRoot()
    return (0..<count).map { _ in Float(generator.normal() * std) }
}

/// A transposed-convolution weight (Cin, Cout, k, k) that upsamples each channel bilinearly
/// (channel i to channel i, zero elsewhere), as FCN initialises its learnable upsampling.
public func bilinearUpsamplingKernel(inputChannels: Int, outputChannels: Int, kernelSize k: Int) -> [Float] {
    let factor = (k + 1) / 2
    let center = k % 2 == 1 ? Float(factor - 1) : Float(factor) - 0.5
    var w = [Float](repeating: 0, count: inputChannels * outputChannels * k * k)
    for c in 0..<min(inputChannels, outputChannels) {
        for i in 0..<k {
            for j in 0..<k {
                let v = (1 - abs(Float(i) - center) / Float(factor)) * (1 - abs(Float(j) - center) / Float(factor))
                w[((c * outputChannels + c) * k + i) * k + j] = v
            }
        }
    }
    return w
}
