import Foundation

extension Tensor {
    /// The first value's host address, for a backend writing into memory it was handed.
    @inline(__always) var mem: UnsafeMutablePointer<Float> { buffer.hostFloats + offset }
    /// The host memory itself, for transports (MPI) that read and write a flat buffer in place.
    public var hostPointer: UnsafeMutablePointer<Float> { mem }
}

extension IndexTensor {
    @inline(__always) var mem: UnsafeMutablePointer<Int32> { buffer.hostInt32s }
}

/// The backend of host memory: every op is a kernel of SegKernels (im2col + OpenBLAS sgemm
/// convolutions, SIMD loops), spread over `Parallel.threads` workers.
public final class CPUBackend: Backend {
    public static let shared = CPUBackend()
    public let device = Device.host
    public init() {}

    /// The kernels' vector instructions and the GEMM libraries' paths
    /// (`"avx512+openblas-skylakex+onednn"`: OpenBLAS's SkylakeX kernels, oneDNN's where the shape favours it).
    public var kernelsDescription: String { "\(kernelInstructionSet)+\(GEMMLibrary.description)" }

    // MARK: Memory

    public func allocate(_ shape: [Int]) -> Tensor { Tensor(uninitialized: shape) }
    public func allocateIndices(_ shape: [Int]) -> IndexTensor { IndexTensor(uninitialized: shape) }
    public func upload(_ t: Tensor) -> Tensor { precondition(t.device == .host, "CPUBackend cannot read \(t.device) memory"); return t }
    public func download(_ t: Tensor) -> Tensor { precondition(t.device == .host, "CPUBackend cannot read \(t.device) memory"); return t }
    public func downloadIndices(_ t: IndexTensor) -> IndexTensor {
        precondition(t.buffer.device == .host, "CPUBackend cannot read \(t.buffer.device) memory"); return t
    }
    public func fill(_ t: Tensor, _ value: Float) { t.mem.update(repeating: value, count: t.count) }

    public func copy(_ src: Tensor, into dst: Tensor) {
        precondition(dst.count == src.count, "Cannot copy \(src.shape) into \(dst.shape)")
        dst.mem.update(from: src.mem, count: src.count)
    }

    public func addInPlace(_ dst: Tensor, _ src: Tensor) {
        precondition(dst.count == src.count, "Cannot add \(src.shape) to \(dst.shape)")
        rowAdd(dst.mem, src.mem, dst.count)
    }

    public func scaleInPlace(_ t: Tensor, by s: Tensor) {
        let v = s.scalar
        if v != 1 { SegKernels.scaleInPlace(t.mem, v, count: t.count) }
    }

    /// a = relu(a + b), in place (see `Pass.addReLU`).
    public func addReLUInPlace(_ a: Tensor, _ b: Tensor) {
        precondition(a.shape == b.shape, "Cannot add \(a.shape) and \(b.shape)")
        SegKernels.addReLUInPlace(a.mem, b.mem, count: a.count)
    }

    public func add(_ a: Tensor, _ b: Tensor) -> Tensor {
        precondition(a.shape == b.shape, "Cannot add \(a.shape) and \(b.shape)")
        let y = allocate(a.shape)
        addForward(a: a.mem, b: b.mem, y: y.mem, count: a.count)
        return y
    }

    // MARK: Convolutions

    public func conv2dForward(_ x: Tensor, weight: Tensor, bias: Tensor?, geometry g: ConvGeometry) -> Tensor {
        conv2dForward(x, weight: weight, bias: bias, geometry: g, relu: false)
    }

    /// The convolution, with `relu` max(0, y) in its epilogue.
    public func conv2dForward(_ x: Tensor, weight: Tensor, bias: Tensor?, geometry g: ConvGeometry, relu: Bool) -> Tensor {
        let n = x.shape[0], cout = weight.shape[0]
        let y = allocate([n, cout, g.outH, g.outW])
        SegKernels.conv2dForward(x: x.mem, weight: weight.mem, bias: bias.map { UnsafePointer($0.mem) }, y: y.mem,
                                 batch: n, outChannels: cout, geometry: g, relu: relu)
        return y
    }

