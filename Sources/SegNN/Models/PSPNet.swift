import SegCore

/// PSPNet (Zhao et al. 2017, in the layout of the widely used hszhao/semseg code): a dilated
/// ResNet backbone under `backbone.` (torchvision's names), a pyramid pooling module over bins
/// 1, 2, 3, 6 (adaptive average pool, 1x1 conv + BN + ReLU to in/4 channels, bilinear back,
/// concatenated with the features), a 3x3 conv + BN + ReLU head with dropout 0.1 and a 1x1
/// classifier, bilinear to the input; optionally an auxiliary head on layer3 (loss weight 0.4,
/// as the paper). Resizes use align_corners true, as semseg; dropout is element-wise.
/// Names: `ppm.features.<i>.{1: conv, 2: bn}`, `cls.{0: conv, 1: bn, 4: conv}`,
/// `aux.{0, 1, 4}`. `width` is the stem's channels (64 at full size, giving 512- and
/// 256-channel heads).
public final class PSPNet: AuxiliaryHeadModel {
    public static let bins = [1, 2, 3, 6]
    public let store = ParameterStore()
    public let inputChannels: Int, classes: Int
    let backbone: ResNetBackbone
    let stages: [ConvBNReLU]
    let head: ConvBNReLU, classifier: Conv2d
    let auxHead: (ConvBNReLU, Conv2d)?

    public init(inputChannels: Int, classes: Int, depth: Int, width: Int = 64, auxiliary: Bool, seed: UInt64) {
        self.inputChannels = inputChannels; self.classes = classes
        var rng = SeededGenerator(seed: seed)
        backbone = ResNetBackbone(store: store, prefix: "backbone", inputChannels: inputChannels, depth: depth, width: width,
                                  generator: &rng)
        let features = backbone.outChannels, reduced = features / Self.bins.count
        var stages: [ConvBNReLU] = []
        for i in Self.bins.indices {
            stages.append(ConvBNReLU(store: store, name: "ppm.features.\(i)", index: 1, inputChannels: features,
                                     outputChannels: reduced, kernelSize: 1, generator: &rng))
        }
        self.stages = stages
        head = ConvBNReLU(store: store, name: "cls", inputChannels: 2 * features, outputChannels: 8 * width, kernelSize: 3,
                          padding: 1, generator: &rng)
        classifier = Conv2d(store: store, name: "cls.4", inputChannels: 8 * width, outputChannels: classes, kernelSize: 1,
                            generator: &rng)
        auxHead = auxiliary
            ? (ConvBNReLU(store: store, name: "aux", inputChannels: backbone.auxChannels, outputChannels: 4 * width, kernelSize: 3,
                          padding: 1, generator: &rng),
               Conv2d(store: store, name: "aux.4", inputChannels: 4 * width, outputChannels: classes, kernelSize: 1, generator: &rng))
            : nil
        store.seal()
    }

    public var hasAuxiliaryHead: Bool { auxHead != nil }

    public func outputs(_ x: Tensor, _ pass: Pass, auxiliary: Bool) -> [(logits: Tensor, weight: Float)] {
        let features = backbone(x, pass, aux: auxiliary && auxHead != nil)
        var pyramid = features.out
        for (bin, stage) in zip(Self.bins, stages) {
            let pooled = stage(pass.adaptiveAvgPool2d(features.out, height: bin, width: bin), pass)
            pyramid = pass.concatChannels(pyramid, pass.resizeBilinear(pooled, like: features.out, alignCorners: true))
        }
        let logits = classifier(pass.dropout(head(pyramid, pass), p: 0.1), pass)
        var result = [(pass.resizeBilinear(logits, like: x, alignCorners: true), Float(1))]
        if let layer3 = features.aux, let (auxConv, auxClassifier) = auxHead {
            let aux = auxClassifier(pass.dropout(auxConv(layer3, pass), p: 0.1), pass)
            result.append((pass.resizeBilinear(aux, like: x, alignCorners: true), 0.4))
        }
        return result
    }
}
