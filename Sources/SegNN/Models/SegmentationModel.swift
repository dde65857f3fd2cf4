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

public enum ModelArchitecture: String, CaseIterable, Sendable {
    case unet, unet_add, unet_shallow
    /// The portrait UNet (transposed-conv upsampling, mateuszbuda's names; `width` = init_features).
    case unet_tconv
    /// The M2NIST notebook's tiny FCN (`width` unused).
    case fcn_m2nist
    /// torchvision's segmentation models (ResNet backbone; `width` = stem channels, 64 there).
    case fcn_resnet50, fcn_resnet101, deeplabv3_resnet50, deeplabv3_resnet101
    /// FCN-8s on VGG16-BN (torchvision's `features.N` names; `width` = 64 there).
    case fcn8s
    /// PSPNet on a dilated ResNet (semseg's layout; `backbone_depth`, `width` as above).
    case pspnet
    /// Diagnostic models for the gradient-readiness tests: parameters registered in the reverse
    /// of their use, and one convolution applied twice around a residual sum.
    case probe_reversed, probe_tied

    /// What the rest of segdist needs to know of an architecture, in one place (with `make`,
    /// the only places a new model is added).
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
    }

    public var traits: Traits {
        switch self {
        case .unet, .unet_add, .unet_tconv: return Traits(downsamplings: 4)
        case .unet_shallow: return Traits(downsamplings: 2)
        case .fcn_m2nist: return Traits(downsamplings: 4)   // its smallest input: (n - 4) / 2 - 2) / 2 >= 1
        case .fcn8s: return Traits(downsamplings: 5)
        case .fcn_resnet50: return Traits(downsamplings: 5, defaultBackboneDepth: 50, isTorchvisionModel: true)
        case .fcn_resnet101: return Traits(downsamplings: 5, defaultBackboneDepth: 101, isTorchvisionModel: true)
        case .deeplabv3_resnet50:
            return Traits(downsamplings: 5, defaultBackboneDepth: 50, needsTwoImagesPerPass: true, isTorchvisionModel: true)
        case .deeplabv3_resnet101:
            return Traits(downsamplings: 5, defaultBackboneDepth: 101, needsTwoImagesPerPass: true, isTorchvisionModel: true)
        case .pspnet: return Traits(downsamplings: 5, defaultBackboneDepth: 50, needsTwoImagesPerPass: true)
        case .probe_reversed: return Traits(downsamplings: 1)
        case .probe_tied: return Traits(downsamplings: 0)
        }
    }

    public var defaultBackboneDepth: Int? { traits.defaultBackboneDepth }
    public var needsTwoImagesPerPass: Bool { traits.needsTwoImagesPerPass }
    public var downsamplings: Int { traits.downsamplings }
    public var isTorchvisionModel: Bool { traits.isTorchvisionModel }

    /// - Parameters:
    ///   - backboneDepth: overrides the ResNet depth of the name (18, 34, 50, 101).
    ///   - auxiliary: adds the auxiliary FCN head on layer3 (ResNet models).
    public func make(inputChannels: Int, classes: Int, width: Int, seed: UInt64, backboneDepth: Int? = nil,
                     auxiliary: Bool = false) -> SegmentationModel {
        let depth = backboneDepth ?? defaultBackboneDepth ?? 50
        switch self {
        case .fcn_resnet50, .fcn_resnet101:
            return BackboneSegmenter(head: .fcn, inputChannels: inputChannels, classes: classes, depth: depth, width: width,
                                     auxiliary: auxiliary, seed: seed)
        case .deeplabv3_resnet50, .deeplabv3_resnet101:
            return BackboneSegmenter(head: .deeplabv3, inputChannels: inputChannels, classes: classes, depth: depth, width: width,
                                     auxiliary: auxiliary, seed: seed)
        case .unet: return UNet(inputChannels: inputChannels, classes: classes, width: width, depth: 4, skip: .concat, seed: seed)
        case .unet_add: return UNet(inputChannels: inputChannels, classes: classes, width: width, depth: 4, skip: .add, seed: seed)
        case .unet_shallow: return UNet(inputChannels: inputChannels, classes: classes, width: width, depth: 2, skip: .concat, seed: seed)
        case .fcn8s: return FCN8s(inputChannels: inputChannels, classes: classes, width: width, seed: seed)
        case .pspnet:
            return PSPNet(inputChannels: inputChannels, classes: classes, depth: depth, width: width, auxiliary: auxiliary, seed: seed)
        case .unet_tconv: return TransposedConvUNet(inputChannels: inputChannels, classes: classes, width: width, seed: seed)
        case .fcn_m2nist: return M2NISTFCN(inputChannels: inputChannels, classes: classes, seed: seed)
        case .probe_reversed: return ReversedProbe(inputChannels: inputChannels, classes: classes, width: width, seed: seed)
        case .probe_tied: return TiedProbe(inputChannels: inputChannels, classes: classes, width: width, seed: seed)
        }
    }
}