    /// Evaluation-mode batch norm (and ReLU) of a convolution's output, as one convolution: the
    /// batch norm folded into the weights and bias, w' = w s and b' = (b - mean) s + beta per
    /// output channel with s = gamma / sqrt(var + eps), the ReLU in the epilogue.
    /// `inputs` are the channel parts of the convolution's input (a concatenation): a 3x3 Winograd
    /// convolution reads them in place, any other first concatenates them.
    public func conv2dBatchNormEvalForward(_ inputs: [Tensor], weight: Tensor, bias: Tensor?, gamma: Tensor, beta: Tensor, runningMean: Tensor,
                                           runningVar: Tensor, eps: Float, geometry g: ConvGeometry, relu: Bool) -> Tensor {
        let cout = weight.shape[0], perChannel = weight.count / cout
        let folded = allocate(weight.shape), shift = allocate([cout])
        let w = weight.mem, wf = folded.mem, b = bias?.mem
        let gm = gamma.mem, bt = beta.mem, mean = runningMean.mem, variance = runningVar.mem, sf = shift.mem
        for co in 0..<cout {
            let scale = gm[co] / (variance[co] + eps).squareRoot()
            sf[co] = ((b?[co] ?? 0) - mean[co]) * scale + bt[co]
            let src = w + co * perChannel, dst = wf + co * perChannel
            for i in 0..<perChannel { dst[i] = src[i] * scale }
        }
        guard inputs.count > 1 else { return conv2dForward(inputs[0], weight: folded, bias: shift, geometry: g, relu: relu) }
        guard g.isWinograd3x3 else {
            return conv2dForward(inputs.dropFirst().reduce(inputs[0]) { concatChannels($0, $1) }, weight: folded, bias: shift,
                                 geometry: g, relu: relu)
        }
        let n = inputs[0].shape[0]
        let y = allocate([n, cout, g.outH, g.outW])
        let variant = WinogradVariant.forMap(height: g.height, width: g.width, channels: min(g.channels, cout))
        winogradConv3x3(variant, inputs: ChannelParts(inputs.map { (UnsafePointer($0.mem), $0.shape[1]) }),
                        weight: wf, bias: shift.mem, y: y.mem, batch: n, outChannels: cout, height: g.height, width: g.width, relu: relu)
        return y
    }

    public func conv2dBackward(x: Tensor, weight: Tensor, dy: Tensor, geometry g: ConvGeometry, inputGradient: Bool,
                               weightGradient: Tensor, biasGradient: Tensor?) -> Tensor? {
        let dx = inputGradient ? allocate(x.shape) : nil
        SegKernels.conv2dBackward(x: x.mem, weight: weight.mem, dy: dy.mem, dx: dx?.mem, dweight: weightGradient.mem,
                                  dbias: biasGradient?.mem, batch: x.shape[0], outChannels: weight.shape[0], geometry: g)
        return dx
    }

    public func groupedConv2dForward(_ x: Tensor, weight: Tensor, bias: Tensor?, geometry g: ConvGeometry, groups: Int) -> Tensor {
        let n = x.shape[0], cout = weight.shape[0]
        let y = allocate([n, cout, g.outH, g.outW])
        SegKernels.groupedConv2dForward(x: x.mem, weight: weight.mem, bias: bias.map { UnsafePointer($0.mem) }, y: y.mem,
                                        batch: n, outChannels: cout, groups: groups, geometry: g)
        return y
    }

    public func groupedConv2dBackward(x: Tensor, weight: Tensor, dy: Tensor, geometry g: ConvGeometry, groups: Int, inputGradient: Bool,
                                      weightGradient: Tensor, biasGradient: Tensor?) -> Tensor? {
        let dx = inputGradient ? allocate(x.shape) : nil
        SegKernels.groupedConv2dBackward(x: x.mem, weight: weight.mem, dy: dy.mem, dx: dx?.mem, dweight: weightGradient.mem,
                                         dbias: biasGradient?.mem, batch: x.shape[0], outChannels: weight.shape[0], groups: groups,
                                         geometry: g)
        return dx
    }

