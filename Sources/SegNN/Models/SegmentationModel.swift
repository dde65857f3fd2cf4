import SegCore

/// A network that maps images (N, Cin, H, W) to per-pixel class logits (N, classes, H, W).
/// Layers cache what backward needs during a training forward; `backward` accumulates every
/// parameter gradient into `store.gradients`.
public protocol SegmentationModel: AnyObject {
    var store: ParameterStore { get }
    var inputChannels: Int { get }
    var classes: Int { get }
    func forward(_ x: Tensor, training: Bool) -> Tensor
    func backward(_ dLogits: Tensor)
    /// Multiply-adds of the convolutions in one forward pass, and of those that also need an
    /// input gradient in backward (all but the first layer's).
    func convolutionWork(batch: Int, height: Int, width: Int) -> (forward: Int, inputGradient: Int)
}

public enum ModelArchitecture: String, CaseIterable, Sendable {
    case unet, unet_add, unet_shallow

    public func make(inputChannels: Int, classes: Int, width: Int, seed: UInt64) -> SegmentationModel {
        switch self {
        case .unet: return UNet(inputChannels: inputChannels, classes: classes, width: width, depth: 4, skip: .concat, seed: seed)
        case .unet_add: return UNet(inputChannels: inputChannels, classes: classes, width: width, depth: 4, skip: .add, seed: seed)
        case .unet_shallow: return UNet(inputChannels: inputChannels, classes: classes, width: width, depth: 2, skip: .concat, seed: seed)
        }
    }

    /// Input sides must survive this many halvings (each max-pool floors).
    public var downsamplings: Int { self == .unet_shallow ? 2 : 4 }
}
