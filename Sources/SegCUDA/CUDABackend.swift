import Foundation
import SegCore

/// The backend of one GPU: tensors live in device memory (`TensorStorage` with a device
/// address), convolutions are im2col / col2im kernels around cuBLAS GEMMs, and every other op
/// is a kernel of `CUDAKernelSource` mirroring its CPU twin. The host sees the batch going in,
/// the loss and metric sums coming out, and what it downloads (checkpoints).
/// Soft Dice is computed on the host (download, CPU kernel, upload): it is rarely used and
/// its per-image, per-class sums are small.
public final class CUDABackend: Backend {
    public let gpu: CUDADevice
    public var device: Device { .cuda(gpu.info.ordinal) }

    /// cuDNN's convolutions when cuDNN is installed (else im2col + cuBLAS).
    private(set) var cudnn: CuDNNConvolutions?

    public init(ordinal: Int) throws {
        gpu = try CUDADevice(ordinal: ordinal)
        cudnn = CuDNNConvolutions(device: gpu)
    }

    /// "cuDNN 9.x" or "im2col + cuBLAS": how convolutions run.
    /// The GPU and how its convolutions run (`"cuda-sm_90+cudnn (NVIDIA H200)"`).
    public var kernelsDescription: String { "cuda-\(gpu.info.architecture)+\(convolutionPath) (\(gpu.info.name))" }

    public var convolutionPath: String {
        cudnn.map { "cuDNN \($0.version / 10000).\($0.version / 100 % 100)" } ?? "im2col + cuBLAS"
    }

    public var usesCuDNN: Bool { cudnn != nil }

    /// Convolutions by im2col + cuBLAS from now on (when cuDNN disagreed with the CPU).
    /// Convolves with im2col + cuBLAS from now on, forgetting a failure of cuDNN's calls.
    public func disableCuDNN() { cudnn = nil; gpu.forgetFailure() }

    /// Throws the first failed CUDA call (see `CUDADevice`'s error policy).
    public func checkHealthy() throws { try gpu.throwIfFailed() }

    // MARK: Addresses

    /// The device address of a tensor's first value.
    @inline(__always) func addr(_ t: Tensor) -> UInt64 {
        precondition(t.device == device, "A \(t.device) tensor reached the \(device) backend")
        return UInt64(UInt(bitPattern: t.buffer.address)) + UInt64(t.offset * 4)
    }
    @inline(__always) func addr(_ t: IndexTensor) -> UInt64 {
        precondition(t.buffer.device == device, "A \(t.buffer.device) index tensor reached the \(device) backend")
        return UInt64(UInt(bitPattern: t.buffer.address))
    }
    private func p(_ t: Tensor) -> CUDADevice.Argument { .pointer(addr(t)) }
    private func p(_ t: IndexTensor) -> CUDADevice.Argument { .pointer(addr(t)) }
    private func p(_ t: Tensor?) -> CUDADevice.Argument { .pointer(t.map { addr($0) } ?? 0) }
    private func p(_ s: DeviceScratch) -> CUDADevice.Argument { .pointer(s.address) }
    private func i(_ v: Int) -> CUDADevice.Argument { .int(Int32(v)) }
    private func l(_ v: Int) -> CUDADevice.Argument { .long(Int64(v)) }
    private func f(_ v: Float) -> CUDADevice.Argument { .float(v) }
    private func b(_ v: Bool) -> CUDADevice.Argument { .int(v ? 1 : 0) }

    // MARK: Memory

    private func storage(bytes: Int) -> TensorStorage {
        let gpu = self.gpu, address = gpu.allocate(bytes: bytes)
        return TensorStorage(device: device, byteCount: bytes, address: UnsafeMutableRawPointer(bitPattern: UInt(address))!,
                             release: { gpu.release(UInt64(UInt(bitPattern: $0)), bytes: bytes) })
    }

    public func allocate(_ shape: [Int]) -> Tensor { Tensor(shape: shape, buffer: storage(bytes: shape.reduce(1, *) * 4)) }
    public func allocateIndices(_ shape: [Int]) -> IndexTensor { IndexTensor(shape: shape, buffer: storage(bytes: shape.reduce(1, *) * 4)) }

    public func upload(_ t: Tensor) -> Tensor {
        if t.device == device { return t }
        precondition(t.device == .host, "Cannot move \(t.device) memory to \(device)")
        let y = allocate(t.shape)
        t.ptr { gpu.upload($0, to: addr(y), bytes: t.count * 4) }
        return y
    }

    public func uploadIndices(_ t: IndexTensor) -> IndexTensor {
        if t.buffer.device == device { return t }
        let y = allocateIndices(t.shape)
        gpu.upload(t.buffer.hostInt32s, to: addr(y), bytes: t.count * 4)
        return y
    }

