import SegCore

/// 2-D convolution over NCHW input; weight (Cout, Cin / groups, k, k), optional bias (Cout).
public final class Conv2d {
    public let inChannels: Int, outChannels: Int, kernelSize: Int
    public let stride: Int, padding: Int, dilation: Int, groups: Int
    public let weight: TensorSlot, bias: TensorSlot?
    private let store: ParameterStore

    public init(store: ParameterStore, name: String, inputChannels: Int, outputChannels: Int, kernelSize: Int,
                stride: Int = 1, padding: Int = 0, dilation: Int = 1, groups: Int = 1, bias: Bool = true,
                initializer: WeightInit = .pytorchDefault, generator: inout SeededGenerator) {
        precondition(inputChannels % groups == 0 && outputChannels % groups == 0,
                     "\(name): \(inputChannels) -> \(outputChannels) channels do not split into \(groups) groups")
        self.store = store
        inChannels = inputChannels; outChannels = outputChannels; self.kernelSize = kernelSize
        self.stride = stride; self.padding = padding; self.dilation = dilation; self.groups = groups
        // as PyTorch's fans of the weight tensor: fan in counts one group's input channels
        let fanIn = inputChannels / groups * kernelSize * kernelSize
        let shape = [outputChannels, inputChannels / groups, kernelSize, kernelSize]
        let values: [Float]
        switch initializer {
        case .pytorchDefault: values = kaimingUniformA5(count: shape.reduce(1, *), fanIn: fanIn, generator: &generator)
        case .kaimingNormalFanOut:
            values = kaimingNormalFanOut(count: shape.reduce(1, *), fanOut: outputChannels * kernelSize * kernelSize, generator: &generator)
        }
        weight = store.registerParameter("\(name).weight", shape: shape, initialValues: values)
        self.bias = bias ? store.registerParameter("\(name).bias", shape: [outputChannels],
                                                   initialValues: kaimingUniformA5(count: outputChannels, fanIn: fanIn, generator: &generator)) : nil
    }

    public func callAsFunction(_ x: Tensor, _ pass: Pass) -> Tensor {
        precondition(x.rank == 4 && x.shape[1] == inChannels, "Conv2d expects \(inChannels) input channels, got \(x.shape)")
        return pass.conv2d(x, weight: store.parameter(weight), bias: bias.map(store.parameter),
                           stride: stride, padding: padding, dilation: dilation, groups: groups)
    }

    /// `Pass.conv2dBatchNorm` of this convolution and a batch norm's tensors (`BatchNorm2d`'s
    /// `callAsFunction(conv, x, pass)` is the way in).
    func foldingBatchNorm(_ x: Tensor, _ parts: [Tensor], _ pass: Pass, gamma: Parameter, beta: Parameter, runningMean: Tensor,
                          runningVar: Tensor, momentum: Float, eps: Float, relu: Bool) -> Tensor {
        let channels = parts.reduce(x.shape[1]) { $0 + $1.shape[1] }
        precondition(x.rank == 4 && channels == inChannels, "Conv2d expects \(inChannels) input channels, got \(([x] + parts).map(\.shape))")
        return pass.conv2dBatchNorm(x, parts, weight: store.parameter(weight), bias: bias.map(store.parameter), stride: stride,
                                    padding: padding, dilation: dilation, groups: groups, gamma: gamma, beta: beta,
                                    runningMean: runningMean, runningVar: runningVar, momentum: momentum, eps: eps, relu: relu)
    }
}
