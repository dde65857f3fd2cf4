// Legend: N = batch, Cin/Cout = channels, K = Cin * kH * kW (patch size),
// P = outH * outW (output pixels), Q = inH * inW (input pixels).
// Convolution is im2col + one sgemm per image; images are spread over the workers, each with
// its own column scratch; worker 0 accumulates the weight gradient in place, the others into
// partials added after.

/// y (N, Cout, outH, outW) = conv2d(x (N, Cin, H, W), weight (Cout, Cin, kH, kW)) + bias (Cout),
/// and with `relu` max(0, y), applied to each band of output while it is in cache (evaluation
/// passes fold batch norm and its ReLU into the convolution).
public func conv2dForward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                          y: UnsafeMutablePointer<Float>, batch: Int, outChannels: Int, geometry g: ConvGeometry, relu: Bool = false) {
    let K = g.patchSize, P = g.outPixels, Cout = outChannels
    if let tap = g.onlyTap {
        let centre = onlyTapWeights(weight, tap, outChannels: Cout, geometry: g)
        return centre.withUnsafeBufferPointer {
            conv2dForward(x: x, weight: $0.baseAddress!, bias: bias, y: y, batch: batch, outChannels: Cout, geometry: g.pointwise,
                          relu: relu)
        }
    }
    if g.isWinograd3x3 {
        winogradConv3x3(.forMap(height: g.height, width: g.width, channels: min(g.channels, Cout)), x: x, weight: weight, bias: bias, y: y, batch: batch,
                        inChannels: g.channels, outChannels: Cout, height: g.height, width: g.width, relu: relu)
        return
    }
    if let d = g.winogradPhases(outChannels: Cout) {
        dilatedWinogradForward(x: x, weight: weight, bias: bias, y: y, batch: batch, outChannels: Cout, geometry: g, phases: d,
                               relu: relu)
        return
    }
    if g.isTapwise {
        return tapwiseForward(x: x, weight: weight, bias: bias, y: y, batch: batch, outChannels: Cout, geometry: g, relu: relu)
    }
    // Work items are (image, band of output rows): a band of at most `bandColumns` output
    // pixels is one im2col + one GEMM, so one large image fills every core as a batch does; the
    // bands depend on the geometry alone, so an image's result does not depend on its batch.
    let rowsPerBand = max(1, min(g.outH, bandColumns / max(1, g.outW))), bands = (g.outH + rowsPerBand - 1) / rowsPerBand
    Parallel.chunks(batch * bands) { _, items in
        let scratch = g.isPointwise ? nil : UnsafeMutablePointer<Float>.allocate(capacity: K * rowsPerBand * g.outW)
        defer { scratch?.deallocate() }
        for item in items {
            let n = item / bands, first = (item % bands) * rowsPerBand
            let rows = first..<min(g.outH, first + rowsPerBand), p0 = first * g.outW, columns = rows.count * g.outW
            let xn = x + n * g.channels * g.inPixels, yn = y + n * Cout * P
            if let scratch { im2col(xn, scratch, g, outputRows: rows) }
            sgemm(m: Cout, n: columns, k: K, a: weight, lda: K, b: scratch.map { UnsafePointer($0) } ?? xn + p0,
                  ldb: scratch == nil ? P : columns, beta: 0, c: yn + p0, ldc: P)
            if let bias { addChannelBias(yn + p0, bias, channels: Cout, pixels: columns, stride: P) }
            if relu { for co in 0..<Cout { reluInPlace(yn + co * P + p0, count: columns) } }
        }
    }
}

/// The (Cout, Cin) weights of tap `tap` of a (Cout, Cin, kH, kW) weight.
func onlyTapWeights(_ weight: UnsafePointer<Float>, _ tap: (kh: Int, kw: Int), outChannels: Int, geometry g: ConvGeometry) -> [Float] {
    let taps = g.kernelH * g.kernelW, at = tap.kh * g.kernelW + tap.kw
    return (0..<(outChannels * g.channels)).map { weight[$0 * taps + at] }
}

/// Output pixels per band of `conv2dForward` (128 x 256: a whole 128-pixel training image is
/// one band, a 1024-pixel image 32 of them).
let bandColumns = 32768