    public func download(_ t: Tensor) -> Tensor {
        if t.device == .host { return t }
        var y = Tensor(uninitialized: t.shape)
        let source = addr(t), bytes = t.count * 4
        y.mutPtr { gpu.download(source, to: $0, bytes: bytes) }
        return y
    }

    public func downloadIndices(_ t: IndexTensor) -> IndexTensor {
        if t.buffer.device == .host { return t }
        let y = IndexTensor(uninitialized: t.shape)
        gpu.download(addr(t), to: y.buffer.hostInt32s, bytes: t.count * 4)
        return y
    }

    public func fill(_ t: Tensor, _ value: Float) { gpu.fill32(addr(t), word: value.bitPattern, count: t.count) }

    public func copy(_ src: Tensor, into dst: Tensor) {
        precondition(dst.count == src.count, "Cannot copy \(src.shape) into \(dst.shape)")
        gpu.copy(addr(src), to: addr(dst), bytes: src.count * 4)
    }

    public func addInPlace(_ dst: Tensor, _ src: Tensor) {
        precondition(dst.count == src.count, "Cannot add \(src.shape) to \(dst.shape)")
        gpu.launch("add_inplace_f32", count: dst.count, [p(dst), p(src), l(dst.count)])
    }

    public func scaleInPlace(_ t: Tensor, by s: Tensor) {
        let factor = upload(s)
        gpu.launch("scale_inplace_f32", count: t.count, [p(t), p(factor), l(t.count)])
    }

    public func add(_ a: Tensor, _ b: Tensor) -> Tensor {
        precondition(a.shape == b.shape, "Cannot add \(a.shape) and \(b.shape)")
        let y = allocate(a.shape)
        gpu.launch("add_f32", count: a.count, [p(a), p(b), p(y), l(a.count)])
        return y
    }

    // MARK: Convolutions
    // A chunk of images at a time (as many as keep the unfolded columns within
    // `columnBudgetBytes`): one im2col launch, one GEMM per pass over the whole chunk in a
    // channel-major (C, N, P) layout, one permute back to NCHW. The launches per convolution
    // do not grow with the batch.

    /// Bytes of unfolded columns (and channel-major copies) a convolution chunk may hold:
    /// 512 MiB, or SEGDIST_CUDA_COLUMN_MB (0: one image at a time, as the tests use it).
    static let columnBudgetBytes = (Int(ProcessInfo.processInfo.environment["SEGDIST_CUDA_COLUMN_MB"] ?? "") ?? 512) << 20

    private func chunks(_ n: Int, floatsPerImage: Int, _ body: (_ first: Int, _ count: Int) -> Void) {
        let size = max(1, min(n, Self.columnBudgetBytes / max(1, 4 * floatsPerImage)))
        var first = 0
        while first < n { let count = min(size, n - first); body(first, count); first += count }
    }

    private func geometryArguments(_ g: ConvGeometry) -> [CUDADevice.Argument] {
        [i(g.channels), i(g.height), i(g.width), i(g.kernelH), i(g.kernelW), i(g.stride), i(g.padding), i(g.dilation),
         i(g.outH), i(g.outW)]
    }

    /// col (patchSize, count * outPixels) of images `count` from `images` (NCHW of g's input).
    private func im2col(_ images: UInt64, count: Int, _ g: ConvGeometry, into col: UInt64) {
        gpu.launch("im2col_batch_f32", count: g.patchSize * count * g.outPixels, [.pointer(images), .pointer(col), i(count)] + geometryArguments(g))
    }

    /// images (NCHW of g's input) += the folded col (patchSize, count * outPixels).
    private func col2im(_ col: UInt64, count: Int, _ g: ConvGeometry, into images: UInt64) {
        gpu.launch("col2im_batch_f32", count: count * g.channels * g.inPixels, [.pointer(col), .pointer(images), i(count)] + geometryArguments(g))
    }

    private func toChannelMajor(_ x: UInt64, _ y: UInt64, n: Int, c: Int, p: Int) {
        gpu.launch("nchw_to_cnp_f32", count: n * c * p, [.pointer(x), .pointer(y), i(n), i(c), l(p)])
    }
    private func fromChannelMajor(_ x: UInt64, _ y: UInt64, n: Int, c: Int, p: Int) {
        gpu.launch("cnp_to_nchw_f32", count: n * c * p, [.pointer(x), .pointer(y), i(n), i(c), l(p)])
    }

    private func addBias(_ y: Tensor, _ bias: Tensor, channels: Int, pixels: Int) {
        gpu.launch("add_channel_bias_f32", count: y.count, [p(y), p(bias), i(channels), l(pixels), l(y.count)])
    }

    /// Blocks per channel for the per-channel reductions: enough to fill the GPU when there
    /// are few channels and many values (each block then sums every G-th stretch of 256).
    private func blocksPerChannel(channels: Int, values: Int) -> Int {
        max(1, min((values + 4095) / 4096, max(1, 8 * gpu.info.multiprocessors / max(channels, 1))))
    }

