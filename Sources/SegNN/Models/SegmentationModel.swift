import SegCore

/// A network that maps images (N, Cin, H, W) to per-pixel class logits (N, classes, H, W).
/// Models are written forward-only: a training pass records the tape that computes every
/// parameter gradient into `store.gradients`.
public protocol SegmentationModel: AnyObject {
    var store: ParameterStore { get }
    var inputChannels: Int { get }
    var classes: Int { get }
    func forward(_ x: Tensor, _ pass: Pass) -> Tensor
    /// The outputs a training loss is taken over, each with its weight: the logits alone for
    /// most models; main and auxiliary logits (weights 1 and 0.5) for models with an aux head.
    func trainingOutputs(_ x: Tensor, _ pass: Pass) -> [(logits: Tensor, weight: Float)]
}

extension SegmentationModel {
    public func trainingOutputs(_ x: Tensor, _ pass: Pass) -> [(logits: Tensor, weight: Float)] { [(forward(x, pass), 1)] }

    /// A forward pass on the store's backend that records nothing (`training` picks batch
    /// norm's statistics: the batch's, updating the running ones, or the running ones).
    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        forward(store.backend.upload(x), Pass(backend: store.backend, training: training, tape: nil))
    }
}

/// A model with an optional auxiliary head (torchvision's FCN / DeepLabV3, PSPNet): `outputs`
/// gives the main logits (weight 1) and, when asked, the auxiliary logits (weight 0.5, the
/// reference recipes'); inference uses the main ones, training both when the head exists.
public protocol AuxiliaryHeadModel: SegmentationModel {
    var hasAuxiliaryHead: Bool { get }
    func outputs(_ x: Tensor, _ pass: Pass, auxiliary: Bool) -> [(logits: Tensor, weight: Float)]
}

extension AuxiliaryHeadModel {
    public func forward(_ x: Tensor, _ pass: Pass) -> Tensor { outputs(x, pass, auxiliary: false)[0].logits }
    public func trainingOutputs(_ x: Tensor, _ pass: Pass) -> [(logits: Tensor, weight: Float)] {
        outputs(x, pass, auxiliary: hasAuxiliaryHead)
    }
}

/// The models `model:` names. Everything segdist knows of one is its row of `entry` below —
/// adding a model is adding a case and its row.
public enum ModelArchitecture: String, CaseIterable, Sendable {
    case unet, unet_add, unet_shallow, unet_tconv, fcn_m2nist
    case fcn_resnet50, fcn_resnet101, deeplabv3_resnet50, deeplabv3_resnet101
    case fcn8s, pspnet
    case lraspp_mobilenet_v3_large, deeplabv3_mobilenet_v3_large
    case deeplabv3plus

    /// What the rest of segdist needs to know of an architecture.
    public struct Traits: Sendable {
        /// Input sides must survive this many halvings (each max-pool floors).
        public var downsamplings: Int
        /// The backbone depth in the model's name (nil for models without a ResNet backbone).
        public var defaultBackboneDepth: Int? = nil
        /// Training-mode batch norm over one value per image (DeepLabV3's image pooling, PSPNet's
        /// bins) needs at least two images in every forward pass (PyTorch refuses one as well).
        public var needsTwoImagesPerPass = false
        /// torchvision's own segmentation models: their state_dicts run as torchvision runs them.
        public var isTorchvisionModel = false
        /// Whether `aux_loss` can add an auxiliary head.
        public var takesAuxiliaryHead = false
    }

    /// What a model is built from.
    public struct Spec {
        public var inputChannels: Int, classes: Int, width: Int, seed: UInt64
        /// The ResNet depth (the name's unless the config overrides it).
        public var backboneDepth: Int
        /// The auxiliary FCN head on layer3 (ResNet models).
        public var auxiliary: Bool
    }

    /// One row of the model table.
    public struct Entry {
        /// Where it comes from and whose state_dict names it carries (help text, README).
        public let origin: String
        public let traits: Traits
        /// ONNX export: whether the graph takes any input size (false: the traced size only).
        public let exportsAnySize: Bool
        let build: (Spec) -> SegmentationModel
        /// Width, channels, classes, depth, aux head read from a state_dict's shapes.
        let settings: ([String: [Int]]) -> TensorDeterminedSettings
        /// A state_dict's names are this model's (nil: never guessed — it shares another's names).
        let recognises: ((Set<String>) -> Bool)?
    }

