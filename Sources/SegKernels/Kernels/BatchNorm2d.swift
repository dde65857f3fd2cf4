// Legend: N = batch, C = channels, P = H * W. Statistics are per channel over N x P values.
// Work is spread over channels; sums run in Double so large batches keep float32 accuracy.

/// What the training-mode forward saves for backward: the batch mean and 1 / sqrt(var + eps).
public struct BatchNormSaved {
    public var mean: [Float]
    public var invStd: [Float]
    /// Values the statistics were taken over (over the whole group when synchronized).
    public var count: Double = 0
    public init(channels: Int) {
        mean = [Float](repeating: 0, count: channels)
        invStd = [Float](repeating: 0, count: channels)
    }
}

// Training mode runs in stages so that synchronized batch norm can sum the statistics of
// every process between them (the backend calls its group between the stages, as the CUDA
// backend does between its kernels): sums -> [group sum] -> squared deviations -> [group sum]
// -> normalize; backward: gradient sums -> [group sum] -> apply.

/// Forward stage 1: sums[c] = the sum of x over channel c, sums[channels] = batch * pixels
/// (the count of values, so a group sum adds the counts too). `sums` holds channels + 1 values.
public func batchNorm2dSums(x: UnsafePointer<Float>, sums: UnsafeMutablePointer<Double>, batch: Int, channels: Int, pixels: Int) {
    Parallel.forEach(channels) { c in sums[c] = channelSum(x, batch: batch, channels: channels, pixels: pixels, channel: c) }
    sums[channels] = Double(batch * pixels)
}

/// Forward stage 2: squares[c] = the sum of (x - mean_c)^2, mean_c taken from stage 1's
/// (group-summed) sums.
public func batchNorm2dSquaredDeviations(x: UnsafePointer<Float>, sums: UnsafePointer<Double>, squares: UnsafeMutablePointer<Double>,
                                         batch: Int, channels: Int, pixels: Int) {
    let count = sums[channels]
    Parallel.forEach(channels) { c in
        let mean = Float(sums[c] / count)
        var sq: Double = 0
        for n in 0..<batch { sq += Double(rowSquaredDeviation(x + (n * channels + c) * pixels, mean, pixels)) }
        squares[c] = sq
    }
}

/// Forward stage 3: writes the batch statistics to `saved`, moves the running statistics by
/// `momentum` (running_var takes the unbiased variance, as PyTorch) and normalises x into y;
/// with `relu`, y = max(0, bn(x)) in the same pass.
public func batchNorm2dNormalize(x: UnsafePointer<Float>, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>,
                                 y: UnsafeMutablePointer<Float>, runningMean: UnsafeMutablePointer<Float>,
                                 runningVar: UnsafeMutablePointer<Float>, sums: UnsafePointer<Double>, squares: UnsafePointer<Double>,
                                 saved: inout BatchNormSaved, batch: Int, channels: Int, pixels: Int,
                                 momentum: Float, eps: Float, relu: Bool) {
    let M = sums[channels]
    for c in 0..<channels {
        let mean = Float(sums[c] / M)
        let variance = squares[c] / M
        let inv = Float(1 / (variance + Double(eps)).squareRoot())
        saved.mean[c] = mean; saved.invStd[c] = inv
        let unbiased = M > 1 ? variance * M / (M - 1) : variance
        runningMean[c] = (1 - momentum) * runningMean[c] + momentum * mean
        runningVar[c] = (1 - momentum) * runningVar[c] + momentum * Float(unbiased)
    }
    saved.count = M
    saved.mean.withUnsafeBufferPointer { meanP in
        saved.invStd.withUnsafeBufferPointer { invP in
            Parallel.forEach(channels) { c in
                let (scale, shift) = affine(gamma, beta, meanP[c], invP[c], c)
                applyAffine(x, y, batch: batch, channels: channels, pixels: pixels, c: c, scale: scale, shift: shift, relu: relu)
            }
        }
    }
}