    public func convTranspose2dForward(_ x: Tensor, weight: Tensor, bias: Tensor?, geometry g: ConvGeometry) -> Tensor {
        let n = x.shape[0]
        let y = allocate([n, g.channels, g.height, g.width])
        SegKernels.convTranspose2dForward(x: x.mem, weight: weight.mem, bias: bias.map { UnsafePointer($0.mem) }, y: y.mem,
                                          batch: n, inChannels: x.shape[1], geometry: g)
        return y
    }

    public func convTranspose2dBackward(x: Tensor, weight: Tensor, dy: Tensor, geometry g: ConvGeometry, inputGradient: Bool,
                                        weightGradient: Tensor, biasGradient: Tensor?) -> Tensor? {
        let dx = inputGradient ? allocate(x.shape) : nil
        SegKernels.convTranspose2dBackward(x: x.mem, weight: weight.mem, dy: dy.mem, dx: dx?.mem, dweight: weightGradient.mem,
                                           dbias: biasGradient?.mem, batch: x.shape[0], inChannels: x.shape[1], geometry: g)
        return dx
    }

    // MARK: Normalisation

    /// The kernel's stages with the group's sums between them (synchronized batch norm).
    public func batchNormTrainForward(_ x: Tensor, gamma: Tensor, beta: Tensor, runningMean: Tensor, runningVar: Tensor,
                                      momentum: Float, eps: Float, relu: Bool,
                                      group: CollectiveSum?) -> (Tensor, BatchNormStatistics) {
        let (n, c, h, w) = x.nchw
        let y = allocate(x.shape)
        var saved = BatchNormSaved(channels: c)
        var sums = [Double](repeating: 0, count: c + 1), squares = [Double](repeating: 0, count: c)
        SegKernels.batchNorm2dSums(x: x.mem, sums: &sums, batch: n, channels: c, pixels: h * w)
        group?.sumInPlace(&sums, count: c + 1)
        SegKernels.batchNorm2dSquaredDeviations(x: x.mem, sums: sums, squares: &squares, batch: n, channels: c, pixels: h * w)
        group?.sumInPlace(&squares, count: c)
        SegKernels.batchNorm2dNormalize(x: x.mem, gamma: gamma.mem, beta: beta.mem, y: y.mem, runningMean: runningMean.mem,
                                        runningVar: runningVar.mem, sums: sums, squares: squares, saved: &saved,
                                        batch: n, channels: c, pixels: h * w, momentum: momentum, eps: eps, relu: relu)
        return (y, BatchNormStatistics(mean: Tensor(shape: [c], storage: saved.mean),
                                       invStd: Tensor(shape: [c], storage: saved.invStd), count: saved.count))
    }

    public func batchNormTrainBackward(x: Tensor, y: Tensor, dy: Tensor, gamma: Tensor, statistics s: BatchNormStatistics,
                                       gammaGradient: Tensor, betaGradient: Tensor, relu: Bool,
                                       group: CollectiveSum?) -> Tensor {
        batchNormTrainBackward(x: x, mask: relu ? .output(y.mem) : .none, dy: dy, gamma: gamma, statistics: s,
                               gammaGradient: gammaGradient, betaGradient: betaGradient, group: group)
    }

    /// Batch norm's backward with the fused ReLU's mask (with `relu`) recomputed from x and beta
    /// instead of read from the kept output: training on this backend keeps no batch-norm output
    /// for its own backward.
    public func batchNormTrainBackward(x: Tensor, beta: Tensor, dy: Tensor, gamma: Tensor, statistics s: BatchNormStatistics,
                                       gammaGradient: Tensor, betaGradient: Tensor, relu: Bool, group: CollectiveSum?) -> Tensor {
        batchNormTrainBackward(x: x, mask: relu ? .input(gamma: gamma.mem, beta: beta.mem) : .none, dy: dy, gamma: gamma,
                               statistics: s, gammaGradient: gammaGradient, betaGradient: betaGradient, group: group)
    }