/// Accumulates dweight (+=) and dbias (+=) and, when `dx` is given, overwrites dx with the
/// input gradient. `dx` is optional because a network's first layer needs no input gradient.
public func conv2dBackward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                           dx: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>,
                           dbias: UnsafeMutablePointer<Float>?, batch: Int, outChannels: Int,
                           geometry g: ConvGeometry) {
    let K = g.patchSize, P = g.outPixels, Cout = outChannels, Q = g.inPixels
    if let tap = g.onlyTap {
        // the other taps' gradients are exactly zero: they multiplied padding only
        let centre = onlyTapWeights(weight, tap, outChannels: Cout, geometry: g)
        var gradient = [Float](repeating: 0, count: Cout * g.channels)
        centre.withUnsafeBufferPointer { w in
            gradient.withUnsafeMutableBufferPointer { dw in
                conv2dBackward(x: x, weight: w.baseAddress!, dy: dy, dx: dx, dweight: dw.baseAddress!, dbias: dbias, batch: batch,
                               outChannels: Cout, geometry: g.pointwise)
            }
        }
        let taps = g.kernelH * g.kernelW, at = tap.kh * g.kernelW + tap.kw
        for i in 0..<(Cout * g.channels) { dweight[i * taps + at] += gradient[i] }
        return
    }
    if let dbias { sumPerChannel(dy, into: dbias, batch: batch, channels: Cout, pixels: P) }
    if let d = g.winogradPhases(outChannels: Cout) {
        dilatedWinogradBackward(x: x, weight: weight, dy: dy, dx: dx, dweight: dweight, batch: batch, outChannels: Cout,
                                geometry: g, phases: d)
        return
    }
    if g.isTapwise {
        return tapwiseBackward(x: x, weight: weight, dy: dy, dx: dx, dweight: dweight, batch: batch, outChannels: Cout, geometry: g)
    }
    // With stride 1 the input gradient is itself a convolution: dy read by the same window
    // with the kernel flipped and in/out channels swapped. That GEMM is as efficient as the
    // forward one and its im2col avoids col2im's scatter-add.
    let adjoint = g.adjointGeometry(outChannels: Cout)
    // the input gradient of a 3x3 / stride 1 / padding 1 convolution is one too: Winograd, its
    // kernels gathered flipped from the weight a group at a time (`WinogradKernels.adjoint`)
    let winogradInputGradient = adjoint?.isWinograd3x3 == true && dx != nil
    var flipped: [Float] = []
    if adjoint != nil, dx != nil, !winogradInputGradient { flipped = flippedTransposedKernel(weight, outChannels: Cout, geometry: g) }
    if winogradInputGradient, let dx {
        winogradConv3x3(.forMap(height: g.outH, width: g.outW, channels: min(g.channels, Cout)), inputs: ChannelParts([(dy, Cout)]), kernels: .adjoint(of: weight),
                        bias: nil, y: dx, batch: batch, outChannels: g.channels, height: g.outH, width: g.outW)
    }
    if g.isWinograd3x3 {
        winogradConv3x3WeightGradient(.forMap(height: g.height, width: g.width, channels: min(g.channels, Cout)), x: x, dy: dy, dweight: dweight, batch: batch,
                                      inChannels: g.channels, outChannels: Cout, height: g.height, width: g.width)
        if dx == nil || winogradInputGradient { return }
    }
    let weightGradientDone = g.isWinograd3x3
    let workers = Parallel.workers(for: batch)
    // worker 0 accumulates into dweight itself, the others into zeroed partials added after
    let partialCount = weightGradientDone ? 0 : (workers - 1) * Cout * K
    let partials = UnsafeMutablePointer<Float>.allocate(capacity: max(partialCount, 1))
    partials.initialize(repeating: 0, count: partialCount)
    defer { partials.deallocate() }
    flipped.withUnsafeBufferPointer { flippedWeight in
        Parallel.chunks(batch, workers: workers) { w, images in
            let scratchSize = max(g.isPointwise ? 0 : K * P, adjoint.map { $0.patchSize * $0.outPixels } ?? 0)
            let scratch = scratchSize > 0 ? UnsafeMutablePointer<Float>.allocate(capacity: scratchSize) : nil
            defer { scratch?.deallocate() }
            let dw = w == 0 ? dweight : partials + (w - 1) * Cout * K
            for n in images {
                let xn = x + n * g.channels * Q, dyn = dy + n * Cout * P
                // dW (Cout, K) += dy_n (Cout, P) * col_n^T (P, K)
                if !weightGradientDone {
                    if !g.isPointwise { im2col(xn, scratch!, g) }
                    let col = g.isPointwise ? xn : UnsafePointer(scratch!)
                    sgemm(transB: true, m: Cout, n: K, k: P, a: dyn, lda: P, b: col, ldb: P, beta: 1, c: dw, ldc: K)
                }
                guard let dx, !winogradInputGradient else { continue }
                let dxn = dx + n * g.channels * Q
                if g.isPointwise {
                    // dx_n (Cin, Q) = W^T (Cin, Cout) * dy_n (Cout, P)
                    sgemm(transA: true, m: K, n: P, k: Cout, a: weight, lda: K, b: dyn, ldb: P, beta: 0, c: dxn, ldc: P)
                } else if let adjoint {
                    // dx_n (Cin, Q) = W' (Cin, Cout*kH*kW) * im2col(dy_n)
                    im2col(dyn, scratch!, adjoint)
                    sgemm(m: g.channels, n: Q, k: adjoint.patchSize, a: flippedWeight.baseAddress!, lda: adjoint.patchSize,
                          b: scratch!, ldb: Q, beta: 0, c: dxn, ldc: Q)
                } else {
                    // dcol (K, P) = W^T (K, Cout) * dy_n (Cout, P), folded back onto the image
                    sgemm(transA: true, m: K, n: P, k: Cout, a: weight, lda: K, b: dyn, ldb: P, beta: 0, c: scratch!, ldc: P)
                    dxn.update(repeating: 0, count: g.channels * Q)
                    col2im(scratch!, dxn, g)
                }
            }
        }
    }
    if !weightGradientDone { for w in 1..<workers { addInPlace(dweight, partials + (w - 1) * Cout * K, count: Cout * K) } }
}