    /// Launches a per-channel reduction `name` with G blocks per channel (its last argument).
    private func launchPerChannel(_ name: String, channels: Int, values: Int, _ arguments: [CUDADevice.Argument]) {
        let g = blocksPerChannel(channels: channels, values: values)
        gpu.launch(name, count: 0, blocks: channels * g, arguments + [i(g)])
    }

    private func sumPerChannel(_ t: Tensor, into out: Tensor, batch: Int, channels: Int, pixels: Int) {
        launchPerChannel("sum_per_channel_f32", channels: channels, values: batch * pixels, [p(t), p(out), i(batch), i(channels), l(pixels)])
    }

    public func conv2dForward(_ x: Tensor, weight: Tensor, bias: Tensor?, geometry g: ConvGeometry) -> Tensor {
        let n = x.shape[0], cout = weight.shape[0], K = g.patchSize, P = g.outPixels, Q = g.channels * g.inPixels
        let y = allocate([n, cout, g.outH, g.outW])
        if let cudnn, let plan = cudnn.plan(batch: n, outChannels: cout, g) {
            cudnn.forward(plan, x: addr(x), w: addr(weight), y: addr(y))
            if let bias { addBias(y, bias, channels: cout, pixels: P) }
            return y
        }
        chunks(n, floatsPerImage: K * P + cout * P) { first, count in
            let col = DeviceScratch(gpu, bytes: K * count * P * 4), out = DeviceScratch(gpu, bytes: cout * count * P * 4)
            let xs = addr(x) + UInt64(first * Q * 4)
            if g.isPointwise { toChannelMajor(xs, col.address, n: count, c: K, p: P) } else { im2col(xs, count: count, g, into: col.address) }
            // (Cout, count * P) = W (Cout, K) col (K, count * P)
            gpu.gemm(m: cout, n: count * P, k: K, a: addr(weight), lda: K, b: col.address, ldb: count * P, beta: 0, c: out.address,
                     ldc: count * P)
            fromChannelMajor(out.address, addr(y) + UInt64(first * cout * P * 4), n: count, c: cout, p: P)
        }
        if let bias { addBias(y, bias, channels: cout, pixels: P) }
        return y
    }

    public func conv2dBackward(x: Tensor, weight: Tensor, dy: Tensor, geometry g: ConvGeometry, inputGradient: Bool,
                               weightGradient: Tensor, biasGradient: Tensor?) -> Tensor? {
        let n = x.shape[0], cout = weight.shape[0], K = g.patchSize, P = g.outPixels, Q = g.channels * g.inPixels
        if let biasGradient { sumPerChannel(dy, into: biasGradient, batch: n, channels: cout, pixels: P) }
        let dx = inputGradient ? allocate(x.shape) : nil
        if let cudnn, let plan = cudnn.plan(batch: n, outChannels: cout, g) {
            cudnn.backwardFilter(plan, x: addr(x), dy: addr(dy), dw: addr(weightGradient))
            if let dx { cudnn.backwardData(plan, w: addr(weight), dy: addr(dy), dx: addr(dx)) }
            return dx
        }
        if let dx { fill(dx, 0) }
        chunks(n, floatsPerImage: K * P + cout * P) { first, count in
            let col = DeviceScratch(gpu, bytes: K * count * P * 4), dys = DeviceScratch(gpu, bytes: cout * count * P * 4)
            let xs = addr(x) + UInt64(first * Q * 4)
            if g.isPointwise { toChannelMajor(xs, col.address, n: count, c: K, p: P) } else { im2col(xs, count: count, g, into: col.address) }
            toChannelMajor(addr(dy) + UInt64(first * cout * P * 4), dys.address, n: count, c: cout, p: P)
            // dW (Cout, K) += dy (Cout, count * P) col^T (count * P, K)
            gpu.gemm(transB: true, m: cout, n: K, k: count * P, a: dys.address, lda: count * P, b: col.address, ldb: count * P,
                     beta: 1, c: addr(weightGradient), ldc: K)
            guard let dx else { return }
            // dx = fold(W^T (K, Cout) dy (Cout, count * P))
            gpu.gemm(transA: true, m: K, n: count * P, k: cout, a: addr(weight), lda: K, b: dys.address, ldb: count * P, beta: 0,
                     c: col.address, ldc: count * P)
            let dxs = addr(dx) + UInt64(first * Q * 4)
            if g.isPointwise { fromChannelMajor(col.address, dxs, n: count, c: K, p: P) } else { col2im(col.address, count: count, g, into: dxs) }
        }
        return dx
    }

