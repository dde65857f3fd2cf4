/// Where ops run: a backend owns the memory of the tensors it makes and implements every op
/// the tape records, the losses, the metric counts and the optimizer updates.
///
/// - `CPUBackend` (here) runs the kernels of SegKernels on host memory.
/// - `CUDABackend` (target SegCUDA, the only one that imports CCUDA) keeps tensors in device
///   memory and launches NVRTC-compiled kernels, cuBLAS and cuDNN; `DevicePlacement` in SegTrain
///   is the one place that makes it.
///
/// Every shape and geometry argument is computed on the host before a call; nothing above the
/// backends dereferences tensor memory or names a concrete backend: layers, models, the tape,
/// losses, metrics, optimizers and the gradient all-reduce only call these methods
/// (`upload`/`download` to move a batch in and the loss and metric counts out,
/// `Communicator.acceptsDeviceMemory` to decide how gradients reach MPI).
public protocol Backend: AnyObject {
    var device: Device { get }

    // MARK: Memory
    /// Uninitialised memory for `shape` on this device.
    func allocate(_ shape: [Int]) -> Tensor
    func allocateIndices(_ shape: [Int]) -> IndexTensor
    /// A copy of a host tensor on this device (the tensor itself when it already is here).
    func upload(_ t: Tensor) -> Tensor
    /// A host copy (the tensor itself when it is on the host).
    func download(_ t: Tensor) -> Tensor
    func downloadIndices(_ t: IndexTensor) -> IndexTensor
    /// Writes `value` into every element of `t`'s memory.
    func fill(_ t: Tensor, _ value: Float)
    /// Writes src's values into dst's memory.
    func copy(_ src: Tensor, into dst: Tensor)
    /// dst's memory += src.
    func addInPlace(_ dst: Tensor, _ src: Tensor)
    /// t's memory *= the value of the one-element tensor `s`.
    func scaleInPlace(_ t: Tensor, by s: Tensor)
    func add(_ a: Tensor, _ b: Tensor) -> Tensor

    // MARK: Convolutions
    func conv2dForward(_ x: Tensor, weight: Tensor, bias: Tensor?, geometry: ConvGeometry) -> Tensor
    /// Accumulates into the weight and bias gradients; returns the input gradient when asked.
    func conv2dBackward(x: Tensor, weight: Tensor, dy: Tensor, geometry: ConvGeometry, inputGradient: Bool,
                        weightGradient: Tensor, biasGradient: Tensor?) -> Tensor?
    /// Grouped (groups > 1; depthwise when groups = input channels), weight (Cout, C / groups, k, k).
    func groupedConv2dForward(_ x: Tensor, weight: Tensor, bias: Tensor?, geometry: ConvGeometry, groups: Int) -> Tensor
    func groupedConv2dBackward(x: Tensor, weight: Tensor, dy: Tensor, geometry: ConvGeometry, groups: Int, inputGradient: Bool,
                               weightGradient: Tensor, biasGradient: Tensor?) -> Tensor?
    /// `geometry` describes the output image read by the window (see `ConvGeometry.transposed`).
    func convTranspose2dForward(_ x: Tensor, weight: Tensor, bias: Tensor?, geometry: ConvGeometry) -> Tensor
    func convTranspose2dBackward(x: Tensor, weight: Tensor, dy: Tensor, geometry: ConvGeometry, inputGradient: Bool,
                                 weightGradient: Tensor, biasGradient: Tensor?) -> Tensor?

    // MARK: Normalisation
    /// Normalises with batch statistics (over `group` when given), updates the running
    /// statistics in their memory, and returns what backward needs.
    func batchNormTrainForward(_ x: Tensor, gamma: Tensor, beta: Tensor, runningMean: Tensor, runningVar: Tensor,
                               momentum: Float, eps: Float, relu: Bool, group: CollectiveSum?) -> (Tensor, BatchNormStatistics)
    /// Accumulates into the gamma and beta gradients; returns the input gradient.
    /// `y` is the forward output, read only with `relu` (as its mask; without, any tensor of x's shape).
    func batchNormTrainBackward(x: Tensor, y: Tensor, dy: Tensor, gamma: Tensor, statistics: BatchNormStatistics,
                                gammaGradient: Tensor, betaGradient: Tensor, relu: Bool, group: CollectiveSum?) -> Tensor
    func batchNormEvalForward(_ x: Tensor, gamma: Tensor, beta: Tensor, runningMean: Tensor, runningVar: Tensor,
                              eps: Float, relu: Bool) -> Tensor

