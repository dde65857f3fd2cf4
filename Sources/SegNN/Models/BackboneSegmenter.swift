import SegCore

/// torchvision's `FCN` and `DeepLabV3` (`torchvision.models.segmentation`): a ResNet backbone,
/// a classifier head on layer4 and, with `auxiliary`, an `FCNHead` on layer3; both outputs are
/// resized bilinearly (align_corners false) to the input. Names as torchvision's state_dict:
/// `backbone.layer1.0.downsample.1.running_var`, `classifier.0.convs.4.1.weight`,
/// `aux_classifier.4.bias`, so a converted torchvision checkpoint loads as is.
public final class BackboneSegmenter: AuxiliaryHeadModel {
    public enum Head: String, Sendable { case fcn, deeplabv3 }

    public let store = ParameterStore()
    public let inputChannels: Int, classes: Int
    public let head: Head, depth: Int, width: Int
    let backbone: ResNetBackbone
    let fcn: FCNHead?, deeplab: DeepLabHead?
    let auxClassifier: FCNHead?

    /// - Parameters:
    ///   - width: the backbone's stem channels (64 in torchvision); the DeepLab head has
    ///     4 x width channels (256), the auxiliary head reads layer3.
    public init(head: Head, inputChannels: Int, classes: Int, depth: Int, width: Int = 64, auxiliary: Bool, seed: UInt64) {
        self.head = head; self.inputChannels = inputChannels; self.classes = classes; self.depth = depth; self.width = width
        var rng = SeededGenerator(seed: seed)
        backbone = ResNetBackbone(store: store, prefix: "backbone", inputChannels: inputChannels, depth: depth, width: width,
                                  generator: &rng)
        switch head {
        case .fcn:
            fcn = FCNHead(store: store, name: "classifier", inputChannels: backbone.outChannels, classes: classes, generator: &rng)
            deeplab = nil
        case .deeplabv3:
            deeplab = DeepLabHead(store: store, name: "classifier", inputChannels: backbone.outChannels, classes: classes,
                                  channels: 4 * width, generator: &rng)
            fcn = nil
        }
        auxClassifier = auxiliary
            ? FCNHead(store: store, name: "aux_classifier", inputChannels: backbone.auxChannels, classes: classes, generator: &rng)
            : nil
        store.seal()
    }

    public var hasAuxiliaryHead: Bool { auxClassifier != nil }

    public func outputs(_ x: Tensor, _ pass: Pass, auxiliary: Bool) -> [(logits: Tensor, weight: Float)] {
        let features = backbone(x, pass, aux: auxiliary && auxClassifier != nil)
        let main = fcn.map { $0(features.out, pass) } ?? deeplab!(features.out, pass)
        var result = [(pass.resizeBilinear(main, like: x, alignCorners: false), Float(1))]
        if let aux = features.aux, let auxClassifier {
            result.append((pass.resizeBilinear(auxClassifier(aux, pass), like: x, alignCorners: false), 0.5))
        }
        return result
    }

}
