import SegCore

/// 2-D transposed convolution over NCHW input; weight (Cin, Cout, k, k), bias (Cout).
public final class ConvTranspose2d {
    public let inChannels: Int, outChannels: Int, kernelSize: Int
    public let stride: Int, padding: Int, outputPadding: Int
    public let weight: TensorSlot, bias: TensorSlot?
    private let store: ParameterStore

    public init(store: ParameterStore, name: String, inputChannels: Int, outputChannels: Int, kernelSize: Int,
                stride: Int = 1, padding: Int = 0, outputPadding: Int = 0, bias: Bool = true,
                bilinear: Bool = false, generator: inout SeededGenerator) {
        self.store = store
        inChannels = inputChannels; outChannels = outputChannels; self.kernelSize = kernelSize
        self.stride = stride; self.padding = padding; self.outputPadding = outputPadding
        // PyTorch computes fan_in from weight dim 1, which for a transposed conv is Cout.
        let fanIn = outputChannels * kernelSize * kernelSize
        let shape = [inputChannels, outputChannels, kernelSize, kernelSize]
        weight = store.registerParameter("\(name).weight", shape: shape, initialValues: bilinear
            ? bilinearUpsamplingKernel(inputChannels: inputChannels, outputChannels: outputChannels, kernelSize: kernelSize)
            : kaimingUniformA5(count: shape.reduce(1, *), fanIn: fanIn, generator: &generator))
        self.bias = bias ? store.registerParameter("\(name).bias", shape: [outputChannels],
                                                   initialValues: kaimingUniformA5(count: outputChannels, fanIn: fanIn, generator: &generator)) : nil
    }

    public func callAsFunction(_ x: Tensor, _ pass: Pass) -> Tensor {
        precondition(x.rank == 4 && x.shape[1] == inChannels, "ConvTranspose2d expects \(inChannels) input channels, got \(x.shape)")
        return pass.convTranspose2d(x, weight: store.parameter(weight), bias: bias.map(store.parameter),
                                    stride: stride, padding: padding, outputPadding: outputPadding)
    }
}