extension ConvGeometry {
    /// For a stride-1 convolution whose padding is at most dilation * (k - 1): the geometry of
    /// the convolution over its output that yields its input gradient (padding
    /// dilation * (k - 1) - padding). Nil when the input gradient needs col2im instead.
    func adjointGeometry(outChannels: Int) -> ConvGeometry? {
        guard stride == 1, !isPointwise, padding <= dilation * (kernelH - 1), padding <= dilation * (kernelW - 1),
              kernelH == kernelW else { return nil }
        let g = ConvGeometry(channels: outChannels, height: outH, width: outW, kernelH: kernelH, kernelW: kernelW,
                             stride: 1, padding: dilation * (kernelH - 1) - padding, dilation: dilation)
        return g.outH == height && g.outW == width ? g : nil
    }
}

/// W'[ci, co, i, j] = W[co, ci, kH-1-i, kW-1-j], laid out as a (Cin, Cout*kH*kW) matrix.
func flippedTransposedKernel(_ w: UnsafePointer<Float>, outChannels: Int, geometry g: ConvGeometry) -> [Float] {
    let cin = g.channels, kh = g.kernelH, kw = g.kernelW, kk = kh * kw
    return [Float](unsafeUninitializedCapacity: cin * outChannels * kk) { out, initialized in
        let base = out.baseAddress!
        // each input channel's (Cout, kH, kW) block is written by one worker
        Parallel.chunks(cin, workers: cin * outChannels < 16_384 ? 1 : nil) { _, channels in
            for ci in channels { for co in 0..<outChannels {
                let src = w + (co * cin + ci) * kk, dst = base + (ci * outChannels + co) * kk
                for t in 0..<kk { dst[t] = src[kk - 1 - t] }
            } }
        }
        initialized = cin * outChannels * kk
    }
}

// MARK: - Transposed convolution

