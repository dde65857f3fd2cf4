// Legend: planes = N * C; each plane is H x W in, outH x outW out.

/// PyTorch's pooled size along one axis: floor((n + 2p - k) / s) + 1, or with `ceilMode` the
/// ceiling — but a window must start inside the input or its left padding.
public func poolOutputSize(_ n: Int, kernel k: Int, stride s: Int, padding p: Int, ceilMode: Bool) -> Int {
    var out = (n + 2 * p - k + (ceilMode ? s - 1 : 0)) / s + 1
    if ceilMode && (out - 1) * s >= n + p { out -= 1 }
    return out
}

/// Max pooling with a square `kernel` window, `stride`, implicit -inf `padding` and PyTorch's
/// `ceil_mode`; records the winning input index of each output (first maximum in row-major
/// order, NaN wins, as PyTorch) in `argmax` for the backward pass — when given: a pass with
/// no backward (prediction) skips the indices, the same maxima for less work.
public func maxPool2dForward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                             argmax: UnsafeMutablePointer<Int32>?, planes: Int, height: Int, width: Int,
                             kernel: Int = 2, stride: Int = 2, padding: Int = 0, ceilMode: Bool = false) {
    precondition(kernel >= 1 && stride >= 1 && padding >= 0 && 2 * padding <= kernel,
                 "Max pooling needs kernel, stride >= 1 and padding at most half the kernel")
    let oh = poolOutputSize(height, kernel: kernel, stride: stride, padding: padding, ceilMode: ceilMode)
    let ow = poolOutputSize(width, kernel: kernel, stride: stride, padding: padding, ceilMode: ceilMode)
    // 2x2 windows at stride 2 (the UNet's pooling): eight outputs at a time on SIMD lanes
    let pairs = kernel == 2 && stride == 2 && padding == 0 ? min(ow, width / 2) : 0
    Parallel.forEach(planes) { p in
        let src = x + p * height * width, dst = y + p * oh * ow, arg = argmax.map { $0 + p * oh * ow }
        for i in 0..<oh {
            let r0 = max(i * stride - padding, 0), r1 = min(i * stride - padding + kernel, height)
            var j = 0
            if pairs > 0 && r1 - r0 == 2 {
                let top = src + r0 * width, bottom = top + width
                if let arg {
                    while j + 8 <= pairs { maxPool2x2Lanes(top, bottom, dst + i * ow, arg + i * ow, j, rowIndex: r0 * width, width: width); j += 8 }
                } else {
                    while j + 8 <= pairs { maxPool2x2Lanes(top, bottom, dst + i * ow, j); j += 8 }
                }
            }
            while j < ow {
                let c0 = max(j * stride - padding, 0), c1 = min(j * stride - padding + kernel, width)
                var best = -Float.infinity, bestIndex = r0 * width + c0
                search: for r in r0..<r1 {
                    for c in c0..<c1 {
                        let v = src[r * width + c]
                        if v > best || v.isNaN { best = v; bestIndex = r * width + c; if v.isNaN { break search } }
                    }
                }
                dst[i * ow + j] = best
                arg?[i * ow + j] = Int32(bestIndex)
                j += 1
            }
        }
    }
}

/// Outputs j..<j + 8 of one output row of 2x2 / stride-2 pooling over input rows `top` and
/// `bottom` (`rowIndex` = the top row's first index in the plane): the same maxima and indices
/// as the window walk (first maximum in row-major order; a NaN wins and stops the search).
@inline(__always) private func maxPool2x2Lanes(_ top: UnsafePointer<Float>, _ bottom: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                                               _ arg: UnsafeMutablePointer<Int32>, _ j: Int, rowIndex: Int, width: Int) {
    let t = UnsafeRawPointer(top + 2 * j).loadUnaligned(as: SIMD16<Float>.self)
    let b = UnsafeRawPointer(bottom + 2 * j).loadUnaligned(as: SIMD16<Float>.self)
    // the window's taps in row-major order, each with its offset from the top-left pixel
    var best = t.evenHalf, index = SIMD8<Int32>(repeating: 0)
    @inline(__always) func visit(_ v: SIMD8<Float>, _ offset: Int32) {
        let wins = ((v .> best) .| (v .!= v)) .& (best .== best)
        best.replace(with: v, where: wins)
        index.replace(with: offset, where: wins)
    }
    visit(t.oddHalf, 1); visit(b.evenHalf, Int32(width)); visit(b.oddHalf, Int32(width) + 1)
    UnsafeMutableRawPointer(out + j).storeBytes(of: best, as: SIMD8<Float>.self)
    let first = SIMD8<Int32>(0, 2, 4, 6, 8, 10, 12, 14) &+ Int32(rowIndex + 2 * j)
    UnsafeMutableRawPointer(arg + j).storeBytes(of: first &+ index, as: SIMD8<Int32>.self)
}

/// `maxPool2x2Lanes` without the indices: the same maxima (a NaN wins).
@inline(__always) private func maxPool2x2Lanes(_ top: UnsafePointer<Float>, _ bottom: UnsafePointer<Float>,
                                               _ out: UnsafeMutablePointer<Float>, _ j: Int) {
    let t = UnsafeRawPointer(top + 2 * j).loadUnaligned(as: SIMD16<Float>.self)
    let b = UnsafeRawPointer(bottom + 2 * j).loadUnaligned(as: SIMD16<Float>.self)
    var best = t.evenHalf
    @inline(__always) func visit(_ v: SIMD8<Float>) { best.replace(with: v, where: ((v .> best) .| (v .!= v)) .& (best .== best)) }
    visit(t.oddHalf); visit(b.evenHalf); visit(b.oddHalf)
    UnsafeMutableRawPointer(out + j).storeBytes(of: best, as: SIMD8<Float>.self)
}

/// dx = 0 everywhere but at each window's recorded maximum, which receives the output gradient.
public func maxPool2dBackward(dy: UnsafePointer<Float>, argmax: UnsafePointer<Int32>, dx: UnsafeMutablePointer<Float>,
                              planes: Int, height: Int, width: Int, outH: Int, outW: Int) {
    Parallel.forEach(planes) { p in
        let g = dy + p * outH * outW, arg = argmax + p * outH * outW, d = dx + p * height * width
        d.update(repeating: 0, count: height * width)
        for i in 0..<(outH * outW) { d[Int(arg[i])] += g[i] }
    }
}

public func maxPool2dOutputSize(height: Int, width: Int, kernel: Int = 2, stride: Int = 2, padding: Int = 0,
                                ceilMode: Bool = false) -> (h: Int, w: Int) {
    (poolOutputSize(height, kernel: kernel, stride: stride, padding: padding, ceilMode: ceilMode),
     poolOutputSize(width, kernel: kernel, stride: stride, padding: padding, ceilMode: ceilMode))
}
