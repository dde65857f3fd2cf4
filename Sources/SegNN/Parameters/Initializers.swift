import SegCore

/// PyTorch's default initialisation for convolution weights: kaiming-uniform with a = sqrt(5),
/// i.e. uniform in +-1/sqrt(fan_in); biases uniform in the same bound.
public func kaimingUniformA5(count: Int, fanIn: Int, generator: inout SeededGenerator) -> [Float] {
    let bound = 1 / Float(fanIn).squareRoot()
    return (0..<count).map { _ in generator.uniform(-bound, bound) }
}