    private func batchNormTrainBackward(x: Tensor, mask: ReLUMask, dy: Tensor, gamma: Tensor, statistics s: BatchNormStatistics,
                                        gammaGradient: Tensor, betaGradient: Tensor, group: CollectiveSum?) -> Tensor {
        let (n, c, h, w) = x.nchw
        precondition(dy.shape == x.shape, "Batch norm gradient \(dy.shape) differs from its input \(x.shape)")
        let saved = Self.saved(s)
        let dx = allocate(x.shape)
        var local = [Double](repeating: 0, count: 2 * c)
        SegKernels.batchNorm2dGradientSums(x: x.mem, mask: mask, dy: dy.mem, saved: saved, sums: &local, batch: n, channels: c,
                                           pixels: h * w)
        var totals = local
        group?.sumInPlace(&totals, count: 2 * c)
        SegKernels.batchNorm2dBackwardApply(x: x.mem, mask: mask, dy: dy.mem, gamma: gamma.mem, saved: saved, local: local,
                                            totals: totals, dx: dx.mem, dgamma: gammaGradient.mem, dbeta: betaGradient.mem,
                                            batch: n, channels: c, pixels: h * w)
        return dx
    }

    /// The training forward's output, rebuilt bit for bit from its input and statistics (for a
    /// backward that did not keep it).
    public func batchNormReapply(_ x: Tensor, gamma: Tensor, beta: Tensor, statistics s: BatchNormStatistics, relu: Bool) -> Tensor {
        let (n, c, h, w) = x.nchw
        let y = allocate(x.shape)
        SegKernels.batchNorm2dReapply(x: x.mem, gamma: gamma.mem, beta: beta.mem, y: y.mem, saved: Self.saved(s), batch: n,
                                      channels: c, pixels: h * w, relu: relu)
        return y
    }

    private static func saved(_ s: BatchNormStatistics) -> BatchNormSaved {
        var saved = BatchNormSaved(channels: 0)
        saved.mean = s.mean.storage; saved.invStd = s.invStd.storage; saved.count = s.count
        return saved
    }

    public func batchNormEvalForward(_ x: Tensor, gamma: Tensor, beta: Tensor, runningMean: Tensor, runningVar: Tensor,
                                     eps: Float, relu: Bool) -> Tensor {
        let (n, c, h, w) = x.nchw
        let y = allocate(x.shape)
        SegKernels.batchNorm2dEvalForward(x: x.mem, gamma: gamma.mem, beta: beta.mem, y: y.mem, runningMean: runningMean.mem,
                                          runningVar: runningVar.mem, batch: n, channels: c, pixels: h * w, eps: eps, relu: relu)
        return y
    }

    // MARK: Resampling and layout

    public func maxPool2dForward(_ x: Tensor, kernel: Int, stride: Int, padding: Int, ceilMode: Bool) -> (Tensor, IndexTensor) {
        let (n, c, h, w) = x.nchw
        let (oh, ow) = maxPool2dOutputSize(height: h, width: w, kernel: kernel, stride: stride, padding: padding, ceilMode: ceilMode)
        let y = allocate([n, c, oh, ow]), arg = allocateIndices([n, c, oh, ow])
        SegKernels.maxPool2dForward(x: x.mem, y: y.mem, argmax: arg.mem, planes: n * c, height: h, width: w,
                                    kernel: kernel, stride: stride, padding: padding, ceilMode: ceilMode)
        return (y, arg)
    }

    public func maxPool2dValues(_ x: Tensor, kernel: Int, stride: Int, padding: Int, ceilMode: Bool) -> Tensor {
        let (n, c, h, w) = x.nchw
        let (oh, ow) = maxPool2dOutputSize(height: h, width: w, kernel: kernel, stride: stride, padding: padding, ceilMode: ceilMode)
        let y = allocate([n, c, oh, ow])
        SegKernels.maxPool2dForward(x: x.mem, y: y.mem, argmax: nil, planes: n * c, height: h, width: w,
                                    kernel: kernel, stride: stride, padding: padding, ceilMode: ceilMode)
        return y
    }

    public func maxPool2dBackward(dy: Tensor, indices: IndexTensor, inputShape s: [Int]) -> Tensor {
        let dx = allocate(s)
        SegKernels.maxPool2dBackward(dy: dy.mem, argmax: indices.mem, dx: dx.mem, planes: s[0] * s[1], height: s[2], width: s[3],
                                     outH: dy.shape[2], outW: dy.shape[3])
        return dx
    }

