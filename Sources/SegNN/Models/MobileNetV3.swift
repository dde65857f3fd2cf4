import SegCore

/// torchvision's MobileNetV3-Large `features` as its segmentation models build it
/// (`mobilenet_v3_large(dilated=True)`): a hardswish stem, 15 inverted residual blocks
/// (1x1 expansion, depthwise k x k, squeeze-and-excitation, 1x1 projection, a residual when the
/// shape allows) whose last stage is dilated by 2 instead of strided (output stride 16), and a
/// 1x1 conv to 6 x 160 channels. Batch norms use eps 0.001 and momentum 0.01, as torchvision's.
/// Names `<prefix>.<i>.block.<j>.…` as torchvision's `features.<i>` under the segmentation
/// models' `backbone.` (IntermediateLayerGetter keeps the indices).
///
/// `width` is 16 x torchvision's `width_mult` (16: torchvision's network); every channel count
/// is scaled and rounded as torchvision's `_make_divisible(c * width_mult, 8)`.
public final class MobileNetV3Backbone {
    /// Features after block 4 (output stride 8, 40 channels at width 16): LR-ASPP's `low`,
    /// DeepLabV3's `aux`; and after the last conv (stride 16, 960 channels).
    public let lowChannels: Int, highChannels: Int
    let stem: ConvNormActivation
    let blocks: [InvertedResidual]
    let last: ConvNormActivation
    static let lowBlock = 4

    /// (input, kernel, expanded, output, squeeze-and-excitation, hardswish, stride, dilation)
    /// of mobilenet_v3_large, in its base channels.
    static let large: [(Int, Int, Int, Int, Bool, Bool, Int, Int)] = [
        (16, 3, 16, 16, false, false, 1, 1), (16, 3, 64, 24, false, false, 2, 1), (24, 3, 72, 24, false, false, 1, 1),
        (24, 5, 72, 40, true, false, 2, 1), (40, 5, 120, 40, true, false, 1, 1), (40, 5, 120, 40, true, false, 1, 1),
        (40, 3, 240, 80, false, true, 2, 1), (80, 3, 200, 80, false, true, 1, 1), (80, 3, 184, 80, false, true, 1, 1),
        (80, 3, 184, 80, false, true, 1, 1), (80, 3, 480, 112, true, true, 1, 1), (112, 3, 672, 112, true, true, 1, 1),
        (112, 5, 672, 160, true, true, 2, 2), (160, 5, 960, 160, true, true, 1, 2), (160, 5, 960, 160, true, true, 1, 2),
    ]

    /// torchvision's `_make_divisible(v, 8)`: the nearest multiple of 8, at least 8, never
    /// more than 10% below v.
    static func divisible(_ v: Double) -> Int {
        var rounded = max(8, Int(v + 4) / 8 * 8)
        if Double(rounded) < 0.9 * v { rounded += 8 }
        return rounded
    }

    public init(store: ParameterStore, prefix: String, inputChannels: Int, width: Int, generator rng: inout SeededGenerator) {
        let multiplier = Double(width) / 16
        func scaled(_ c: Int) -> Int { Self.divisible(Double(c) * multiplier) }
        let first = scaled(16)
        stem = ConvNormActivation(store: store, name: "\(prefix).0", inputChannels: inputChannels, outputChannels: first, kernelSize: 3,
                                  stride: 2, activation: .hardswish, generator: &rng)
        var blocks: [InvertedResidual] = []
        for (i, c) in Self.large.enumerated() {
            blocks.append(InvertedResidual(store: store, name: "\(prefix).\(i + 1)", inputChannels: scaled(c.0), kernelSize: c.1,
                                           expandedChannels: scaled(c.2), outputChannels: scaled(c.3), squeezeExcite: c.4,
                                           activation: c.5 ? .hardswish : .relu, stride: c.6, dilation: c.7, generator: &rng))
        }
        self.blocks = blocks
        let lastIn = scaled(160)
        last = ConvNormActivation(store: store, name: "\(prefix).\(blocks.count + 1)", inputChannels: lastIn, outputChannels: 6 * lastIn,
                                  kernelSize: 1, activation: .hardswish, generator: &rng)
        lowChannels = scaled(Self.large[Self.lowBlock - 1].3)
        highChannels = 6 * lastIn
    }

    public func callAsFunction(_ x: Tensor, _ pass: Pass) -> (low: Tensor, high: Tensor) {
        var h = stem(x, pass), low = h
        for (i, block) in blocks.enumerated() {
            h = block(h, pass)
            if i + 1 == Self.lowBlock { low = h }
        }
        return (low, last(h, pass))
    }
}