    public func convTranspose2dForward(_ x: Tensor, weight: Tensor, bias: Tensor?, geometry g: ConvGeometry) -> Tensor {
        let n = x.shape[0], cin = x.shape[1], K = g.patchSize, Q = g.outPixels, outSize = g.channels * g.inPixels
        let y = allocate([n, g.channels, g.height, g.width])
        fill(y, 0)
        chunks(n, floatsPerImage: K * Q + cin * Q) { first, count in
            let col = DeviceScratch(gpu, bytes: K * count * Q * 4), xs = DeviceScratch(gpu, bytes: cin * count * Q * 4)
            toChannelMajor(addr(x) + UInt64(first * cin * Q * 4), xs.address, n: count, c: cin, p: Q)
            // col (Cout kH kW, count * Q) = W^T x, then every window is added onto the output
            gpu.gemm(transA: true, m: K, n: count * Q, k: cin, a: addr(weight), lda: K, b: xs.address, ldb: count * Q, beta: 0,
                     c: col.address, ldc: count * Q)
            col2im(col.address, count: count, g, into: addr(y) + UInt64(first * outSize * 4))
        }
        if let bias { addBias(y, bias, channels: g.channels, pixels: g.inPixels) }
        return y
    }

    public func convTranspose2dBackward(x: Tensor, weight: Tensor, dy: Tensor, geometry g: ConvGeometry, inputGradient: Bool,
                                        weightGradient: Tensor, biasGradient: Tensor?) -> Tensor? {
        let n = x.shape[0], cin = x.shape[1], K = g.patchSize, Q = g.outPixels, outSize = g.channels * g.inPixels
        if let biasGradient { sumPerChannel(dy, into: biasGradient, batch: n, channels: g.channels, pixels: g.inPixels) }
        let dx = inputGradient ? allocate(x.shape) : nil
        chunks(n, floatsPerImage: K * Q + 2 * cin * Q) { first, count in
            let col = DeviceScratch(gpu, bytes: K * count * Q * 4), xs = DeviceScratch(gpu, bytes: cin * count * Q * 4)
            im2col(addr(dy) + UInt64(first * outSize * 4), count: count, g, into: col.address)
            toChannelMajor(addr(x) + UInt64(first * cin * Q * 4), xs.address, n: count, c: cin, p: Q)
            // dW (Cin, K) += x (Cin, count * Q) col^T;  dx (Cin, count * Q) = W (Cin, K) col
            gpu.gemm(transB: true, m: cin, n: K, k: count * Q, a: xs.address, lda: count * Q, b: col.address, ldb: count * Q, beta: 1,
                     c: addr(weightGradient), ldc: K)
            guard let dx else { return }
            gpu.gemm(m: cin, n: count * Q, k: K, a: addr(weight), lda: K, b: col.address, ldb: count * Q, beta: 0, c: xs.address,
                     ldc: count * Q)
            fromChannelMajor(xs.address, addr(dx) + UInt64(first * cin * Q * 4), n: count, c: cin, p: Q)
        }
        return dx
    }

    // MARK: Normalisation

    /// Sums `values` (device doubles) over the group through the host, with `extra` appended
    /// (the value count); returns the summed extra.
    private func groupSum(_ values: DeviceScratch, count: Int, extra: Double?, _ group: CollectiveSum) -> Double? {
        var host = values.doubles(count) + (extra.map { [$0] } ?? [])
        host.withUnsafeMutableBufferPointer { group.sumInPlace($0.baseAddress!, count: $0.count) }
        values.setDoubles(Array(host[0..<count]))
        return extra == nil ? nil : host[count]
    }

    public func batchNormTrainForward(_ x: Tensor, gamma: Tensor, beta: Tensor, runningMean: Tensor, runningVar: Tensor,
                                      momentum: Float, eps: Float, relu: Bool,
                                      group: CollectiveSum?) -> (Tensor, BatchNormStatistics) {
        let (n, c, h, w) = x.nchw, P = h * w
        let sums = DeviceScratch.zeroDoubles(gpu, c)
        launchPerChannel("bn_channel_sums_f32", channels: c, values: n * P, [p(x), p(sums), i(n), i(c), l(P)])
        var count = Double(n * P)
        if let group { count = groupSum(sums, count: c, extra: count, group)! }
        let squares = DeviceScratch.zeroDoubles(gpu, c)
        launchPerChannel("bn_channel_sqdev_f32", channels: c, values: n * P, [p(x), p(sums), .double(count), p(squares), i(n), i(c), l(P)])
        if let group { _ = groupSum(squares, count: c, extra: nil, group) }
        let mean = allocate([c]), invStd = allocate([c])
        gpu.launch("bn_finish_statistics_f32", count: c, [p(sums), p(squares), .double(count), p(mean), p(invStd), p(runningMean),
                                                         p(runningVar), i(c), f(momentum), f(eps)])
        let y = allocate(x.shape)
        gpu.launch("bn_apply_f32", count: x.count, [p(x), p(y), p(gamma), p(beta), p(mean), p(invStd), i(c), l(P), l(x.count), b(relu)])
        return (y, BatchNormStatistics(mean: mean, invStd: invStd, count: count))
    }

