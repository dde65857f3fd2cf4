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

/// PyTorch's default initialisation for convolution weights: kaiming-uniform with a = sqrt(5),
/// i.e. uniform in +-1/sqrt(fan_in); biases uniform in the same bound.
public func kaimingUniformA5(count: Int, fanIn: Int, generator: inout SeededGenerator) -> [Float] {
    let bound = 1 / Float(fanIn).squareRoot()
    return (0..<count).map { _ in generator.uniform(-bound, bound) }
}

/// Normal with std sqrt(2 / fanOut) (`nn.init.kaiming_normal_(mode="fan_out", nonlinearity="relu")`).
public func kaimingNormalFanOut(count: Int, fanOut: Int, generator: inout SeededGenerator) -> [Float] {
    let std = (2 / Double(fanOut)).squareRoot()
    return (0..<count).map { _ in Float(generator.normal() * std) }
}