/// Training mode on one process's batch: the three stages with nothing between them.
public func batchNorm2dTrainForward(x: UnsafePointer<Float>, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>,
                                    y: UnsafeMutablePointer<Float>, runningMean: UnsafeMutablePointer<Float>,
                                    runningVar: UnsafeMutablePointer<Float>, saved: inout BatchNormSaved,
                                    batch: Int, channels: Int, pixels: Int, momentum: Float, eps: Float, relu: Bool) {
    var sums = [Double](repeating: 0, count: channels + 1), squares = [Double](repeating: 0, count: channels)
    batchNorm2dSums(x: x, sums: &sums, batch: batch, channels: channels, pixels: pixels)
    batchNorm2dSquaredDeviations(x: x, sums: sums, squares: &squares, batch: batch, channels: channels, pixels: pixels)
    batchNorm2dNormalize(x: x, gamma: gamma, beta: beta, y: y, runningMean: runningMean, runningVar: runningVar,
                         sums: sums, squares: squares, saved: &saved, batch: batch, channels: channels, pixels: pixels,
                         momentum: momentum, eps: eps, relu: relu)
}

/// Evaluation mode: normalises with the running statistics.
public func batchNorm2dEvalForward(x: UnsafePointer<Float>, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>,
                                   y: UnsafeMutablePointer<Float>, runningMean: UnsafePointer<Float>,
                                   runningVar: UnsafePointer<Float>, batch: Int, channels: Int, pixels: Int,
                                   eps: Float, relu: Bool) {
    Parallel.forEach(channels) { c in
        let scale = gamma[c] / (runningVar[c] + eps).squareRoot()
        let shift = beta[c] - runningMean[c] * scale
        applyAffine(x, y, batch: batch, channels: channels, pixels: pixels, c: c, scale: scale, shift: shift, relu: relu)
    }
}

@inline(__always)
private func applyAffine(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int, channels: Int,
                         pixels: Int, c: Int, scale: Float, shift: Float, relu: Bool) {
    let vs = Lanes(repeating: scale), vb = Lanes(repeating: shift), zero = Lanes()
    for n in 0..<batch {
        let src = x + (n * channels + c) * pixels, dst = y + (n * channels + c) * pixels
        var i = 0
        while i + 8 <= pixels {
            var v: Lanes = load(src, i) * vs
            v += vb
            if relu { v.replace(with: zero, where: v .< zero) }
            store(v, dst, i)
            i += 8
        }
        while i < pixels {
            let v = src[i] * scale + shift
            dst[i] = relu ? max(v, 0) : v
            i += 1
        }
    }
}


/// Where batch norm's backward finds its fused ReLU's mask (no gradient where y <= 0).
public enum ReLUMask {
    /// No ReLU: every value passes.
    case none
    /// The forward output y.
    case output(UnsafePointer<Float>)
    /// Recomputed from x with the forward's own scale and shift (gamma * invStd, beta - mean *
    /// scale) and float operations: y <= 0 exactly where x * scale + shift <= 0, so y need not
    /// be kept for backward.
    case input(gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>)
}

/// One channel's affine map as normalize computes it (the rebuild and the mask repeat it bit for bit).
@inline(__always)
private func affine(_ gamma: UnsafePointer<Float>, _ beta: UnsafePointer<Float>, _ mean: Float, _ invStd: Float, _ c: Int) -> (Float, Float) {
    let scale = gamma[c] * invStd
    return (scale, beta[c] - mean * scale)
}