    public var entry: Entry {
        switch self {
        case .unet:
            return Entry(origin: "UNet, milesial layout (the lab's); bilinear up, concatenated skips", traits: Traits(downsamplings: 4),
                         exportsAnySize: true, build: { UNet(inputChannels: $0.inputChannels, classes: $0.classes, width: $0.width, depth: 4, skip: .concat, seed: $0.seed) },
                         settings: unetSettings, recognises: { $0.contains("inc.conv.conv.0.weight") && $0.contains("down3.mpconv.1.conv.0.weight") })
        case .unet_add:
            return Entry(origin: "UNet_add (the lab's): skips added instead of concatenated", traits: Traits(downsamplings: 4),
                         exportsAnySize: true, build: { UNet(inputChannels: $0.inputChannels, classes: $0.classes, width: $0.width, depth: 4, skip: .add, seed: $0.seed) },
                         settings: unetSettings, recognises: nil)
        case .unet_shallow:
            return Entry(origin: "UNet_shallow (the lab's): two levels", traits: Traits(downsamplings: 2),
                         exportsAnySize: true, build: { UNet(inputChannels: $0.inputChannels, classes: $0.classes, width: $0.width, depth: 2, skip: .concat, seed: $0.seed) },
                         settings: unetSettings, recognises: { $0.contains("inc.conv.conv.0.weight") && !$0.contains("down3.mpconv.1.conv.0.weight") })
        case .unet_tconv:
            return Entry(origin: "the portrait UNet: transposed-conv upsampling, mateuszbuda's names; width = init_features",
                         traits: Traits(downsamplings: 4), exportsAnySize: true,
                         build: { TransposedConvUNet(inputChannels: $0.inputChannels, classes: $0.classes, width: $0.width, seed: $0.seed) },
                         settings: { shapes in
                             var s = TensorDeterminedSettings(first: "encoder1.enc1conv1.weight", shapes)
                             s.classes = shapes["conv.weight"]?.first; return s
                         }, recognises: { $0.contains("encoder1.enc1conv1.weight") })
        case .fcn_m2nist:
            // its smallest input: ((n - 4) / 2 - 2) / 2 >= 1
            return Entry(origin: "the M2NIST notebook's tiny FCN (width unused)", traits: Traits(downsamplings: 4), exportsAnySize: true,
                         build: { M2NISTFCN(inputChannels: $0.inputChannels, classes: $0.classes, seed: $0.seed) },
                         settings: { shapes in
                             var s = TensorDeterminedSettings()
                             s.inputChannels = shapes["encoder.0.weight"].flatMap { $0.count > 1 ? $0[1] : nil }
                             s.classes = shapes["classifier.2.weight"]?.first; return s
                         }, recognises: { $0.contains("encoder.0.weight") && $0.contains("upsample.0.weight") })
        case .fcn_resnet50, .fcn_resnet101:
            return Entry(origin: "torchvision's \(rawValue): dilated ResNet, FCN head; width = stem channels (64 there)",
                         traits: Traits(downsamplings: 5, defaultBackboneDepth: self == .fcn_resnet50 ? 50 : 101, isTorchvisionModel: true,
                                        takesAuxiliaryHead: true),
                         exportsAnySize: true,
                         build: { BackboneSegmenter(head: .fcn, inputChannels: $0.inputChannels, classes: $0.classes, depth: $0.backboneDepth,
                                                    width: $0.width, auxiliary: $0.auxiliary, seed: $0.seed) },
                         settings: { resnetSettings($0, classifier: "classifier.4.weight", aux: "aux_classifier.") },
                         recognises: self == .fcn_resnet101 ? nil : { $0.contains("classifier.0.weight") && $0.contains("backbone.conv1.weight") })
        case .deeplabv3_resnet50, .deeplabv3_resnet101:
            return Entry(origin: "torchvision's \(rawValue): dilated ResNet, ASPP head; width = stem channels (64 there)",
                         traits: Traits(downsamplings: 5, defaultBackboneDepth: self == .deeplabv3_resnet50 ? 50 : 101,
                                        needsTwoImagesPerPass: true, isTorchvisionModel: true, takesAuxiliaryHead: true),
                         exportsAnySize: true,
                         build: { BackboneSegmenter(head: .deeplabv3, inputChannels: $0.inputChannels, classes: $0.classes, depth: $0.backboneDepth,
                                                    width: $0.width, auxiliary: $0.auxiliary, seed: $0.seed) },
                         settings: { resnetSettings($0, classifier: "classifier.4.weight", aux: "aux_classifier.") },
                         recognises: self == .deeplabv3_resnet101 ? nil
                             : { $0.contains("classifier.0.convs.0.0.weight") && $0.contains("backbone.conv1.weight") })
        case .fcn8s:
            return Entry(origin: "FCN-8s on VGG16-BN (torchvision's features.N names; width = 64 there)", traits: Traits(downsamplings: 5),
                         exportsAnySize: true, build: { FCN8s(inputChannels: $0.inputChannels, classes: $0.classes, width: $0.width, seed: $0.seed) },
                         settings: { shapes in
                             var s = TensorDeterminedSettings(first: "features.0.weight", shapes)
                             s.classes = shapes["score_fr.weight"]?.first; return s
                         }, recognises: { $0.contains("score_fr.weight") })
        case .pspnet:
            return Entry(origin: "PSPNet on a dilated ResNet (semseg's layout; backbone_depth, width as the ResNet models)",
                         traits: Traits(downsamplings: 5, defaultBackboneDepth: 50, needsTwoImagesPerPass: true, takesAuxiliaryHead: true),
                         exportsAnySize: false,   // the pyramid pooling's bins are fixed at the traced size
                         build: { PSPNet(inputChannels: $0.inputChannels, classes: $0.classes, depth: $0.backboneDepth, width: $0.width,
                                         auxiliary: $0.auxiliary, seed: $0.seed) },
                         settings: { resnetSettings($0, classifier: "cls.4.weight", aux: "aux.") },
                         recognises: { $0.contains("cls.4.weight") })
        case .deeplabv3plus:
            return Entry(origin: "DeepLabV3+ (output stride 16, separable ASPP, stride-4 decoder) on a ResNet, segmentation_models_pytorch's layout; width = stem channels (64 there)",
                         traits: Traits(downsamplings: 5, defaultBackboneDepth: 50, needsTwoImagesPerPass: true),
                         exportsAnySize: true,
                         build: { DeepLabV3Plus(inputChannels: $0.inputChannels, classes: $0.classes, depth: $0.backboneDepth, width: $0.width,
                                                seed: $0.seed) },
                         settings: { resnetSettings($0, classifier: "segmentation_head.0.weight", aux: nil, trunk: "encoder") },
                         recognises: { $0.contains("decoder.aspp.0.convs.0.0.weight") && $0.contains("encoder.conv1.weight") })
        case .lraspp_mobilenet_v3_large:
            return Entry(origin: "torchvision's LR-ASPP on a dilated MobileNetV3-Large; width = 16 x width_mult (16 there)",
                         traits: Traits(downsamplings: 4, isTorchvisionModel: true), exportsAnySize: true,
                         build: { LRASPP(inputChannels: $0.inputChannels, classes: $0.classes, width: $0.width, seed: $0.seed) },
                         settings: { mobileNetSettings($0, classifier: "classifier.low_classifier.weight") },
                         recognises: { $0.contains("classifier.low_classifier.weight") })
        case .deeplabv3_mobilenet_v3_large:
            return Entry(origin: "torchvision's DeepLabV3 on a dilated MobileNetV3-Large; width = 16 x width_mult (16 there)",
                         traits: Traits(downsamplings: 4, needsTwoImagesPerPass: true, isTorchvisionModel: true, takesAuxiliaryHead: true),
                         exportsAnySize: true,
                         build: { MobileNetDeepLabV3(inputChannels: $0.inputChannels, classes: $0.classes, width: $0.width,
                                                     auxiliary: $0.auxiliary, seed: $0.seed) },
                         settings: { mobileNetSettings($0, classifier: "classifier.4.weight") },
                         recognises: { $0.contains("classifier.0.convs.0.0.weight") && $0.contains("backbone.16.0.weight") })
        }
    }

    public var traits: Traits { entry.traits }
    public var defaultBackboneDepth: Int? { traits.defaultBackboneDepth }
    public var needsTwoImagesPerPass: Bool { traits.needsTwoImagesPerPass }
    public var downsamplings: Int { traits.downsamplings }
    public var isTorchvisionModel: Bool { traits.isTorchvisionModel }
    public var takesAuxiliaryHead: Bool { traits.takesAuxiliaryHead }

    /// - Parameters:
    ///   - backboneDepth: overrides the ResNet depth of the name (18, 34, 50, 101).
    ///   - auxiliary: adds the auxiliary FCN head on layer3 (ResNet models).
    public func make(inputChannels: Int, classes: Int, width: Int, seed: UInt64, backboneDepth: Int? = nil,
                     auxiliary: Bool = false) -> SegmentationModel {
        entry.build(Spec(inputChannels: inputChannels, classes: classes, width: width, seed: seed,
                         backboneDepth: backboneDepth ?? defaultBackboneDepth ?? 50, auxiliary: auxiliary))
    }
}
