import SegCore

/// FCN-8s (Long et al.) in its same-padding variant on a VGG16-BN backbone: torchvision's
/// `vgg16_bn` convolutions under its `features.N` names (conv, BN, ReLU triples and max-pools),
/// fc6 (7x7, padding 3) and fc7 (1x1) as convolutions with ReLU and dropout 0.5, `score_fr`, and
/// the skips: x2 `upscore2` + `score_pool4`(pool4), x2 `upscore_pool4` + `score_pool3`(pool3),
/// x8 `upscore8` back to the input. The upsampling transposed convolutions start as bilinear
/// kernels (learnable, no bias); each sum pads or crops the upsampled map to its skip, and the
/// output to the input, so any size works. `width` is the first block's channels (64 in VGG16;
/// fc6/fc7 have 64 x width = 4096). torchvision's `classifier.0/3` Linear weights become fc6/fc7
/// by a reshape (`w.view(4096, 512, 7, 7)`) when converting.
public final class FCN8s: SegmentationModel {
    public let store = ParameterStore()
    public let inputChannels: Int, classes: Int
    /// VGG16's blocks: convolutions per block, channels in units of `width`.
    static let blocks: [(convs: Int, channels: Int)] = [(2, 1), (2, 2), (3, 4), (3, 8), (3, 8)]
    let stages: [[(Conv2d, BatchNorm2d)]]
    let fc6: Conv2d, fc7: Conv2d, scoreFr: Conv2d, scorePool4: Conv2d, scorePool3: Conv2d
    let upscore2: ConvTranspose2d, upscorePool4: ConvTranspose2d, upscore8: ConvTranspose2d

    public init(inputChannels: Int, classes: Int, width: Int = 64, seed: UInt64) {
        self.inputChannels = inputChannels; self.classes = classes
        var rng = SeededGenerator(seed: seed)
        var index = 0, channels = inputChannels
        var stages: [[(Conv2d, BatchNorm2d)]] = []
        for (convs, units) in Self.blocks {
            var stage: [(Conv2d, BatchNorm2d)] = []
            for _ in 0..<convs {
                stage.append((Conv2d(store: store, name: "features.\(index)", inputChannels: channels, outputChannels: units * width,
                                     kernelSize: 3, padding: 1, generator: &rng),
                              BatchNorm2d(store: store, name: "features.\(index + 1)", channels: units * width, fusedReLU: true)))
                channels = units * width
                index += 3
            }
            index += 1   // the max-pool
            stages.append(stage)
        }
        self.stages = stages
        let fc = 64 * width
        fc6 = Conv2d(store: store, name: "fc6", inputChannels: 8 * width, outputChannels: fc, kernelSize: 7, padding: 3, generator: &rng)
        fc7 = Conv2d(store: store, name: "fc7", inputChannels: fc, outputChannels: fc, kernelSize: 1, generator: &rng)
        scoreFr = Conv2d(store: store, name: "score_fr", inputChannels: fc, outputChannels: classes, kernelSize: 1, generator: &rng)
        scorePool4 = Conv2d(store: store, name: "score_pool4", inputChannels: 8 * width, outputChannels: classes, kernelSize: 1,
                            generator: &rng)
        scorePool3 = Conv2d(store: store, name: "score_pool3", inputChannels: 4 * width, outputChannels: classes, kernelSize: 1,
                            generator: &rng)
        upscore2 = ConvTranspose2d(store: store, name: "upscore2", inputChannels: classes, outputChannels: classes, kernelSize: 4,
                                   stride: 2, padding: 1, bias: false, bilinear: true, generator: &rng)
        upscorePool4 = ConvTranspose2d(store: store, name: "upscore_pool4", inputChannels: classes, outputChannels: classes,
                                       kernelSize: 4, stride: 2, padding: 1, bias: false, bilinear: true, generator: &rng)
        upscore8 = ConvTranspose2d(store: store, name: "upscore8", inputChannels: classes, outputChannels: classes, kernelSize: 16,
                                   stride: 8, padding: 4, bias: false, bilinear: true, generator: &rng)
        store.seal()
    }

    public func forward(_ x: Tensor, _ pass: Pass) -> Tensor {
        var h = x
        var pools: [Tensor] = []
        for stage in stages {
            for (conv, bn) in stage { h = bn(conv, h, pass) }
            h = pass.maxPool2d(h)
            pools.append(h)
        }
        h = pass.dropout(pass.relu(fc6(h, pass)), p: 0.5)
        h = pass.dropout(pass.relu(fc7(h, pass)), p: 0.5)
        func fused(_ up: Tensor, _ skip: Tensor) -> Tensor {
            pass.add(pass.pad(up, centeredOn: skip), skip)
        }
        h = fused(upscore2(scoreFr(h, pass), pass), scorePool4(pools[3], pass))
        h = fused(upscorePool4(h, pass), scorePool3(pools[2], pass))
        let y = upscore8(h, pass)
        return pass.pad(y, centeredOn: x)
    }
}