    public func batchNormTrainBackward(x: Tensor, y: Tensor, dy: Tensor, gamma: Tensor, statistics s: BatchNormStatistics,
                                       gammaGradient: Tensor, betaGradient: Tensor, relu: Bool,
                                       group: CollectiveSum?) -> Tensor {
        let (n, c, h, w) = x.nchw, P = h * w
        precondition(dy.shape == x.shape, "Batch norm gradient \(dy.shape) differs from its input \(x.shape)")
        let mean = upload(s.mean), invStd = upload(s.invStd)
        let sums = DeviceScratch.zeroDoubles(gpu, 2 * c)
        launchPerChannel("bn_backward_sums_f32", channels: c, values: n * P, [p(x), p(y), p(dy), p(mean), p(sums), i(n), i(c), l(P), b(relu)])
        // parameter gradients from this process's sums (gradients are all-reduced later) ...
        gpu.launch("bn_parameter_gradients_f32", count: c, [p(sums), p(invStd), p(gammaGradient), p(betaGradient), i(c)])
        // ... the input gradient from the group's
        if let group { _ = groupSum(sums, count: 2 * c, extra: nil, group) }
        let dx = allocate(x.shape)
        let count = s.count > 0 ? s.count : Double(n * P)
        gpu.launch("bn_backward_input_f32", count: x.count, [p(x), p(y), p(dy), p(gamma), p(mean), p(invStd), p(sums), .double(count),
                                                            p(dx), i(c), l(P), l(x.count), b(relu)])
        return dx
    }

    public func batchNormEvalForward(_ x: Tensor, gamma: Tensor, beta: Tensor, runningMean: Tensor, runningVar: Tensor,
                                     eps: Float, relu: Bool) -> Tensor {
        let (_, c, h, w) = x.nchw
        let y = allocate(x.shape)
        gpu.launch("bn_eval_f32", count: x.count, [p(x), p(y), p(gamma), p(beta), p(runningMean), p(runningVar), f(eps), i(c),
                                                  l(h * w), l(x.count), b(relu)])
        return y
    }

    // MARK: Resampling and layout

    public func maxPool2dForward(_ x: Tensor, kernel: Int, stride: Int, padding: Int, ceilMode: Bool) -> (Tensor, IndexTensor) {
        let (n, c, h, w) = x.nchw
        let (oh, ow) = maxPool2dOutputSize(height: h, width: w, kernel: kernel, stride: stride, padding: padding, ceilMode: ceilMode)
        let y = allocate([n, c, oh, ow]), arg = allocateIndices([n, c, oh, ow])
        gpu.launch("maxpool_forward_f32", count: y.count, [p(x), p(y), p(arg), l(n * c), i(h), i(w), i(oh), i(ow), i(kernel),
                                                          i(stride), i(padding)])
        return (y, arg)
    }

    public func maxPool2dBackward(dy: Tensor, indices: IndexTensor, inputShape s: [Int]) -> Tensor {
        let dx = allocate(s)
        fill(dx, 0)
        gpu.launch("maxpool_backward_f32", count: dy.count, [p(dy), p(indices), p(dx), l(s[0] * s[1]), i(s[2]), i(s[3]),
                                                            i(dy.shape[2]), i(dy.shape[3])])
        return dx
    }

    public func bilinearForward(_ x: Tensor, height oh: Int, width ow: Int, alignCorners: Bool) -> Tensor {
        let (n, c, h, w) = x.nchw
        let y = allocate([n, c, oh, ow])
        gpu.launch("bilinear_forward_f32", count: y.count, [p(x), p(y), l(n * c), i(h), i(w), i(oh), i(ow), b(alignCorners)])
        return y
    }

    public func bilinearBackward(dy: Tensor, inputShape s: [Int], alignCorners: Bool) -> Tensor {
        let dx = allocate(s)
        fill(dx, 0)
        gpu.launch("bilinear_backward_f32", count: dy.count, [p(dy), p(dx), l(s[0] * s[1]), i(s[2]), i(s[3]), i(dy.shape[2]),
                                                             i(dy.shape[3]), b(alignCorners)])
        return dx
    }

    public func adaptiveAvgPool2dForward(_ x: Tensor, height oh: Int, width ow: Int) -> Tensor {
        let (n, c, h, w) = x.nchw
        let y = allocate([n, c, oh, ow])
        gpu.launch("adaptive_avg_forward_f32", count: y.count, [p(x), p(y), l(n * c), i(h), i(w), i(oh), i(ow)])
        return y
    }