/// torchvision's `Conv2dNormActivation`: conv (no bias, padding (k - 1) / 2 x dilation) - BN -
/// activation, registered as `<name>.0` and `<name>.1`.
final class ConvNormActivation {
    enum Activation { case relu, hardswish, none }
    let conv: Conv2d, bn: BatchNorm2d, activation: Activation

    init(store: ParameterStore, name: String, inputChannels: Int, outputChannels: Int, kernelSize: Int, stride: Int = 1,
         dilation: Int = 1, groups: Int = 1, activation: Activation, generator: inout SeededGenerator) {
        conv = Conv2d(store: store, name: "\(name).0", inputChannels: inputChannels, outputChannels: outputChannels,
                      kernelSize: kernelSize, stride: stride, padding: (kernelSize - 1) / 2 * dilation, dilation: dilation,
                      groups: groups, bias: false, initializer: .kaimingNormalFanOut, generator: &generator)
        bn = BatchNorm2d(store: store, name: "\(name).1", channels: outputChannels, momentum: 0.01, eps: 0.001,
                         fusedReLU: activation == .relu)
        self.activation = activation
    }

    func callAsFunction(_ x: Tensor, _ pass: Pass) -> Tensor {
        let y = bn(conv, x, pass)
        return activation == .hardswish ? pass.hardswish(y) : y
    }
}

/// torchvision's `SqueezeExcitation` with a hardsigmoid gate: global average, 1x1 (bias) -
/// ReLU - 1x1 (bias) - hardsigmoid, times the input per channel; `<name>.fc1`, `<name>.fc2`.
final class SqueezeExcitation {
    let fc1: Conv2d, fc2: Conv2d

    init(store: ParameterStore, name: String, channels: Int, squeezeChannels: Int, generator: inout SeededGenerator) {
        fc1 = Conv2d(store: store, name: "\(name).fc1", inputChannels: channels, outputChannels: squeezeChannels, kernelSize: 1,
                     initializer: .kaimingNormalFanOut, generator: &generator)
        fc2 = Conv2d(store: store, name: "\(name).fc2", inputChannels: squeezeChannels, outputChannels: channels, kernelSize: 1,
                     initializer: .kaimingNormalFanOut, generator: &generator)
    }

    func callAsFunction(_ x: Tensor, _ pass: Pass) -> Tensor {
        let pooled = pass.adaptiveAvgPool2d(x, height: 1, width: 1)
        return pass.scaleChannels(x, by: pass.hardsigmoid(fc2(pass.relu(fc1(pooled, pass)), pass)))
    }
}

/// torchvision's `InvertedResidual`: `<name>.block.<j>` = [1x1 expansion when it widens],
/// depthwise k x k (stride 1 where dilated), [squeeze-and-excitation], 1x1 projection (no
/// activation); the input added back when stride 1 keeps the channels.
final class InvertedResidual {
    let expand: ConvNormActivation?, depthwise: ConvNormActivation, se: SqueezeExcitation?, project: ConvNormActivation
    let residual: Bool

    init(store: ParameterStore, name: String, inputChannels: Int, kernelSize: Int, expandedChannels: Int, outputChannels: Int,
         squeezeExcite: Bool, activation: ConvNormActivation.Activation, stride: Int, dilation: Int,
         generator rng: inout SeededGenerator) {
        var j = 0
        func next() -> String { defer { j += 1 }; return "\(name).block.\(j)" }
        expand = expandedChannels == inputChannels ? nil
            : ConvNormActivation(store: store, name: next(), inputChannels: inputChannels, outputChannels: expandedChannels,
                                 kernelSize: 1, activation: activation, generator: &rng)
        depthwise = ConvNormActivation(store: store, name: next(), inputChannels: expandedChannels, outputChannels: expandedChannels,
                                       kernelSize: kernelSize, stride: dilation > 1 ? 1 : stride, dilation: dilation,
                                       groups: expandedChannels, activation: activation, generator: &rng)
        se = squeezeExcite
            ? SqueezeExcitation(store: store, name: next(), channels: expandedChannels,
                                squeezeChannels: MobileNetV3Backbone.divisible(Double(expandedChannels / 4)), generator: &rng)
            : nil
        project = ConvNormActivation(store: store, name: next(), inputChannels: expandedChannels, outputChannels: outputChannels,
                                     kernelSize: 1, activation: .none, generator: &rng)
        residual = stride == 1 && inputChannels == outputChannels
    }

