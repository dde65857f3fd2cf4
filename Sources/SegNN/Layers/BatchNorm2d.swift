import SegCore

/// Batch normalisation over NCHW (PyTorch BatchNorm2d: momentum 0.1, eps 1e-5, affine,
/// running statistics with unbiased variance), optionally fused with the ReLU that follows it.
public final class BatchNorm2d {
    public let channels: Int, momentum: Float, eps: Float, fusedReLU: Bool
    public let weight: TensorSlot, bias: TensorSlot
    public let runningMean: TensorSlot, runningVar: TensorSlot
    public let batchesTracked: Int
    private let store: ParameterStore
    private var input: Tensor?, output: Tensor?
    private var saved: BatchNormSaved

    public init(store: ParameterStore, name: String, channels: Int, momentum: Float = 0.1, eps: Float = 1e-5,
                fusedReLU: Bool = false) {
        self.store = store
        self.channels = channels; self.momentum = momentum; self.eps = eps; self.fusedReLU = fusedReLU
        weight = store.registerParameter("\(name).weight", shape: [channels], initialValues: .init(repeating: 1, count: channels))
        bias = store.registerParameter("\(name).bias", shape: [channels], initialValues: .init(repeating: 0, count: channels))
        runningMean = store.registerBuffer("\(name).running_mean", shape: [channels], initialValues: .init(repeating: 0, count: channels))
        runningVar = store.registerBuffer("\(name).running_var", shape: [channels], initialValues: .init(repeating: 1, count: channels))
        batchesTracked = store.registerCounter("\(name).num_batches_tracked")
        saved = BatchNormSaved(channels: channels)
    }

    public func callAsFunction(_ x: Tensor, training: Bool) -> Tensor {
        let (n, c, h, w) = x.nchw
        precondition(c == channels, "BatchNorm2d expects \(channels) channels, got \(c)")
        var y = Tensor(uninitialized: x.shape)
        x.ptr { xp in
            y.mutPtr { yp in
                if training {
                    batchNorm2dTrainForward(x: xp, gamma: store.pointer(weight), beta: store.pointer(bias), y: yp,
                                            runningMean: store.buffer(runningMean), runningVar: store.buffer(runningVar),
                                            saved: &saved, batch: n, channels: c, pixels: h * w,
                                            momentum: momentum, eps: eps, relu: fusedReLU, group: store.batchNormGroup)
                } else {
                    batchNorm2dEvalForward(x: xp, gamma: store.pointer(weight), beta: store.pointer(bias), y: yp,
                                           runningMean: store.buffer(runningMean), runningVar: store.buffer(runningVar),
                                           batch: n, channels: c, pixels: h * w, eps: eps, relu: fusedReLU)
                }
            }
        }
        if training {
            store.counters[batchesTracked] += 1
            input = x; output = y
        }
        return y
    }

    /// Backward of a training-mode forward: accumulates weight and bias gradients, returns dx.
    public func backward(_ dy: Tensor) -> Tensor {
        guard let x = input, let y = output else { preconditionFailure("BatchNorm2d.backward needs a training forward first") }
        precondition(dy.shape == x.shape, "BatchNorm2d.backward: gradient shape \(dy.shape) differs from output \(x.shape)")
        let (n, c, h, w) = x.nchw
        var dx = Tensor(uninitialized: x.shape)
        x.ptr { xp in y.ptr { yp in dy.ptr { dyp in dx.mutPtr { dxp in
            batchNorm2dTrainBackward(x: xp, y: yp, dy: dyp, gamma: store.pointer(weight), saved: saved, dx: dxp,
                                     dgamma: store.gradient(weight), dbeta: store.gradient(bias),
                                     batch: n, channels: c, pixels: h * w, relu: fusedReLU, group: store.batchNormGroup)
        } } } }
        store.gradientsReady(from: weight)
        input = nil; output = nil
        return dx
    }
}