    public func adaptiveAvgPool2dBackward(dy: Tensor, inputShape s: [Int]) -> Tensor {
        let dx = allocate(s)
        fill(dx, 0)
        gpu.launch("adaptive_avg_backward_f32", count: dy.count, [p(dy), p(dx), l(s[0] * s[1]), i(s[2]), i(s[3]), i(dy.shape[2]),
                                                                 i(dy.shape[3])])
        return dx
    }

    public func padForward(_ x: Tensor, _ pad: Padding) -> Tensor {
        let (n, c, h, w) = x.nchw
        let oh = h + pad.top + pad.bottom, ow = w + pad.left + pad.right
        let y = allocate([n, c, oh, ow])
        gpu.launch("pad_forward_f32", count: y.count, [p(x), p(y), l(n * c), i(h), i(w), i(oh), i(ow), i(pad.top), i(pad.left)])
        return y
    }

    public func padBackward(dy: Tensor, inputShape s: [Int], _ pad: Padding) -> Tensor {
        let dx = allocate(s)
        gpu.launch("pad_backward_f32", count: dx.count, [p(dy), p(dx), l(s[0] * s[1]), i(s[2]), i(s[3]), i(dy.shape[2]),
                                                        i(dy.shape[3]), i(pad.top), i(pad.left)])
        return dx
    }

    public func concatChannels(_ a: Tensor, _ b: Tensor) -> Tensor {
        let (n, ca, h, w) = a.nchw, cb = b.shape[1]
        precondition(b.rank == 4 && b.shape[0] == n && b.shape[2] == h && b.shape[3] == w, "Cannot concatenate \(a.shape) and \(b.shape)")
        let y = allocate([n, ca + cb, h, w])
        gpu.launch("concat_channels_f32", count: y.count, [p(a), p(b), p(y), i(n), i(ca), i(cb), l(h * w)])
        return y
    }

    public func splitChannels(_ dy: Tensor, first ca: Int) -> (Tensor, Tensor) {
        let (n, c, h, w) = dy.nchw
        let da = allocate([n, ca, h, w]), db = allocate([n, c - ca, h, w])
        gpu.launch("split_channels_f32", count: dy.count, [p(dy), p(da), p(db), i(n), i(ca), i(c - ca), l(h * w)])
        return (da, db)
    }

    // MARK: Elementwise

    private func unary(_ name: String, _ x: Tensor) -> Tensor {
        let y = allocate(x.shape); gpu.launch(name, count: x.count, [p(x), p(y), l(x.count)]); return y
    }
    private func binary(_ name: String, _ a: Tensor, _ b: Tensor) -> Tensor {
        precondition(a.count == b.count, "\(name): \(a.shape) and \(b.shape) differ")
        let y = allocate(a.shape); gpu.launch(name, count: a.count, [p(a), p(b), p(y), l(a.count)]); return y
    }

    public func relu(_ x: Tensor) -> Tensor { unary("relu_f32", x) }
    public func reluBackward(y: Tensor, dy: Tensor) -> Tensor { binary("relu_backward_f32", y, dy) }
    public func sigmoid(_ x: Tensor) -> Tensor { unary("sigmoid_f32", x) }
    public func sigmoidBackward(y: Tensor, dy: Tensor) -> Tensor { binary("sigmoid_backward_f32", y, dy) }
    public func multiply(_ a: Tensor, _ b: Tensor) -> Tensor { binary("multiply_f32", a, b) }
    public func hardActivation(_ kind: HardActivation, _ x: Tensor) -> Tensor { unary("\(kind.rawValue)_f32", x) }
    public func hardActivationBackward(_ kind: HardActivation, x: Tensor, dy: Tensor) -> Tensor {
        binary("\(kind.rawValue)_backward_f32", x, dy)
    }
    public func scaleChannels(_ x: Tensor, by scales: Tensor) -> Tensor {
        let (n, c, h, w) = x.nchw
        precondition(scales.count == n * c, "scaleChannels: \(scales.shape) scales for input \(x.shape)")
        let y = allocate(x.shape)
        gpu.launch("scale_channels_f32", count: x.count, [p(x), p(scales), p(y), l(h * w), l(x.count)])
        return y
    }
    public func scaleChannelsBackward(x: Tensor, scales: Tensor, dy: Tensor) -> (Tensor, Tensor) {
        let (n, c, h, w) = x.nchw
        let dx = allocate(x.shape), ds = allocate(scales.shape)
        gpu.launch("scale_channels_input_grad_f32", count: x.count, [p(dy), p(scales), p(dx), l(h * w), l(x.count)])
        gpu.launch("scale_channels_scale_grad_f32", count: n * c, blocks: n * c, [p(x), p(dy), p(ds), l(h * w)])
        return (dx, ds)
    }