    public func bilinearForward(_ x: Tensor, height oh: Int, width ow: Int, alignCorners: Bool) -> Tensor {
        let (n, c, h, w) = x.nchw
        let y = allocate([n, c, oh, ow])
        SegKernels.bilinearForward(x: x.mem, y: y.mem, planes: n * c, inH: h, inW: w, outH: oh, outW: ow, alignCorners: alignCorners)
        return y
    }

    public func bilinearBackward(dy: Tensor, inputShape s: [Int], alignCorners: Bool) -> Tensor {
        let dx = allocate(s)
        SegKernels.bilinearBackward(dy: dy.mem, dx: dx.mem, planes: s[0] * s[1], inH: s[2], inW: s[3],
                                    outH: dy.shape[2], outW: dy.shape[3], alignCorners: alignCorners)
        return dx
    }

    public func adaptiveAvgPool2dForward(_ x: Tensor, height oh: Int, width ow: Int) -> Tensor {
        let (n, c, h, w) = x.nchw
        let y = allocate([n, c, oh, ow])
        SegKernels.adaptiveAvgPool2dForward(x: x.mem, y: y.mem, planes: n * c, height: h, width: w, outH: oh, outW: ow)
        return y
    }

    public func adaptiveAvgPool2dBackward(dy: Tensor, inputShape s: [Int]) -> Tensor {
        let dx = allocate(s)
        SegKernels.adaptiveAvgPool2dBackward(dy: dy.mem, dx: dx.mem, planes: s[0] * s[1], height: s[2], width: s[3],
                                             outH: dy.shape[2], outW: dy.shape[3])
        return dx
    }

    public func padForward(_ x: Tensor, _ p: Padding) -> Tensor {
        let (n, c, h, w) = x.nchw
        let y = allocate([n, c, h + p.top + p.bottom, w + p.left + p.right])
        SegKernels.padForward(x: x.mem, y: y.mem, planes: n * c, height: h, width: w, padding: p)
        return y
    }

    public func padBackward(dy: Tensor, inputShape s: [Int], _ p: Padding) -> Tensor {
        let dx = allocate(s)
        SegKernels.padBackward(dy: dy.mem, dx: dx.mem, planes: s[0] * s[1], height: s[2], width: s[3], padding: p)
        return dx
    }

    public func concatChannels(_ a: Tensor, _ b: Tensor) -> Tensor {
        let (n, ca, h, w) = a.nchw, cb = b.shape[1]
        precondition(b.rank == 4 && b.shape[0] == n && b.shape[2] == h && b.shape[3] == w, "Cannot concatenate \(a.shape) and \(b.shape)")
        let y = allocate([n, ca + cb, h, w])
        concatChannelsForward(a: a.mem, b: b.mem, y: y.mem, batch: n, channelsA: ca, channelsB: cb, pixels: h * w)
        return y
    }

    public func splitChannels(_ dy: Tensor, first ca: Int) -> (Tensor, Tensor) {
        let (n, c, h, w) = dy.nchw
        let da = allocate([n, ca, h, w]), db = allocate([n, c - ca, h, w])
        concatChannelsBackward(dy: dy.mem, da: da.mem, db: db.mem, batch: n, channelsA: ca, channelsB: c - ca, pixels: h * w)
        return (da, db)
    }

    // MARK: Elementwise

    public func hardActivation(_ kind: HardActivation, _ x: Tensor) -> Tensor {
        let y = allocate(x.shape); hardActivationForward(kind, x: x.mem, y: y.mem, count: x.count); return y
    }
    public func hardActivationBackward(_ kind: HardActivation, x: Tensor, dy: Tensor) -> Tensor {
        let dx = allocate(x.shape); SegKernels.hardActivationBackward(kind, x: x.mem, dy: dy.mem, dx: dx.mem, count: x.count); return dx
    }
    public func scaleChannels(_ x: Tensor, by scales: Tensor) -> Tensor {
        let (n, c, h, w) = x.nchw
        precondition(scales.count == n * c, "scaleChannels: \(scales.shape) scales for input \(x.shape)")
        let y = allocate(x.shape)
        scaleChannelsForward(x: x.mem, scales: scales.mem, y: y.mem, planes: n * c, pixels: h * w)
        return y
    }
    public func scaleChannelsBackward(x: Tensor, scales: Tensor, dy: Tensor) -> (Tensor, Tensor) {
        let (n, c, h, w) = x.nchw
        let dx = allocate(x.shape), ds = allocate(scales.shape)
        SegKernels.scaleChannelsBackward(x: x.mem, scales: scales.mem, dy: dy.mem, dx: dx.mem, dscales: ds.mem, planes: n * c, pixels: h * w)
        return (dx, ds)
    }