    // MARK: Resampling and layout
    func maxPool2dForward(_ x: Tensor, kernel: Int, stride: Int, padding: Int, ceilMode: Bool) -> (Tensor, IndexTensor)
    /// The maxima alone, for a pass with no backward.
    func maxPool2dValues(_ x: Tensor, kernel: Int, stride: Int, padding: Int, ceilMode: Bool) -> Tensor
    func maxPool2dBackward(dy: Tensor, indices: IndexTensor, inputShape: [Int]) -> Tensor
    func bilinearForward(_ x: Tensor, height: Int, width: Int, alignCorners: Bool) -> Tensor
    func bilinearBackward(dy: Tensor, inputShape: [Int], alignCorners: Bool) -> Tensor
    func adaptiveAvgPool2dForward(_ x: Tensor, height: Int, width: Int) -> Tensor
    func adaptiveAvgPool2dBackward(dy: Tensor, inputShape: [Int]) -> Tensor
    func padForward(_ x: Tensor, _ padding: Padding) -> Tensor
    func padBackward(dy: Tensor, inputShape: [Int], _ padding: Padding) -> Tensor
    func concatChannels(_ a: Tensor, _ b: Tensor) -> Tensor
    func splitChannels(_ dy: Tensor, first: Int) -> (Tensor, Tensor)

    // MARK: Elementwise
    func relu(_ x: Tensor) -> Tensor
    func reluBackward(y: Tensor, dy: Tensor) -> Tensor
    func sigmoid(_ x: Tensor) -> Tensor
    func sigmoidBackward(y: Tensor, dy: Tensor) -> Tensor
    /// Inverted dropout; sample b's mask is drawn from stream `firstSample + b` of `seed`, so a
    /// sample's mask does not depend on how the batch is split. Returns the output and the mask.
    func dropout(_ x: Tensor, p: Float, seed: UInt64, firstSample: Int) -> (Tensor, Tensor)
    func multiply(_ a: Tensor, _ b: Tensor) -> Tensor
    func hardActivation(_ kind: HardActivation, _ x: Tensor) -> Tensor
    /// From the activation's input x.
    func hardActivationBackward(_ kind: HardActivation, x: Tensor, dy: Tensor) -> Tensor
    /// x (N, C, H, W) times one scale per image and channel, `scales` (N, C, 1, 1).
    func scaleChannels(_ x: Tensor, by scales: Tensor) -> Tensor
    /// (dx, dscales).
    func scaleChannelsBackward(x: Tensor, scales: Tensor, dy: Tensor) -> (Tensor, Tensor)

    // MARK: Losses: the mean loss (a one-element tensor) and d(loss)/d(logits)
    func bceWithLogits(logits: Tensor, targets: Tensor) -> (Tensor, Tensor)
    /// Throws when a target is outside 0..<classes and not `ignoreIndex`. `classWeights` (C) as
    /// `F.cross_entropy(weight=)`.
    func softmaxCrossEntropy(logits: Tensor, targets: IndexTensor, ignoreIndex: Int32, classWeights: Tensor?) throws -> (Tensor, Tensor)
    func softDice(logits: Tensor, targets: Tensor, activation: DiceActivation, smooth: Float) -> (Tensor, Tensor)

    // MARK: Prediction and metrics
    /// Softmax over the channels of each pixel (N, C, H, W).
    func softmaxChannels(_ x: Tensor) -> Tensor
    /// The arg-max channel of each pixel (first on ties): (N, C, H, W) -> (N, H, W).
    func argmaxChannels(_ x: Tensor) -> IndexTensor
    /// The class of each pixel of one-hot targets, -1 where ignored (negative targets).
    func targetClasses(_ oneHot: Tensor) -> IndexTensor
    /// Per image and class (intersection, predicted, truth) pixel counts, on the host.
    func overlapCounts(logits: Tensor, targets: Tensor, activation: OutputActivation) -> [Int]