    /// Direct kernels (MobileNet's depthwise convolutions are memory-bound, not GEMM-shaped).
    private func groupedArguments(_ x: Tensor, _ weight: Tensor, _ g: ConvGeometry, _ groups: Int) -> [CUDADevice.Argument] {
        [i(x.shape[0]), i(g.channels), i(g.height), i(g.width), i(weight.shape[0]), i(g.kernelH), i(g.kernelW),
         i(g.stride), i(g.padding), i(g.dilation), i(groups)]
    }

    public func groupedConv2dForward(_ x: Tensor, weight: Tensor, bias: Tensor?, geometry g: ConvGeometry, groups: Int) -> Tensor {
        if groups == 1 { return conv2dForward(x, weight: weight, bias: bias, geometry: g) }
        let y = allocate([x.shape[0], weight.shape[0], g.outH, g.outW])
        gpu.launch("grouped_conv_forward_f32", count: y.count, [p(x), p(weight), p(bias), p(y)] + groupedArguments(x, weight, g, groups))
        return y
    }

    public func groupedConv2dBackward(x: Tensor, weight: Tensor, dy: Tensor, geometry g: ConvGeometry, groups: Int, inputGradient: Bool,
                                      weightGradient: Tensor, biasGradient: Tensor?) -> Tensor? {
        if groups == 1 {
            return conv2dBackward(x: x, weight: weight, dy: dy, geometry: g, inputGradient: inputGradient,
                                  weightGradient: weightGradient, biasGradient: biasGradient)
        }
        let cout = weight.shape[0]
        if let biasGradient { sumPerChannel(dy, into: biasGradient, batch: x.shape[0], channels: cout, pixels: g.outPixels) }
        gpu.launch("grouped_conv_weight_grad_f32", count: weight.count, blocks: weight.count,
                   [p(x), p(dy), p(weightGradient)] + groupedArguments(x, weight, g, groups))
        guard inputGradient else { return nil }
        let dx = allocate(x.shape)
        gpu.launch("grouped_conv_input_grad_f32", count: dx.count, [p(dy), p(weight), p(dx)] + groupedArguments(x, weight, g, groups))
        return dx
    }

    /// The masks are drawn on the host from the same per-sample streams as on the CPU (so a
    /// GPU run drops the same units), then uploaded.
    public func dropout(_ x: Tensor, p: Float, seed: UInt64, firstSample: Int) -> (Tensor, Tensor) {
        let ones = Tensor(repeating: 1, shape: x.shape)
        let (_, hostMask) = CPUBackend.shared.dropout(ones, p: p, seed: seed, firstSample: firstSample)
        let mask = upload(hostMask)
        return (multiply(x, mask), mask)
    }

    // MARK: Losses

    public func bceWithLogits(logits: Tensor, targets: Tensor) -> (Tensor, Tensor) {
        precondition(logits.shape == targets.shape, "Logits \(logits.shape) and targets \(targets.shape) differ")
        let t = upload(targets), grad = allocate(logits.shape)
        let sums = DeviceScratch.zeroDoubles(gpu, 2)
        gpu.launch("bce_sums_f32", count: logits.count, [p(logits), p(t), p(sums), l(logits.count)])
        gpu.launch("bce_gradient_f32", count: logits.count, [p(logits), p(t), p(sums), p(grad), l(logits.count)])
        let s = sums.doubles(2)
        return (Tensor(shape: [], storage: [s[1] > 0 ? Float(s[0] / s[1]) : 0]), grad)
    }

    public func softmaxCrossEntropy(logits: Tensor, targets: IndexTensor, ignoreIndex: Int32, classWeights: Tensor?) throws -> (Tensor, Tensor) {
        let (n, c, h, w) = logits.nchw
        precondition(targets.count == n * h * w, "Cross-entropy targets \(targets.shape) do not match logits \(logits.shape)")
        precondition(classWeights == nil || classWeights!.count == c, "Cross-entropy needs one weight per class (\(c))")
        // the same check and message as on the CPU: a target outside the classes is an error
        let hostTargets = downloadIndices(targets)
        if let bad = hostTargets.values.first(where: { $0 != ignoreIndex && ($0 < 0 || $0 >= Int32(c)) }) {
            throw LossError.targetOutOfRange(Int(bad), classes: c)
        }
        let t = uploadIndices(hostTargets), weights = classWeights.map { upload($0) }
        let grad = allocate(logits.shape), sums = DeviceScratch.zeroDoubles(gpu, 2)
        gpu.launch("cross_entropy_sums_f32", count: n * h * w, [p(logits), p(t), p(weights), p(sums), i(n), i(c), l(h * w), .int(ignoreIndex)])
        gpu.launch("cross_entropy_gradient_f32", count: n * h * w, [p(logits), p(t), p(weights), p(sums), p(grad), i(n), i(c), l(h * w),
                                                                   .int(ignoreIndex)])
        let s = sums.doubles(2)
        return (Tensor(shape: [], storage: [s[1] > 0 ? Float(s[0] / s[1]) : 0]), grad)
    }