    public func relu(_ x: Tensor) -> Tensor {
        let y = allocate(x.shape); reluForward(x: x.mem, y: y.mem, count: x.count); return y
    }
    public func reluBackward(y: Tensor, dy: Tensor) -> Tensor {
        let dx = allocate(y.shape); SegKernels.reluBackward(y: y.mem, dy: dy.mem, dx: dx.mem, count: y.count); return dx
    }
    public func sigmoid(_ x: Tensor) -> Tensor {
        let y = allocate(x.shape); sigmoidForward(x: x.mem, y: y.mem, count: x.count); return y
    }
    public func sigmoidBackward(y: Tensor, dy: Tensor) -> Tensor {
        let dx = allocate(y.shape); SegKernels.sigmoidBackward(y: y.mem, dy: dy.mem, dx: dx.mem, count: y.count); return dx
    }
    public func dropout(_ x: Tensor, p: Float, seed: UInt64, firstSample: Int) -> (Tensor, Tensor) {
        let y = allocate(x.shape), mask = allocate(x.shape)
        let n = x.shape.first ?? 1, per = n > 0 ? x.count / n : 0
        for b in 0..<n {
            var generator = SeededGenerator(seed: seed, stream: UInt64(firstSample + b))
            dropoutForward(x: x.mem + b * per, y: y.mem + b * per, mask: mask.mem + b * per, count: per, p: p, generator: &generator)
        }
        return (y, mask)
    }
    public func multiply(_ a: Tensor, _ b: Tensor) -> Tensor {
        precondition(a.shape == b.shape, "Cannot multiply \(a.shape) and \(b.shape)")
        let y = allocate(a.shape); dropoutBackward(dy: a.mem, mask: b.mem, dx: y.mem, count: a.count); return y
    }

    // MARK: Losses

    public func bceWithLogits(logits: Tensor, targets: Tensor) -> (Tensor, Tensor) {
        precondition(logits.shape == targets.shape, "Logits \(logits.shape) and targets \(targets.shape) differ")
        let grad = allocate(logits.shape)
        let loss = SegKernels.bceWithLogits(logits: logits.mem, targets: targets.mem, count: logits.count, grad: grad.mem)
        return (Tensor(shape: [], storage: [loss]), grad)
    }

    public func softmaxCrossEntropy(logits: Tensor, targets: IndexTensor, ignoreIndex: Int32, classWeights: Tensor?) throws -> (Tensor, Tensor) {
        let (n, c, h, w) = logits.nchw
        precondition(targets.count == n * h * w, "Cross-entropy targets \(targets.shape) do not match logits \(logits.shape)")
        precondition(classWeights == nil || classWeights!.count == c, "Cross-entropy needs one weight per class (\(c))")
        let grad = allocate(logits.shape)
        let loss = try SegKernels.softmaxCrossEntropy(logits: logits.mem, targets: targets.mem, batch: n, classes: c, pixels: h * w,
                                                      ignoreIndex: ignoreIndex, classWeights: classWeights.map { UnsafePointer($0.mem) },
                                                      grad: grad.mem)
        return (Tensor(shape: [], storage: [loss]), grad)
    }

    public func softDice(logits: Tensor, targets: Tensor, activation: DiceActivation, smooth: Float) -> (Tensor, Tensor) {
        precondition(logits.shape == targets.shape, "Logits \(logits.shape) and targets \(targets.shape) differ")
        let (n, c, h, w) = logits.nchw
        let grad = allocate(logits.shape)
        let loss = softDiceLoss(logits: logits.mem, targets: targets.mem, batch: n, classes: c, pixels: h * w,
                                activation: activation, smooth: smooth, grad: grad.mem)
        return (Tensor(shape: [], storage: [loss]), grad)
    }

    // MARK: Prediction and metrics