/// Rebuilds the training forward's output y from its input and saved statistics — exactly the
/// values normalize wrote — for a backward that did not keep y (a convolution reading a
/// BN-ReLU output).
public func batchNorm2dReapply(x: UnsafePointer<Float>, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>,
                               y: UnsafeMutablePointer<Float>, saved: BatchNormSaved, batch: Int, channels: Int, pixels: Int,
                               relu: Bool) {
    saved.mean.withUnsafeBufferPointer { meanP in
        saved.invStd.withUnsafeBufferPointer { invP in
            Parallel.forEach(channels) { c in
                let (scale, shift) = affine(gamma, beta, meanP[c], invP[c], c)
                applyAffine(x, y, batch: batch, channels: channels, pixels: pixels, c: c, scale: scale, shift: shift, relu: relu)
            }
        }
    }
}

/// The mask of one channel row: which of y's forms it reads, and the affine map for `.input`.
private struct RowMask {
    let relu: Bool
    let y: UnsafePointer<Float>?
    let scale: Float, shift: Float

    init(_ mask: ReLUMask, offset: Int, channel c: Int, saved: BatchNormSaved) {
        switch mask {
        case .none: relu = false; y = nil; scale = 0; shift = 0
        case .output(let p): relu = true; y = p + offset; scale = 0; shift = 0
        case .input(let gamma, let beta):
            relu = true; y = nil
            (scale, shift) = affine(gamma, beta, saved.mean[c], saved.invStd[c], c)
        }
    }

    /// dy at lanes i..<i+8, zeroed where y was not positive.
    @inline(__always) func gradient(_ g: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ i: Int) -> Lanes {
        var dz: Lanes = load(g, i)
        guard relu else { return dz }
        var v: Lanes
        if let y { v = load(y, i) } else {
            v = load(x, i) * Lanes(repeating: scale)
            v += Lanes(repeating: shift)
        }
        dz.replace(with: Lanes(), where: v .<= Lanes())
        return dz
    }

    @inline(__always) func gradient(_ g: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ i: Int) -> Float {
        guard relu else { return g[i] }
        let v = y.map { $0[i] } ?? (x[i] * scale + shift)
        return v > 0 ? g[i] : 0
    }
}

/// Backward stage 1: sums[c] = the sum of dz, sums[channels + c] = the sum of dz * (x - mean)
/// over channel c, dz being dy masked by the fused ReLU (`mask`). `sums` holds 2 * channels values.
public func batchNorm2dGradientSums(x: UnsafePointer<Float>, mask: ReLUMask, dy: UnsafePointer<Float>, saved: BatchNormSaved,
                                    sums: UnsafeMutablePointer<Double>, batch: Int, channels: Int, pixels: Int) {
    saved.mean.withUnsafeBufferPointer { meanP in
        Parallel.forEach(channels) { c in
            var sumDz: Double = 0, sumDzX: Double = 0
            for n in 0..<batch {
                let off = (n * channels + c) * pixels
                let (a, b) = maskedSums(x + off, RowMask(mask, offset: off, channel: c, saved: saved), dy + off,
                                        mean: meanP[c], count: pixels)
                sumDz += Double(a); sumDzX += Double(b)
            }
            sums[c] = sumDz; sums[channels + c] = sumDzX
        }
    }
}

/// Backward stage 2: accumulates dgamma and dbeta (+=) from this process's own sums (`local`:
/// parameter gradients are summed over the group with the other gradients afterwards) and
/// overwrites dx from the group's sums (`totals`; the same as `local` without a group).
public func batchNorm2dBackwardApply(x: UnsafePointer<Float>, mask: ReLUMask, dy: UnsafePointer<Float>,
                                     gamma: UnsafePointer<Float>, saved: BatchNormSaved, local: UnsafePointer<Double>,
                                     totals: UnsafePointer<Double>, dx: UnsafeMutablePointer<Float>,
                                     dgamma: UnsafeMutablePointer<Float>, dbeta: UnsafeMutablePointer<Float>,
                                     batch: Int, channels: Int, pixels: Int) {
    let M = Float(saved.count > 0 ? saved.count : Double(batch * pixels))
    saved.mean.withUnsafeBufferPointer { meanP in
        saved.invStd.withUnsafeBufferPointer { invP in
            Parallel.forEach(channels) { c in
                let mean = meanP[c], inv = invP[c]
                let sDz = Float(totals[c]), sDzXhat = Float(totals[channels + c]) * inv
                dbeta[c] += Float(local[c])
                dgamma[c] += Float(local[channels + c]) * inv
                // dx = gamma * inv * (dz - mean(dz) - xhat * mean(dz * xhat))
                let k = gamma[c] * inv, meanDz = sDz / M, coef = sDzXhat / M * inv
                for n in 0..<batch {
                    let off = (n * channels + c) * pixels
                    batchNormInputGradient(x + off, RowMask(mask, offset: off, channel: c, saved: saved), dy + off, dx + off,
                                           mean: mean, scale: k, meanDz: meanDz, coef: coef, count: pixels)
                }
            }
        }
    }
}

