// Grouped convolutions, as `F.conv2d(groups=G)`: the input's C channels and the output's Cout
// channels are split into G groups, group g's outputs reading only group g's inputs; the weight
// is (Cout, C / G, kH, kW). `geometry.channels` is C (the whole input).
//
// Depthwise (one input channel per group — MobileNet's case) runs as a direct convolution, a
// plane at a time, vectorised along the rows: it is memory-bound, and im2col would copy every
// input k*k times for a single multiply each. Wider groups run each group through the ordinary
// convolution (im2col / Winograd + GEMM over the group's channels), image by image.

/// Whether a grouped convolution with these channels takes the direct depthwise kernels.
@inline(__always) func isDepthwise(_ g: ConvGeometry, groups: Int) -> Bool { g.channels == groups }

public func groupedConv2dForward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                                 y: UnsafeMutablePointer<Float>, batch: Int, outChannels: Int, groups: Int, geometry g: ConvGeometry) {
    precondition(g.channels % groups == 0 && outChannels % groups == 0,
                 "conv2d: \(g.channels) input and \(outChannels) output channels do not split into \(groups) groups")
    if groups == 1 {
        return conv2dForward(x: x, weight: weight, bias: bias, y: y, batch: batch, outChannels: outChannels, geometry: g)
    }
    let cin = g.channels / groups, cout = outChannels / groups, kk = g.kernelH * g.kernelW
    let P = g.outPixels, Q = g.inPixels
    if isDepthwise(g, groups: groups) {
        Parallel.forEach(batch * outChannels) { plane in
            let n = plane / outChannels, oc = plane % outChannels, ic = oc / cout
            let out = y + plane * P
            out.update(repeating: bias?[oc] ?? 0, count: P)
            depthwisePlane(x + (n * g.channels + ic) * Q, weight + oc * kk, out, g)
        }
        return
    }
    let sub = ConvGeometry(channels: cin, height: g.height, width: g.width, kernelH: g.kernelH, kernelW: g.kernelW,
                           stride: g.stride, padding: g.padding, dilation: g.dilation)
    for n in 0..<batch {
        for group in 0..<groups {
            conv2dForward(x: x + (n * g.channels + group * cin) * Q, weight: weight + group * cout * cin * kk,
                          bias: bias.map { $0 + group * cout }, y: y + (n * outChannels + group * cout) * P,
                          batch: 1, outChannels: cout, geometry: sub)
        }
    }
}

/// Accumulates into dweight and dbias (+=); overwrites dx when given.
public func groupedConv2dBackward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                                  dx: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>,
                                  dbias: UnsafeMutablePointer<Float>?, batch: Int, outChannels: Int, groups: Int,
                                  geometry g: ConvGeometry) {
    if groups == 1 {
        return conv2dBackward(x: x, weight: weight, dy: dy, dx: dx, dweight: dweight, dbias: dbias, batch: batch,
                              outChannels: outChannels, geometry: g)
    }
    let cin = g.channels / groups, cout = outChannels / groups, kk = g.kernelH * g.kernelW
    let P = g.outPixels, Q = g.inPixels
    if isDepthwise(g, groups: groups) {
        if let dbias { sumPerChannel(dy, into: dbias, batch: batch, channels: outChannels, pixels: P) }
        // weight gradient: each output channel's k*k taps over every image (one writer per channel)
        Parallel.forEach(outChannels) { oc in
            let ic = oc / cout
            for n in 0..<batch {
                depthwiseWeightGradient(x + (n * g.channels + ic) * Q, dy + (n * outChannels + oc) * P, dweight + oc * kk, g)
            }
        }
        // input gradient: each input plane gathers from the outputs that read it (one writer per plane)
        if let dx {
            Parallel.forEach(batch * g.channels) { plane in
                let n = plane / g.channels, ic = plane % g.channels
                let d = dx + plane * Q
                d.update(repeating: 0, count: Q)
                for oc in (ic * cout)..<((ic + 1) * cout) {
                    depthwiseInputGradient(dy + (n * outChannels + oc) * P, weight + oc * kk, d, g)
                }
            }
        }
        return
    }
    let sub = ConvGeometry(channels: cin, height: g.height, width: g.width, kernelH: g.kernelH, kernelW: g.kernelW,
                           stride: g.stride, padding: g.padding, dilation: g.dilation)
    for n in 0..<batch {
        for group in 0..<groups {
            conv2dBackward(x: x + (n * g.channels + group * cin) * Q, weight: weight + group * cout * cin * kk,
                           dy: dy + (n * outChannels + group * cout) * P, dx: dx.map { $0 + (n * g.channels + group * cin) * Q },
                           dweight: dweight + group * cout * cin * kk, dbias: dbias.map { $0 + group * cout },
                           batch: 1, outChannels: cout, geometry: sub)
        }
    }
}

