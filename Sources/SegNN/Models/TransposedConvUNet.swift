import SegCore

/// The portrait-matting UNet (torch.hub `mateuszbuda/brain-segmentation-pytorch` layout):
/// blocks of (conv3x3 no bias, BN, ReLU) x 2 at init_features (`width`) x 1, 2, 4, 8, a 16x
/// bottleneck, transposed-conv k2 s2 upsampling joined with the skip as cat(up, skip), and a
/// 1x1 conv to the classes. Names as its state_dict: `encoder1.enc1conv1.weight`,
/// `encoder1.enc1norm1.running_mean`, `bottleneck.bottleneckconv2.weight`, `upconv4.weight`,
/// `decoder4.dec4norm2.bias`, `conv.weight`. Where a side is not divisible by 16 the upsampled
/// map is padded (or cropped) to its skip, as the lab's UNet does.
public final class TransposedConvUNet: SegmentationModel {
    public let store = ParameterStore()
    public let inputChannels: Int, classes: Int, width: Int
    let encoders: [ConvBlock], bottleneck: ConvBlock
    let upconvs: [ConvTranspose2d], decoders: [ConvBlock]
    let head: Conv2d

    /// (conv3x3 - BN - ReLU) x 2 named `<name>.<prefix>{conv,norm}{1,2}`.
    final class ConvBlock {
        let conv1: Conv2d, norm1: BatchNorm2d, conv2: Conv2d, norm2: BatchNorm2d
        init(store: ParameterStore, name: String, prefix: String, inputChannels: Int, features: Int, generator: inout SeededGenerator) {
            conv1 = Conv2d(store: store, name: "\(name).\(prefix)conv1", inputChannels: inputChannels, outputChannels: features,
                           kernelSize: 3, padding: 1, bias: false, generator: &generator)
            norm1 = BatchNorm2d(store: store, name: "\(name).\(prefix)norm1", channels: features, fusedReLU: true)
            conv2 = Conv2d(store: store, name: "\(name).\(prefix)conv2", inputChannels: features, outputChannels: features,
                           kernelSize: 3, padding: 1, bias: false, generator: &generator)
            norm2 = BatchNorm2d(store: store, name: "\(name).\(prefix)norm2", channels: features, fusedReLU: true)
        }
        func callAsFunction(_ x: Tensor, _ pass: Pass) -> Tensor { norm2(conv2, norm1(conv1, x, pass), pass) }
    }

    public init(inputChannels: Int, classes: Int, width: Int, seed: UInt64) {
        self.inputChannels = inputChannels; self.classes = classes; self.width = width
        var rng = SeededGenerator(seed: seed)
        var encoders: [ConvBlock] = [], channels = inputChannels
        for i in 0..<4 {
            encoders.append(ConvBlock(store: store, name: "encoder\(i + 1)", prefix: "enc\(i + 1)", inputChannels: channels,
                                      features: width << i, generator: &rng))
            channels = width << i
        }
        bottleneck = ConvBlock(store: store, name: "bottleneck", prefix: "bottleneck", inputChannels: 8 * width, features: 16 * width,
                               generator: &rng)
        var upconvs: [ConvTranspose2d] = [], decoders: [ConvBlock] = []
        for level in stride(from: 4, through: 1, by: -1) {
            let features = width << (level - 1)
            upconvs.append(ConvTranspose2d(store: store, name: "upconv\(level)", inputChannels: 2 * features, outputChannels: features,
                                           kernelSize: 2, stride: 2, generator: &rng))
            decoders.append(ConvBlock(store: store, name: "decoder\(level)", prefix: "dec\(level)", inputChannels: 2 * features,
                                      features: features, generator: &rng))
        }
        self.encoders = encoders; self.upconvs = upconvs; self.decoders = decoders
        head = Conv2d(store: store, name: "conv", inputChannels: width, outputChannels: classes, kernelSize: 1, generator: &rng)
        store.seal()
    }

    public func forward(_ x: Tensor, _ pass: Pass) -> Tensor {
        var skips: [Tensor] = []
        var h = x
        for (i, encoder) in encoders.enumerated() {
            h = encoder(i == 0 ? h : pass.maxPool2d(h), pass)
            skips.append(h)
        }
        h = bottleneck(pass.maxPool2d(h), pass)
        for (upconv, decoder) in zip(upconvs, decoders) {
            let skip = skips.removeLast()
            let up = upconv(h, pass)
            let aligned = pass.pad(up, centeredOn: skip)
            h = decoder(pass.concatChannels(aligned, skip), pass)
        }
        return head(h, pass)
    }

}
