import SegCore
import SegNN

// Two small networks that break the layout a hand-written backward would rely on; with them,
// N-rank training must still equal one rank (the gradient all-reduce starts from the tape's
// readiness signal, not from the registration order).

/// stem conv3x3 -> BN+ReLU -> max-pool -> mid conv3x3 -> bilinear back to the input size ->
/// head conv1x1, with the parameters registered head first and stem last.
public final class ReversedProbe: SegmentationModel {
    public let store = ParameterStore()
    public let inputChannels: Int, classes: Int
    let head: Conv2d, mid: Conv2d, bn: BatchNorm2d, stem: Conv2d

    public init(inputChannels: Int, classes: Int, width: Int, seed: UInt64) {
        self.inputChannels = inputChannels; self.classes = classes
        var rng = SeededGenerator(seed: seed)
        head = Conv2d(store: store, name: "head", inputChannels: width, outputChannels: classes, kernelSize: 1, generator: &rng)
        mid = Conv2d(store: store, name: "mid", inputChannels: width, outputChannels: width, kernelSize: 3, padding: 1, generator: &rng)
        bn = BatchNorm2d(store: store, name: "bn", channels: width, fusedReLU: true)
        stem = Conv2d(store: store, name: "stem", inputChannels: inputChannels, outputChannels: width, kernelSize: 3, padding: 1,
                      generator: &rng)
        store.seal()
    }

    public func forward(_ x: Tensor, _ pass: Pass) -> Tensor {
        let h = pass.maxPool2d(bn(stem(x, pass), pass))
        let up = pass.resizeBilinear(mid(h, pass), like: x, alignCorners: false)
        return head(up, pass)
    }

}

/// stem conv3x3 -> BN+ReLU = h; shared conv3x3 applied twice: h + shared(relu(shared(h))) ->
/// head conv1x1. The shared weight's gradient sums two uses; it is final only after the first.
public final class TiedProbe: SegmentationModel {
    public let store = ParameterStore()
    public let inputChannels: Int, classes: Int
    let stem: Conv2d, bn: BatchNorm2d, shared: Conv2d, head: Conv2d

    public init(inputChannels: Int, classes: Int, width: Int, seed: UInt64) {
        self.inputChannels = inputChannels; self.classes = classes
        var rng = SeededGenerator(seed: seed)
        stem = Conv2d(store: store, name: "stem", inputChannels: inputChannels, outputChannels: width, kernelSize: 3, padding: 1,
                      generator: &rng)
        bn = BatchNorm2d(store: store, name: "bn", channels: width, fusedReLU: true)
        shared = Conv2d(store: store, name: "shared", inputChannels: width, outputChannels: width, kernelSize: 3, padding: 1,
                        generator: &rng)
        head = Conv2d(store: store, name: "head", inputChannels: width, outputChannels: classes, kernelSize: 1, generator: &rng)
        store.seal()
    }

    public func forward(_ x: Tensor, _ pass: Pass) -> Tensor {
        let h = bn(stem(x, pass), pass)
        let twice = shared(pass.relu(shared(h, pass)), pass)
        return head(pass.add(h, twice), pass)
    }

}