    // MARK: Optimizer updates over the flat buffers (written in place)
    func sgdUpdate(parameters: Tensor, gradients: Tensor, momentumBuffer: Tensor?, learningRate: Float, momentum: Float,
                   dampening: Float, weightDecay: Float, nesterov: Bool, firstStep: Bool)
    /// The update with the gradients read as `gradientScale` times their values (the buffer
    /// may be left unscaled or scaled; nothing reads it before the next step zeroes it).
    func sgdUpdate(parameters: Tensor, gradients: Tensor, gradientScale: Float, momentumBuffer: Tensor?, learningRate: Float,
                   momentum: Float, dampening: Float, weightDecay: Float, nesterov: Bool, firstStep: Bool)
    func adamUpdate(parameters: Tensor, gradients: Tensor, gradientScale: Float, m: Tensor, v: Tensor, step: Int,
                    learningRate: Float, beta1: Float, beta2: Float, eps: Float, weightDecay: Float, decoupled: Bool)
    /// Class indices on the backend (the CPU's are the host's).
    func uploadIndices(_ t: IndexTensor) -> IndexTensor
    /// Waits until the work queued so far has run (a GPU's kernels are asynchronous).
    func synchronize()
    /// Throws the first failure of the device's own calls since it was made (a GPU's failed
    /// launch or copy, or its memory running out); nothing on the CPU, whose kernels cannot fail.
    /// Ops cannot throw mid-graph: the caller decides where a failure ends the work.
    func checkHealthy() throws
    /// What runs this backend's ops, in a few words (`segdist bench`'s "kernels").
    var kernelsDescription: String { get }

    func adamUpdate(parameters: Tensor, gradients: Tensor, m: Tensor, v: Tensor, step: Int, learningRate: Float,
                    beta1: Float, beta2: Float, eps: Float, weightDecay: Float, decoupled: Bool)
}

extension Backend {
    /// A backend without a fused update scales the gradient buffer first, then updates.
    public func sgdUpdate(parameters: Tensor, gradients: Tensor, gradientScale: Float, momentumBuffer: Tensor?, learningRate: Float,
                          momentum: Float, dampening: Float, weightDecay: Float, nesterov: Bool, firstStep: Bool) {
        if gradientScale != 1 { scaleInPlace(gradients, by: upload(Tensor(repeating: gradientScale, shape: [1]))) }
        sgdUpdate(parameters: parameters, gradients: gradients, momentumBuffer: momentumBuffer, learningRate: learningRate,
                  momentum: momentum, dampening: dampening, weightDecay: weightDecay, nesterov: nesterov, firstStep: firstStep)
    }

    public func adamUpdate(parameters: Tensor, gradients: Tensor, gradientScale: Float, m: Tensor, v: Tensor, step: Int,
                           learningRate: Float, beta1: Float, beta2: Float, eps: Float, weightDecay: Float, decoupled: Bool) {
        if gradientScale != 1 { scaleInPlace(gradients, by: upload(Tensor(repeating: gradientScale, shape: [1]))) }
        adamUpdate(parameters: parameters, gradients: gradients, m: m, v: v, step: step, learningRate: learningRate, beta1: beta1,
                   beta2: beta2, eps: eps, weightDecay: weightDecay, decoupled: decoupled)
    }
}

/// What a training-mode batch norm saves for backward: per-channel batch mean and
/// 1 / sqrt(var + eps) (on the backend's device), and how many values they were taken over.
public struct BatchNormStatistics {
    public var mean: Tensor
    public var invStd: Tensor
    public var count: Double
    public init(mean: Tensor, invStd: Tensor, count: Double) { self.mean = mean; self.invStd = invStd; self.count = count }
}

extension Backend {
    public func uploadIndices(_ t: IndexTensor) -> IndexTensor { t }
    public func synchronize() {}
    public func checkHealthy() throws {}
    public var kernelsDescription: String { String(describing: type(of: self)) }
    public func maxPool2dValues(_ x: Tensor, kernel: Int, stride: Int, padding: Int, ceilMode: Bool) -> Tensor {
        maxPool2dForward(x, kernel: kernel, stride: stride, padding: padding, ceilMode: ceilMode).0
    }

    /// Probabilities: sigmoid per channel, or softmax over the channels.
    public func activate(_ logits: Tensor, _ activation: OutputActivation) -> Tensor {
        switch activation {
        case .sigmoid: return sigmoid(logits)
        case .softmax: return softmaxChannels(logits)
        }
    }

    public func zeros(_ shape: [Int]) -> Tensor {
        let t = allocate(shape)
        fill(t, 0)
        return t
    }
}

/// A device backend whose memory can be copied to and from host memory in place, through
/// page-locked host buffers: how gradient buckets travel to MPI and back without a fresh host
/// tensor per bucket.
public protocol HostStaging: Backend {
    /// A host tensor of `count` floats in page-locked memory (fast device copies).
    func allocateStaging(_ count: Int) -> Tensor
    /// Writes `src`'s values (device) to `count(src)` floats at `dst` (host).
    func copy(_ src: Tensor, toHost dst: UnsafeMutablePointer<Float>)
    /// Writes `count(dst)` floats from `src` (host) into `dst`'s memory (device).
    func copy(fromHost src: UnsafePointer<Float>, into dst: Tensor)
}