/// Backward of the training-mode forward on one process's batch, dy masked by the fused ReLU
/// (`mask`). Overwrites dx; accumulates dgamma and dbeta (+=).
public func batchNorm2dTrainBackward(x: UnsafePointer<Float>, mask: ReLUMask, dy: UnsafePointer<Float>,
                                     gamma: UnsafePointer<Float>, saved: BatchNormSaved,
                                     dx: UnsafeMutablePointer<Float>, dgamma: UnsafeMutablePointer<Float>,
                                     dbeta: UnsafeMutablePointer<Float>, batch: Int, channels: Int, pixels: Int) {
    var sums = [Double](repeating: 0, count: 2 * channels)
    batchNorm2dGradientSums(x: x, mask: mask, dy: dy, saved: saved, sums: &sums, batch: batch, channels: channels, pixels: pixels)
    batchNorm2dBackwardApply(x: x, mask: mask, dy: dy, gamma: gamma, saved: saved, local: sums, totals: sums, dx: dx,
                             dgamma: dgamma, dbeta: dbeta, batch: batch, channels: channels, pixels: pixels)
}

/// (sum dz, sum dz * (x - mean)) over one row, dz = dy masked by `mask`.
@inline(__always)
private func maskedSums(_ x: UnsafePointer<Float>, _ mask: RowMask, _ g: UnsafePointer<Float>,
                        mean: Float, count: Int) -> (Float, Float) {
    let vm = Lanes(repeating: mean)
    var va = Lanes(), vb = Lanes(), i = 0
    while i + 8 <= count {
        let dz: Lanes = mask.gradient(g, x, i)
        let centered: Lanes = load(x, i) - vm
        va += dz
        vb += dz * centered
        i += 8
    }
    var a: Float = va.sum(), b: Float = vb.sum()
    while i < count {
        let dz: Float = mask.gradient(g, x, i)
        a += dz
        b += dz * (x[i] - mean)
        i += 1
    }
    return (a, b)
}

/// d = scale * (dz - meanDz - (x - mean) * coef) over one row.
@inline(__always)
private func batchNormInputGradient(_ x: UnsafePointer<Float>, _ mask: RowMask, _ g: UnsafePointer<Float>,
                                    _ d: UnsafeMutablePointer<Float>, mean: Float, scale: Float, meanDz: Float,
                                    coef: Float, count: Int) {
    let vm = Lanes(repeating: mean)
    let vk = Lanes(repeating: scale), vMeanDz = Lanes(repeating: meanDz), vCoef = Lanes(repeating: coef)
    var i = 0
    while i + 8 <= count {
        var dz: Lanes = mask.gradient(g, x, i)
        let centered: Lanes = load(x, i) - vm
        let correction: Lanes = centered * vCoef
        dz -= vMeanDz
        dz -= correction
        store(vk * dz, d, i)
        i += 8
    }
    while i < count {
        let dz: Float = mask.gradient(g, x, i)
        let centered: Float = x[i] - mean
        d[i] = scale * (dz - meanDz - centered * coef)
        i += 1
    }
}
