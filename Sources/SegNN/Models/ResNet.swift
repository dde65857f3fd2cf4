import SegCore

/// One residual block of torchvision's ResNet.
protocol ResidualBlock: AnyObject {
    /// The block's input is its own: let go once read (an evaluation pass keeps nothing else of it).
    func callAsFunction(_ x: consuming Tensor, _ pass: Pass) -> Tensor
}

/// torchvision's `BasicBlock`: conv3x3 (stride) - BN - ReLU - conv3x3 - BN, plus the identity
/// (or the 1x1 `downsample`), then ReLU.
final class BasicBlock: ResidualBlock {
    static let expansion = 1
    let conv1: Conv2d, bn1: BatchNorm2d, conv2: Conv2d, bn2: BatchNorm2d
    let downsample: (Conv2d, BatchNorm2d)?

    init(store: ParameterStore, name: String, inplanes: Int, planes: Int, stride: Int, dilation: Int,
         generator: inout SeededGenerator) {
        conv1 = Conv2d(store: store, name: "\(name).conv1", inputChannels: inplanes, outputChannels: planes, kernelSize: 3,
                       stride: stride, padding: dilation, dilation: dilation, bias: false, initializer: .kaimingNormalFanOut,
                       generator: &generator)
        bn1 = BatchNorm2d(store: store, name: "\(name).bn1", channels: planes, fusedReLU: true)
        conv2 = Conv2d(store: store, name: "\(name).conv2", inputChannels: planes, outputChannels: planes, kernelSize: 3,
                       padding: dilation, dilation: dilation, bias: false, initializer: .kaimingNormalFanOut, generator: &generator)
        bn2 = BatchNorm2d(store: store, name: "\(name).bn2", channels: planes)
        downsample = makeDownsample(store: store, name: name, inplanes: inplanes, outplanes: planes, stride: stride,
                                    generator: &generator)
    }

    func callAsFunction(_ x: consuming Tensor, _ pass: Pass) -> Tensor {
        let out = bn2(conv2, bn1(conv1, x, pass), pass)
        let identity = downsample.map { projection in projection.1(projection.0, x, pass) } ?? copy x
        _ = consume x
        return pass.addReLU(consume out, identity)
    }
}

/// torchvision's `Bottleneck` (ResNet v1.5, stride on the 3x3): 1x1 - BN - ReLU - 3x3 (stride,
/// dilation) - BN - ReLU - 1x1 (x4) - BN, plus the identity or `downsample`, then ReLU.
final class Bottleneck: ResidualBlock {
    static let expansion = 4
    let conv1: Conv2d, bn1: BatchNorm2d, conv2: Conv2d, bn2: BatchNorm2d, conv3: Conv2d, bn3: BatchNorm2d
    let downsample: (Conv2d, BatchNorm2d)?

    init(store: ParameterStore, name: String, inplanes: Int, planes: Int, stride: Int, dilation: Int,
         generator: inout SeededGenerator) {
        conv1 = Conv2d(store: store, name: "\(name).conv1", inputChannels: inplanes, outputChannels: planes, kernelSize: 1,
                       bias: false, initializer: .kaimingNormalFanOut, generator: &generator)
        bn1 = BatchNorm2d(store: store, name: "\(name).bn1", channels: planes, fusedReLU: true)
        conv2 = Conv2d(store: store, name: "\(name).conv2", inputChannels: planes, outputChannels: planes, kernelSize: 3,
                       stride: stride, padding: dilation, dilation: dilation, bias: false, initializer: .kaimingNormalFanOut,
                       generator: &generator)
        bn2 = BatchNorm2d(store: store, name: "\(name).bn2", channels: planes, fusedReLU: true)
        conv3 = Conv2d(store: store, name: "\(name).conv3", inputChannels: planes, outputChannels: planes * 4, kernelSize: 1,
                       bias: false, initializer: .kaimingNormalFanOut, generator: &generator)
        bn3 = BatchNorm2d(store: store, name: "\(name).bn3", channels: planes * 4)
        downsample = makeDownsample(store: store, name: name, inplanes: inplanes, outplanes: planes * 4, stride: stride,
                                    generator: &generator)
    }

    func callAsFunction(_ x: consuming Tensor, _ pass: Pass) -> Tensor {
        let out = bn3(conv3, bn2(conv2, bn1(conv1, x, pass), pass), pass)
        let identity = downsample.map { projection in projection.1(projection.0, x, pass) } ?? copy x
        _ = consume x
        return pass.addReLU(consume out, identity)
    }
}

/// The 1x1 strided projection + BN (`downsample.0`, `downsample.1`) when the shape changes.
private func makeDownsample(store: ParameterStore, name: String, inplanes: Int, outplanes: Int, stride: Int,
                            generator: inout SeededGenerator) -> (Conv2d, BatchNorm2d)? {
    guard stride != 1 || inplanes != outplanes else { return nil }
    return (Conv2d(store: store, name: "\(name).downsample.0", inputChannels: inplanes, outputChannels: outplanes, kernelSize: 1,
                   stride: stride, bias: false, initializer: .kaimingNormalFanOut, generator: &generator),
            BatchNorm2d(store: store, name: "\(name).downsample.1", channels: outplanes))
}