    public func softDice(logits: Tensor, targets: Tensor, activation: DiceActivation, smooth: Float) -> (Tensor, Tensor) {
        let (loss, grad) = CPUBackend.shared.softDice(logits: download(logits), targets: download(targets), activation: activation,
                                                     smooth: smooth)
        return (loss, upload(grad))
    }

    // MARK: Prediction and metrics

    public func softmaxChannels(_ x: Tensor) -> Tensor {
        let (n, c, h, w) = x.nchw
        let y = allocate(x.shape)
        gpu.launch("softmax_channels_f32", count: n * h * w, [p(x), p(y), i(n), i(c), l(h * w)])
        return y
    }

    public func argmaxChannels(_ x: Tensor) -> IndexTensor {
        let (n, c, h, w) = x.nchw
        let out = allocateIndices([n, h, w])
        gpu.launch("argmax_channels_f32", count: n * h * w, [p(x), p(out), i(n), i(c), l(h * w)])
        return out
    }

    public func targetClasses(_ x: Tensor) -> IndexTensor {
        let (n, c, h, w) = x.nchw
        let t = upload(x), out = allocateIndices([n, h, w])
        gpu.launch("target_classes_f32", count: n * h * w, [p(t), p(out), i(n), i(c), l(h * w)])
        return out
    }

    public func overlapCounts(logits: Tensor, targets: Tensor, activation: OutputActivation) -> [Int] {
        precondition(logits.shape == targets.shape, "Logits \(logits.shape) and targets \(targets.shape) differ")
        let (n, c, h, w) = logits.nchw
        let t = upload(targets), counts = DeviceScratch.zeroDoubles(gpu, n * c * 3)   // 64-bit counters
        gpu.launch("overlap_counts_f32", count: n * h * w, [p(logits), p(t), p(counts), i(n), i(c), l(h * w), b(activation == .softmax)])
        var out = [UInt64](repeating: 0, count: n * c * 3)
        out.withUnsafeMutableBytes { gpu.download(counts.address, to: $0.baseAddress!, bytes: 8 * n * c * 3) }
        return out.map { Int($0) }
    }

    // MARK: Optimizers

    public func sgdUpdate(parameters: Tensor, gradients: Tensor, momentumBuffer: Tensor?, learningRate: Float, momentum: Float,
                          dampening: Float, weightDecay: Float, nesterov: Bool, firstStep: Bool) {
        precondition(parameters.count == gradients.count, "Parameters and gradients differ in size")
        gpu.launch("sgd_update_f32", count: parameters.count,
                   [p(parameters), p(gradients), p(momentumBuffer), l(parameters.count), f(learningRate), f(momentum), f(dampening),
                    f(weightDecay), b(nesterov), b(firstStep)])
    }

    public func adamUpdate(parameters: Tensor, gradients: Tensor, m: Tensor, v: Tensor, step: Int, learningRate: Float,
                           beta1: Float, beta2: Float, eps: Float, weightDecay: Float, decoupled: Bool) {
        precondition(parameters.count == gradients.count && m.count == parameters.count && v.count == parameters.count,
                     "Adam's buffers differ in size")
        let t = Double(step)
        let stepSize = Float(Double(learningRate) / (1 - pow(Double(beta1), t)))
        let sqrtBC2 = Float((1 - pow(Double(beta2), t)).squareRoot())
        gpu.launch("adam_update_f32", count: parameters.count,
                   [p(parameters), p(gradients), p(m), p(v), l(parameters.count), f(learningRate), f(beta1), f(beta2), f(eps),
                    f(weightDecay), b(decoupled), f(stepSize), f(sqrtBC2)])
    }
}

extension CUDABackend: HostStaging {
    public func allocateStaging(_ count: Int) -> Tensor {
        let bytes = max(count, 1) * 4
        var pointer: UnsafeMutableRawPointer?
        gpu.makeCurrent()
        gpu.check(gpu.driver.api.memAllocHost(&pointer, bytes), "cuMemAllocHost(\(bytes) bytes)")
        guard let pointer else { return Tensor(zeros: [count]) }   // recorded failure: plain host memory still works
        let driver = gpu.driver
        let storage = TensorStorage(device: .host, byteCount: bytes, address: pointer, release: { _ = driver.api.memFreeHost($0) })
        let t = Tensor(shape: [count], buffer: storage)
        pointer.initializeMemory(as: Float.self, repeating: 0, count: count)
        return t
    }

    public func copy(_ src: Tensor, toHost dst: UnsafeMutablePointer<Float>) {
        gpu.download(addr(src), to: dst, bytes: src.count * 4)
    }

    public func copy(fromHost src: UnsafePointer<Float>, into dst: Tensor) {
        gpu.upload(src, to: addr(dst), bytes: dst.count * 4)
    }

    public func synchronize() { gpu.synchronize() }
}
