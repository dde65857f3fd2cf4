import SegCore

/// A network that maps images (N, Cin, H, W) to per-pixel class logits (N, classes, H, W).
/// Models are written forward-only: a training pass records the tape that computes every
/// parameter gradient into `store.gradients`.
public protocol SegmentationModel: AnyObject {
    var store: ParameterStore { get }
    var inputChannels: Int { get }
    var classes: Int { get }
    func forward(_ x: Tensor, _ pass: Pass) -> Tensor
    /// Multiply-adds of the convolutions in one forward pass, and of those that also need an
    /// input gradient in backward (all but the first layer's).
    func convolutionWork(batch: Int, height: Int, width: Int) -> (forward: Int, inputGradient: Int)
}

extension SegmentationModel {
    /// A forward pass on the store's backend that records nothing (`training` picks batch
    /// norm's statistics: the batch's, updating the running ones, or the running ones).
    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        forward(store.backend.upload(x), Pass(backend: store.backend, training: training, tape: nil))
    }
}

public enum ModelArchitecture: String, CaseIterable, Sendable {
    case unet, unet_add, unet_shallow
    /// Diagnostic models for the gradient-readiness tests: parameters registered in the reverse
    /// of their use, and one convolution applied twice around a residual sum.
    case probe_reversed, probe_tied

    public func make(inputChannels: Int, classes: Int, width: Int, seed: UInt64) -> SegmentationModel {
        switch self {
        case .unet: return UNet(inputChannels: inputChannels, classes: classes, width: width, depth: 4, skip: .concat, seed: seed)
        case .unet_add: return UNet(inputChannels: inputChannels, classes: classes, width: width, depth: 4, skip: .add, seed: seed)
        case .unet_shallow: return UNet(inputChannels: inputChannels, classes: classes, width: width, depth: 2, skip: .concat, seed: seed)
        case .probe_reversed: return ReversedProbe(inputChannels: inputChannels, classes: classes, width: width, seed: seed)
        case .probe_tied: return TiedProbe(inputChannels: inputChannels, classes: classes, width: width, seed: seed)
        }
    }

    /// Input sides must survive this many halvings (each max-pool floors).
    public var downsamplings: Int {
        switch self {
        case .unet, .unet_add: return 4
        case .unet_shallow: return 2
        case .probe_reversed: return 1
        case .probe_tied: return 0
        }
    }
}