/// Walks the window over one plane: for each tap (index kh * kW + kw) and each output row it
/// reaches, `body(tap, input, output, cols)` with the input pixels that tap reads for output
/// pixel `ow` of that row at `input + ow * stride` and the output pixel at `output + ow`, for
/// `ow` in `cols` (the columns whose input lies inside the plane; padding reads are skipped).
@inline(__always)
private func forEachTapRow(_ g: ConvGeometry, _ body: (_ tap: Int, _ input: Int, _ output: Int, _ cols: Range<Int>) -> Void) {
    let s = g.stride, d = g.dilation, p = g.padding
    for kh in 0..<g.kernelH {
        let rows = g.validRange(offset: kh * d - p, size: g.height, count: g.outH)
        for kw in 0..<g.kernelW {
            let offset = kw * d - p
            let cols = g.validRange(offset: offset, size: g.width, count: g.outW)
            guard !cols.isEmpty else { continue }
            for oh in rows { body(kh * g.kernelW + kw, (oh * s + kh * d - p) * g.width + offset, oh * g.outW, cols) }
        }
    }
}

/// out (outH, outW) += the k x k window of `w` over one input plane.
private func depthwisePlane(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                            _ g: ConvGeometry) {
    let s = g.stride
    forEachTapRow(g) { tap, input, output, cols in
        let a = w[tap]
        if s == 1 {
            axpyRow(a, x + input + cols.lowerBound, out + output + cols.lowerBound, cols.count)
        } else {
            for ow in cols { out[output + ow] += a * x[input + ow * s] }
        }
    }
}

/// dw (k x k) += the correlation of one output-gradient plane with its input plane.
private func depthwiseWeightGradient(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dw: UnsafeMutablePointer<Float>,
                                     _ g: ConvGeometry) {
    let s = g.stride
    forEachTapRow(g) { tap, input, output, cols in
        if s == 1 {
            dw[tap] += dotRow(x + input + cols.lowerBound, dy + output + cols.lowerBound, cols.count)
        } else {
            var sum: Float = 0
            for ow in cols { sum += dy[output + ow] * x[input + ow * s] }
            dw[tap] += sum
        }
    }
}

/// dx (one input plane) += each tap of `w` times the output-gradient plane, scattered back.
private func depthwiseInputGradient(_ dy: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                                    _ g: ConvGeometry) {
    let s = g.stride
    forEachTapRow(g) { tap, input, output, cols in
        let a = w[tap]
        if s == 1 {
            axpyRow(a, dy + output + cols.lowerBound, dx + input + cols.lowerBound, cols.count)
        } else {
            for ow in cols { dx[input + ow * s] += a * dy[output + ow] }
        }
    }
}

/// y[0..<n] += a * x[0..<n].
@inline(__always)
private func axpyRow(_ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
    let va = Lanes(repeating: a)
    var i = 0
    while i + 8 <= n {
        let v: Lanes = load(y, i) + va * load(x, i)
        store(v, y, i)
        i += 8
    }
    while i < n { y[i] += a * x[i]; i += 1 }
}

/// The sum of x[i] * y[i] over 0..<n.
@inline(__always)
private func dotRow(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = Lanes(), i = 0
    while i + 8 <= n {
        acc += load(x, i) * load(y, i)
        i += 8
    }
    var s: Float = acc.sum()
    while i < n { s += x[i] * y[i]; i += 1 }
    return s
}