    func callAsFunction(_ x: Tensor, _ pass: Pass) -> Tensor {
        var h = expand.map { $0(x, pass) } ?? x
        h = depthwise(h, pass)
        if let se { h = se(h, pass) }
        h = project(h, pass)
        return residual ? pass.add(h, x) : h
    }
}

/// torchvision's `lraspp_mobilenet_v3_large`: the backbone's stride-16 features through
/// `cbr` (1x1, BN, ReLU) gated by `scale` (global average, 1x1, sigmoid), resized to the
/// stride-8 features and classified there, plus a classifier of the stride-8 features; the sum
/// resized to the input. Names `backbone.*`, `classifier.{cbr.0, cbr.1, scale.1,
/// low_classifier, high_classifier}.*`; `inter_channels` 128 at width 16.
public final class LRASPP: SegmentationModel {
    public let store = ParameterStore()
    public let inputChannels: Int, classes: Int
    let backbone: MobileNetV3Backbone
    let cbr: ConvBNReLU, scale: Conv2d, lowClassifier: Conv2d, highClassifier: Conv2d

    public init(inputChannels: Int, classes: Int, width: Int = 16, seed: UInt64) {
        self.inputChannels = inputChannels; self.classes = classes
        var rng = SeededGenerator(seed: seed)
        backbone = MobileNetV3Backbone(store: store, prefix: "backbone", inputChannels: inputChannels, width: width, generator: &rng)
        let inter = 128 * width / 16
        cbr = ConvBNReLU(store: store, name: "classifier.cbr", inputChannels: backbone.highChannels, outputChannels: inter,
                         kernelSize: 1, generator: &rng)
        scale = Conv2d(store: store, name: "classifier.scale.1", inputChannels: backbone.highChannels, outputChannels: inter,
                       kernelSize: 1, bias: false, generator: &rng)
        lowClassifier = Conv2d(store: store, name: "classifier.low_classifier", inputChannels: backbone.lowChannels,
                               outputChannels: classes, kernelSize: 1, generator: &rng)
        highClassifier = Conv2d(store: store, name: "classifier.high_classifier", inputChannels: inter, outputChannels: classes,
                                kernelSize: 1, generator: &rng)
        store.seal()
    }

    public func forward(_ x: Tensor, _ pass: Pass) -> Tensor {
        let (low, high) = backbone(x, pass)
        let gate = pass.sigmoid(scale(pass.adaptiveAvgPool2d(high, height: 1, width: 1), pass))
        let gated = pass.resizeBilinear(pass.scaleChannels(cbr(high, pass), by: gate), like: low, alignCorners: false)
        let logits = pass.add(lowClassifier(low, pass), highClassifier(gated, pass))
        return pass.resizeBilinear(logits, like: x, alignCorners: false)
    }
}

/// torchvision's `deeplabv3_mobilenet_v3_large`: `DeepLabHead` (ASPP rates 12/24/36, 256
/// channels at width 16) on the stride-16 features and, with `auxiliary`, an `FCNHead` on the
/// stride-8 ones (loss weight 0.5); both resized to the input. Names `backbone.*`,
/// `classifier.*`, `aux_classifier.*`.
public final class MobileNetDeepLabV3: AuxiliaryHeadModel {
    public let store = ParameterStore()
    public let inputChannels: Int, classes: Int
    let backbone: MobileNetV3Backbone
    let head: DeepLabHead, auxClassifier: FCNHead?

    public init(inputChannels: Int, classes: Int, width: Int = 16, auxiliary: Bool, seed: UInt64) {
        self.inputChannels = inputChannels; self.classes = classes
        var rng = SeededGenerator(seed: seed)
        backbone = MobileNetV3Backbone(store: store, prefix: "backbone", inputChannels: inputChannels, width: width, generator: &rng)
        head = DeepLabHead(store: store, name: "classifier", inputChannels: backbone.highChannels, classes: classes,
                           channels: 256 * width / 16, generator: &rng)
        auxClassifier = auxiliary
            ? FCNHead(store: store, name: "aux_classifier", inputChannels: backbone.lowChannels, classes: classes, generator: &rng)
            : nil
        store.seal()
    }

    public var hasAuxiliaryHead: Bool { auxClassifier != nil }

    public func outputs(_ x: Tensor, _ pass: Pass, auxiliary: Bool) -> [(logits: Tensor, weight: Float)] {
        let (low, high) = backbone(x, pass)
        var result = [(pass.resizeBilinear(head(high, pass), like: x, alignCorners: false), Float(1))]
        if auxiliary, let auxClassifier {
            result.append((pass.resizeBilinear(auxClassifier(low, pass), like: x, alignCorners: false), 0.5))
        }
        return result
    }
}
