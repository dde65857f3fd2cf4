// Legend: N = batch, C = channels, P = H * W. Statistics are per channel over N x P values.
// Work is spread over channels; sums run in Double so large batches keep float32 accuracy.

/// What the training-mode forward saves for backward: the batch mean and 1 / sqrt(var + eps).
public struct BatchNormSaved {
    public var mean: [Float]
    public var invStd: [Float]
    public init(channels: Int) {
        mean = [Float](repeating: 0, count: channels)
        invStd = [Float](repeating: 0, count: channels)
    }
}

/// Training mode: normalises with batch statistics, writes them to `saved`, and moves the running
/// statistics by `momentum` (running_var takes the unbiased variance, as PyTorch).
/// With `relu`, y = max(0, bn(x)) in the same pass.
public func batchNorm2dTrainForward(x: UnsafePointer<Float>, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>,
                                    y: UnsafeMutablePointer<Float>, runningMean: UnsafeMutablePointer<Float>,
                                    runningVar: UnsafeMutablePointer<Float>, saved: inout BatchNormSaved,
                                    batch: Int, channels: Int, pixels: Int, momentum: Float, eps: Float, relu: Bool) {
    let M = batch * pixels
    saved.mean.withUnsafeMutableBufferPointer { meanOut in
        saved.invStd.withUnsafeMutableBufferPointer { invOut in
            Parallel.forEach(channels) { c in
                var sum: Double = 0
                for n in 0..<batch {
                    let row = x + (n * channels + c) * pixels
                    var part: Float = 0
                    for i in 0..<pixels { part += row[i] }
                    sum += Double(part)
                }
                let mean = sum / Double(M)
                var sq: Double = 0
                let m32 = Float(mean)
                for n in 0..<batch {
                    let row = x + (n * channels + c) * pixels
                    var part: Float = 0
                    for i in 0..<pixels { let d = row[i] - m32; part += d * d }
                    sq += Double(part)
                }
                let variance = sq / Double(M)
                let inv = Float(1 / (variance + Double(eps)).squareRoot())
                meanOut[c] = m32; invOut[c] = inv
                let unbiased = M > 1 ? variance * Double(M) / Double(M - 1) : variance
                runningMean[c] = (1 - momentum) * runningMean[c] + momentum * m32
                runningVar[c] = (1 - momentum) * runningVar[c] + momentum * Float(unbiased)
                let scale = gamma[c] * inv, shift = beta[c] - m32 * scale
                applyAffine(x, y, batch: batch, channels: channels, pixels: pixels, c: c, scale: scale, shift: shift, relu: relu)
            }
        }
    }
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
    for n in 0..<batch {
        let src = x + (n * channels + c) * pixels, dst = y + (n * channels + c) * pixels
        if relu {
            for i in 0..<pixels { dst[i] = max(src[i] * scale + shift, 0) }
        } else {
            for i in 0..<pixels { dst[i] = src[i] * scale + shift }
        }
    }
}

/// Backward of the training-mode forward. With `relu`, `y` (the forward output) masks dy.
/// Overwrites dx; accumulates dgamma and dbeta (+=).
public func batchNorm2dTrainBackward(x: UnsafePointer<Float>, y: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                                     gamma: UnsafePointer<Float>, saved: BatchNormSaved,
                                     dx: UnsafeMutablePointer<Float>, dgamma: UnsafeMutablePointer<Float>,
                                     dbeta: UnsafeMutablePointer<Float>, batch: Int, channels: Int, pixels: Int,
                                     relu: Bool) {
    let M = Float(batch * pixels)
    saved.mean.withUnsafeBufferPointer { meanP in
        saved.invStd.withUnsafeBufferPointer { invP in
            Parallel.forEach(channels) { c in
                let mean = meanP[c], inv = invP[c]
                // sums of dz and dz * xhat, where dz is dy after the relu mask
                var sumDz: Double = 0, sumDzX: Double = 0
                for n in 0..<batch {
                    let off = (n * channels + c) * pixels
                    let xs = x + off, ys = y + off, g = dy + off
                    var a: Float = 0, b: Float = 0
                    if relu {
                        for i in 0..<pixels {
                            let dz: Float = ys[i] > 0 ? g[i] : 0
                            a += dz; b += dz * (xs[i] - mean)
                        }
                    } else {
                        for i in 0..<pixels { a += g[i]; b += g[i] * (xs[i] - mean) }
                    }
                    sumDz += Double(a); sumDzX += Double(b)
                }
                let sDz = Float(sumDz), sDzXhat = Float(sumDzX) * inv
                dbeta[c] += sDz
                dgamma[c] += sDzXhat
                // dx = gamma * inv * (dz - mean(dz) - xhat * mean(dz * xhat))
                let k = gamma[c] * inv, meanDz = sDz / M, coef = sDzXhat / M * inv
                for n in 0..<batch {
                    let off = (n * channels + c) * pixels
                    let xs = x + off, ys = y + off, g = dy + off, d = dx + off
                    if relu {
                        for i in 0..<pixels {
                            let dz: Float = ys[i] > 0 ? g[i] : 0
                            d[i] = k * (dz - meanDz - (xs[i] - mean) * coef)
                        }
                    } else {
                        for i in 0..<pixels { d[i] = k * (g[i] - meanDz - (xs[i] - mean) * coef) }
                    }
                }
            }
        }
    }
}
