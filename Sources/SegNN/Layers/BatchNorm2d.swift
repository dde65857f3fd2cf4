import SegCore

/// Batch normalisation over NCHW (PyTorch BatchNorm2d: momentum 0.1, eps 1e-5, affine,
/// running statistics with unbiased variance), optionally fused with the ReLU that follows it.
public final class BatchNorm2d {
    public let channels: Int, momentum: Float, eps: Float, fusedReLU: Bool
    public let weight: TensorSlot, bias: TensorSlot
    public let runningMean: TensorSlot, runningVar: TensorSlot
    public let batchesTracked: Int
    private let store: ParameterStore

    public init(store: ParameterStore, name: String, channels: Int, momentum: Float = 0.1, eps: Float = 1e-5,
                fusedReLU: Bool = false) {
        self.store = store
        self.channels = channels; self.momentum = momentum; self.eps = eps; self.fusedReLU = fusedReLU
        weight = store.registerParameter("\(name).weight", shape: [channels], initialValues: .init(repeating: 1, count: channels))
        bias = store.registerParameter("\(name).bias", shape: [channels], initialValues: .init(repeating: 0, count: channels))
        runningMean = store.registerBuffer("\(name).running_mean", shape: [channels], initialValues: .init(repeating: 0, count: channels))
        runningVar = store.registerBuffer("\(name).running_var", shape: [channels], initialValues: .init(repeating: 1, count: channels))
        batchesTracked = store.registerCounter("\(name).num_batches_tracked")
    }

    public func callAsFunction(_ x: Tensor, _ pass: Pass) -> Tensor {
        precondition(x.rank == 4 && x.shape[1] == channels, "BatchNorm2d expects \(channels) channels, got \(x.shape)")
        if pass.training { store.counters[batchesTracked] += 1 }
        return pass.batchNorm(x, weight: store.parameter(weight), bias: store.parameter(bias),
                              runningMean: store.statistic(runningMean), runningVar: store.statistic(runningVar),
                              momentum: momentum, eps: eps, relu: fusedReLU)
    }

    /// This batch norm of `conv`'s output of x: the same as `self(conv(x, pass), pass)`, folded
    /// into the convolution in evaluation passes (`Pass.conv2dBatchNorm`).
    public func callAsFunction(_ conv: Conv2d, _ x: Tensor, _ pass: Pass) -> Tensor { self(conv, x, [], pass) }

    /// `parts`: further channel blocks of the convolution's input (it reads cat([x] + parts)).
    public func callAsFunction(_ conv: Conv2d, _ x: Tensor, _ parts: [Tensor], _ pass: Pass) -> Tensor {
        precondition(conv.outChannels == channels, "BatchNorm2d of \(channels) channels after a convolution to \(conv.outChannels)")
        if pass.training { store.counters[batchesTracked] += 1 }
        return conv.foldingBatchNorm(x, parts, pass, gamma: store.parameter(weight), beta: store.parameter(bias),
                                     runningMean: store.statistic(runningMean), runningVar: store.statistic(runningVar),
                                     momentum: momentum, eps: eps, relu: fusedReLU)
    }
}