/// torchvision's ResNet trunk as a segmentation backbone (what `IntermediateLayerGetter` keeps:
/// conv1, bn1, relu, maxpool, layer1-4), under `<prefix>.` names. `width` is the stem's channels
/// (64 in torchvision); layer i has width * 2^i planes. How it is dilated (`Dilation`):
/// - `.torchvision`: depth 50/101 (Bottleneck) replace the strides of layer3 and layer4 by
///   dilation 2 and 4 (output stride 8), as torchvision's segmentation models do, the first
///   block of a layer keeping the dilation before it; depth 18/34 (BasicBlock, which torchvision
///   cannot dilate) keep their strides (output stride 32).
/// - `.outputStride16`: segmentation_models_pytorch's `make_dilated(16)` for any depth: every
///   convolution of layer4 gets stride 1 and dilation 2 (padding k / 2 x 2), its first block too.
public final class ResNetBackbone {
    public enum Dilation: Sendable { case torchvision, outputStride16 }
    public static let depths = [18, 34, 50, 101]
    public let outChannels: Int, auxChannels: Int
    /// layer1's output channels (the stride-4 features).
    public let lowChannels: Int
    let conv1: Conv2d, bn1: BatchNorm2d
    let layers: [[ResidualBlock]]

    public init(store: ParameterStore, prefix: String, inputChannels: Int, depth: Int, width: Int,
                dilation style: Dilation = .torchvision, generator: inout SeededGenerator) {
        let (bottleneck, counts): (Bool, [Int])
        switch depth {
        case 18: (bottleneck, counts) = (false, [2, 2, 2, 2])
        case 34: (bottleneck, counts) = (false, [3, 4, 6, 3])
        case 50: (bottleneck, counts) = (true, [3, 4, 6, 3])
        case 101: (bottleneck, counts) = (true, [3, 4, 23, 3])
        default: preconditionFailure("ResNet depth must be one of \(Self.depths), got \(depth)")
        }
        conv1 = Conv2d(store: store, name: "\(prefix).conv1", inputChannels: inputChannels, outputChannels: width, kernelSize: 7,
                       stride: 2, padding: 3, bias: false, initializer: .kaimingNormalFanOut, generator: &generator)
        bn1 = BatchNorm2d(store: store, name: "\(prefix).bn1", channels: width, fusedReLU: true)
        let expansion = bottleneck ? Bottleneck.expansion : BasicBlock.expansion
        let dilate = style == .outputStride16 ? [false, false, false, true]
            : bottleneck ? [false, false, true, true] : [false, false, false, false]
        var inplanes = width, dilation = 1
        var layers: [[ResidualBlock]] = []
        for (i, count) in counts.enumerated() {
            let planes = width << i
            var stride = i == 0 ? 1 : 2
            let previousDilation = dilation
            if dilate[i] { dilation *= stride; stride = 1 }
            var blocks: [ResidualBlock] = []
            for j in 0..<count {
                let name = "\(prefix).layer\(i + 1).\(j)"
                // the first block keeps the dilation of the layer before (torchvision's _make_layer)
                // (segmentation_models_pytorch dilates every convolution of the layer alike)
                let (s, d) = j == 0 ? (stride, style == .outputStride16 ? dilation : previousDilation) : (1, dilation)
                blocks.append(bottleneck
                    ? Bottleneck(store: store, name: name, inplanes: inplanes, planes: planes, stride: s, dilation: d, generator: &generator)
                    : BasicBlock(store: store, name: name, inplanes: inplanes, planes: planes, stride: s, dilation: d, generator: &generator))
                inplanes = planes * expansion
            }
            layers.append(blocks)
        }
        self.layers = layers
        outChannels = (width << 3) * expansion
        auxChannels = (width << 2) * expansion
        lowChannels = width * expansion
    }

    /// The output of layer4, and those of layer1 (stride 4) and layer3 when asked for: a map
    /// nobody asked for is not kept (an evaluation pass frees each block's input once read).
    public func features(_ x: Tensor, _ pass: Pass, low keepLow: Bool, aux keepAux: Bool) -> (low: Tensor?, aux: Tensor?, out: Tensor) {
        var h = pass.maxPool2d(bn1(conv1, x, pass), kernel: 3, stride: 2, padding: 1)
        var low: Tensor?, aux: Tensor?
        for (i, layer) in layers.enumerated() {
            for block in layer { h = block(consume h, pass) }
            if i == 0 && keepLow { low = h }
            if i == 2 && keepAux { aux = h }
        }
        return (low, aux, h)
    }

    /// (layer4's output, layer3's output when `aux`).
    public func callAsFunction(_ x: Tensor, _ pass: Pass, aux: Bool) -> (out: Tensor, aux: Tensor?) {
        let f = features(x, pass, low: false, aux: aux)
        return (f.out, f.aux)
    }
}
