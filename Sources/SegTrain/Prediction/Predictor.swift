import SegCore
import SegData
import SegNN

/// A model's answer for one image: per-class probabilities and the winning class per pixel.
public struct Prediction {
    /// (classes, H, W) on the host: sigmoid per channel or softmax over the classes, as the
    /// loss the model was trained with decides (`LossKind.outputActivation`).
    public let probabilities: Tensor
    /// (H, W): the classes of `decideClasses` — the most probable (the first on ties); with a
    /// single channel, 1 where its probability is above 0.5.
    public let classes: [Int32]

    public var classCount: Int { probabilities.shape[0] }

    /// Probability of "anything but background": the channel itself with one class, class 1 for
    /// two classes, else 1 - p(background).
    public var foreground: [Float] {
        let n = probabilities.shape[1] * probabilities.shape[2]
        return probabilities.withUnsafeBufferPointer { p in
            switch classCount {
            case 1: return Array(p[0..<n])
            case 2: return Array(p[n..<(2 * n)])
            default: return (0..<n).map { 1 - p[$0] }
            }
        }
    }
}

public enum Predictor {
    /// Runs the model in evaluation mode on one (1, C, H, W) image; nothing is recorded.
    public static func predict(model: SegmentationModel, input: Tensor, activation: OutputActivation) -> Prediction {
        precondition(input.rank == 4 && input.shape[0] == 1, "predict takes one image (1, C, H, W), got \(input.shape)")
        let backend = model.store.backend
        let logits = model.forward(backend.upload(input), .inference(backend: backend))
        let probabilities = backend.activate(logits, activation)
        let (_, k, h, w) = logits.nchw
        let host = backend.download(probabilities).reshaped([k, h, w])
        return Prediction(probabilities: host, classes: decideClasses(host.storage, classes: k))
    }
}