/// y (N, Cout, outH, outW) = conv_transpose2d(x (N, Cin, H, W), weight (Cin, Cout, kH, kW)) + bias.
/// `geometry` describes the *output* image read by the window (channels = Cout, height = outH,
/// width = outW) whose window positions are the input pixels: transposed convolution is the
/// adjoint of that convolution. Build it with `ConvGeometry.transposed(...)`.
public func convTranspose2dForward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                   bias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>,
                                   batch: Int, inChannels: Int, geometry g: ConvGeometry) {
    let K = g.patchSize, Q = g.outPixels, Cin = inChannels, outSize = g.channels * g.inPixels
    Parallel.chunks(batch) { _, images in
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: K * Q)
        defer { scratch.deallocate() }
        for n in images {
            let xn = x + n * Cin * Q, yn = y + n * outSize
            // col (Cout*kH*kW, Q) = W^T * x_n, then every window is added back onto the output
            sgemm(transA: true, m: K, n: Q, k: Cin, a: weight, lda: K, b: xn, ldb: Q, beta: 0, c: scratch, ldc: Q)
            yn.update(repeating: 0, count: outSize)
            col2im(scratch, yn, g)
            if let bias { addChannelBias(yn, bias, channels: g.channels, pixels: g.inPixels) }
        }
    }
}

public func convTranspose2dBackward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                                    dx: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>,
                                    dbias: UnsafeMutablePointer<Float>?, batch: Int, inChannels: Int,
                                    geometry g: ConvGeometry) {
    let K = g.patchSize, Q = g.outPixels, Cin = inChannels, outSize = g.channels * g.inPixels
    if let dbias { sumPerChannel(dy, into: dbias, batch: batch, channels: g.channels, pixels: g.inPixels) }
    let workers = Parallel.workers(for: batch)
    // worker 0 accumulates into dweight itself, the others into zeroed partials added after
    let partials = UnsafeMutablePointer<Float>.allocate(capacity: max((workers - 1) * Cin * K, 1))
    partials.initialize(repeating: 0, count: (workers - 1) * Cin * K)
    defer { partials.deallocate() }
    Parallel.chunks(batch, workers: workers) { w, images in
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: K * Q)
        defer { scratch.deallocate() }
        let dw = w == 0 ? dweight : partials + (w - 1) * Cin * K
        for n in images {
            let xn = x + n * Cin * Q
            im2col(dy + n * outSize, scratch, g)
            // dW (Cin, K) += x_n (Cin, Q) * col^T (Q, K);  dx_n (Cin, Q) = W (Cin, K) * col (K, Q)
            sgemm(transB: true, m: Cin, n: K, k: Q, a: xn, lda: Q, b: scratch, ldb: Q, beta: 1, c: dw, ldc: K)
            if let dx {
                sgemm(m: Cin, n: Q, k: K, a: weight, lda: K, b: scratch, ldb: Q, beta: 0, c: dx + n * Cin * Q, ldc: Q)
            }
        }
    }
    for w in 1..<workers { addInPlace(dweight, partials + (w - 1) * Cin * K, count: Cin * K) }
}

extension ConvGeometry {
    /// The geometry of a transposed convolution from an `inH x inW` input: PyTorch's output
    /// size `(in - 1) * stride - 2 * padding + dilation * (k - 1) + outputPadding + 1`.
    public static func transposed(outChannels: Int, inH: Int, inW: Int, kernelH: Int, kernelW: Int,
                                  stride: Int = 1, padding: Int = 0, outputPadding: Int = 0,
                                  dilation: Int = 1) -> ConvGeometry {
        precondition(outputPadding >= 0 && outputPadding < max(stride, dilation),
                     "Output padding must be smaller than either stride or dilation")
        let outH = (inH - 1) * stride - 2 * padding + dilation * (kernelH - 1) + outputPadding + 1
        let outW = (inW - 1) * stride - 2 * padding + dilation * (kernelW - 1) + outputPadding + 1
        let g = ConvGeometry(channels: outChannels, height: outH, width: outW, kernelH: kernelH, kernelW: kernelW,
                             stride: stride, padding: padding, dilation: dilation)
        precondition(g.outH == inH && g.outW == inW, "Transposed convolution geometry is inconsistent")
        return g
    }
}

// MARK: - Small shared loops

@inline(__always)
func addChannelBias(_ y: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>, channels: Int, pixels: Int, stride: Int? = nil) {
    for c in 0..<channels {
        let b = bias[c], row = y + c * (stride ?? pixels)
        for i in 0..<pixels { row[i] += b }
    }
}

@inline(__always)
public func addInPlace(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, count: Int) {
    rowAdd(dst, src, count)
}