    public func softmaxChannels(_ x: Tensor) -> Tensor {
        let (n, c, h, w) = x.nchw
        let y = allocate(x.shape)
        SegKernels.softmaxChannels(x.mem, y.mem, batch: n, classes: c, pixels: h * w)
        return y
    }

    public func argmaxChannels(_ x: Tensor) -> IndexTensor {
        let (n, c, h, w) = x.nchw
        let out = allocateIndices([n, h, w])
        SegKernels.argmaxChannels(x.mem, out.mem, batch: n, classes: c, pixels: h * w)
        return out
    }

    public func targetClasses(_ x: Tensor) -> IndexTensor {
        let (n, c, h, w) = x.nchw
        let out = allocateIndices([n, h, w])
        SegKernels.targetClasses(x.mem, out.mem, batch: n, classes: c, pixels: h * w)
        return out
    }

    public func overlapCounts(logits: Tensor, targets: Tensor, activation: OutputActivation) -> [Int] {
        precondition(logits.shape == targets.shape, "Logits \(logits.shape) and targets \(targets.shape) differ")
        let (n, c, h, w) = logits.nchw
        var counts = [Int](repeating: 0, count: n * c * 3)
        counts.withUnsafeMutableBufferPointer {
            SegKernels.overlapCounts(logits: logits.mem, targets: targets.mem, counts: $0.baseAddress!, batch: n, classes: c,
                                     pixels: h * w, activation: activation)
        }
        return counts
    }

    // MARK: Optimizers

    public func sgdUpdate(parameters: Tensor, gradients: Tensor, momentumBuffer: Tensor?, learningRate: Float, momentum: Float,
                          dampening: Float, weightDecay: Float, nesterov: Bool, firstStep: Bool) {
        sgdUpdate(parameters: parameters, gradients: gradients, gradientScale: 1, momentumBuffer: momentumBuffer,
                  learningRate: learningRate, momentum: momentum, dampening: dampening, weightDecay: weightDecay, nesterov: nesterov,
                  firstStep: firstStep)
    }

    /// The gradient scale applied as the update reads each gradient (no pass of its own).
    public func sgdUpdate(parameters: Tensor, gradients: Tensor, gradientScale: Float, momentumBuffer: Tensor?, learningRate: Float,
                          momentum: Float, dampening: Float, weightDecay: Float, nesterov: Bool, firstStep: Bool) {
        precondition(parameters.count == gradients.count, "Parameters and gradients differ in size")
        SegKernels.sgdUpdate(parameters: parameters.mem, gradients: gradients.mem, buffer: momentumBuffer?.mem,
                             count: parameters.count, learningRate: learningRate, momentum: momentum, dampening: dampening,
                             weightDecay: weightDecay, nesterov: nesterov, firstStep: firstStep, gradientScale: gradientScale)
    }

    public func adamUpdate(parameters: Tensor, gradients: Tensor, m: Tensor, v: Tensor, step: Int, learningRate: Float,
                           beta1: Float, beta2: Float, eps: Float, weightDecay: Float, decoupled: Bool) {
        adamUpdate(parameters: parameters, gradients: gradients, gradientScale: 1, m: m, v: v, step: step, learningRate: learningRate,
                   beta1: beta1, beta2: beta2, eps: eps, weightDecay: weightDecay, decoupled: decoupled)
    }

    public func adamUpdate(parameters: Tensor, gradients: Tensor, gradientScale: Float, m: Tensor, v: Tensor, step: Int,
                           learningRate: Float, beta1: Float, beta2: Float, eps: Float, weightDecay: Float, decoupled: Bool) {
        precondition(parameters.count == gradients.count && m.count == parameters.count && v.count == parameters.count,
                     "Adam's buffers differ in size")
        SegKernels.adamUpdate(parameters: parameters.mem, gradients: gradients.mem, m: m.mem, v: v.mem, count: parameters.count,
                              step: step, learningRate: learningRate, beta1: beta1, beta2: beta2, eps: eps,
                              weightDecay: weightDecay, decoupled: decoupled, gradientScale: gradientScale)
    }
}

// Elementwise arithmetic of host tensors of the same shape (tests, small host-side work).
public func + (a: Tensor, b: Tensor) -> Tensor { CPUBackend.shared.add(a, b) }
