import SegCore

/// DeepLabV3+ (Chen et al. 2018) in segmentation_models_pytorch's `DeepLabV3Plus` layout and
/// state_dict names (smp 0.6, `encoder_output_stride=16`, separable ASPP): a ResNet encoder
/// dilated to output stride 16 (`encoder.*`, torchvision's ResNet names); an ASPP of separable
/// convolutions (rates 12/24/36) + separable 3x3 - BN - ReLU (`decoder.aspp.{0,1,2}`), upsampled
/// bilinearly (align_corners) to the stride-4 features; those projected by a 1x1 to 48 channels
/// (`decoder.block1`), concatenated, a separable 3x3 - BN - ReLU (`decoder.block2`); a 1x1 to the
/// classes (`segmentation_head.0`), upsampled bilinearly (align_corners) to the input. smp
/// upsamples by factors 4 and 4 and so needs sides divisible by 16; segdist resizes to the
/// stride-4 features and to the input, which is the same there and takes any size elsewhere.
/// `width` is the encoder's stem channels (64 in smp); the decoder has 4 x width channels (256).
public final class DeepLabV3Plus: SegmentationModel {
    public let store = ParameterStore()
    public let inputChannels: Int, classes: Int
    let encoder: ResNetBackbone
    let aspp: ASPP, asppConv: SeparableConv2d, asppBN: BatchNorm2d
    let block1: ConvBNReLU, block2: SeparableConv2d, block2BN: BatchNorm2d
    let head: Conv2d

    public init(inputChannels: Int, classes: Int, depth: Int, width: Int = 64, seed: UInt64) {
        self.inputChannels = inputChannels; self.classes = classes
        var rng = SeededGenerator(seed: seed)
        encoder = ResNetBackbone(store: store, prefix: "encoder", inputChannels: inputChannels, depth: depth, width: width,
                                 dilation: .outputStride16, generator: &rng)
        let channels = 4 * width, highRes = 48
        aspp = ASPP(store: store, name: "decoder.aspp.0", inputChannels: encoder.outChannels, rates: [12, 24, 36],
                    outputChannels: channels, separable: true, generator: &rng)
        asppConv = SeparableConv2d(store: store, name: "decoder.aspp.1", inputChannels: channels, outputChannels: channels,
                                   kernelSize: 3, padding: 1, generator: &rng)
        asppBN = BatchNorm2d(store: store, name: "decoder.aspp.2", channels: channels, fusedReLU: true)
        block1 = ConvBNReLU(store: store, name: "decoder.block1", inputChannels: encoder.lowChannels, outputChannels: highRes,
                            kernelSize: 1, generator: &rng)
        block2 = SeparableConv2d(store: store, name: "decoder.block2.0", inputChannels: channels + highRes, outputChannels: channels,
                                 kernelSize: 3, padding: 1, generator: &rng)
        block2BN = BatchNorm2d(store: store, name: "decoder.block2.1", channels: channels, fusedReLU: true)
        head = Conv2d(store: store, name: "segmentation_head.0", inputChannels: channels, outputChannels: classes, kernelSize: 1,
                      generator: &rng)
        store.seal()
    }

    public func forward(_ x: Tensor, _ pass: Pass) -> Tensor {
        let f = encoder.features(x, pass, low: true, aux: false)
        let low = f.low!
        let context = asppBN(asppConv(aspp(f.out, pass), pass), pass)
        let up = pass.resizeBilinear(context, like: low, alignCorners: true)
        let fused = block2BN(block2(pass.concatChannels(up, block1(low, pass)), pass), pass)
        return pass.resizeBilinear(head(fused, pass), like: x, alignCorners: true)
    }
}

/// segmentation_models_pytorch's `SeparableConv2d`: a depthwise k x k (no bias) then a
/// pointwise 1x1, registered as `<name>.0` and `<name>.1`.
final class SeparableConv2d {
    let depthwise: Conv2d, pointwise: Conv2d

    init(store: ParameterStore, name: String, inputChannels: Int, outputChannels: Int, kernelSize: Int, padding: Int = 0,
         dilation: Int = 1, bias: Bool = false, generator: inout SeededGenerator) {
        depthwise = Conv2d(store: store, name: "\(name).0", inputChannels: inputChannels, outputChannels: inputChannels,
                           kernelSize: kernelSize, padding: padding, dilation: dilation, groups: inputChannels, bias: false,
                           generator: &generator)
        pointwise = Conv2d(store: store, name: "\(name).1", inputChannels: inputChannels, outputChannels: outputChannels,
                           kernelSize: 1, bias: bias, generator: &generator)
    }

    func callAsFunction(_ x: Tensor, _ pass: Pass) -> Tensor { pointwise(depthwise(x, pass), pass) }
}
