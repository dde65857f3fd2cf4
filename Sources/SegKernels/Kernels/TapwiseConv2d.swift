// A dilated convolution whose dilation is large against its map (DeepLabV3's ASPP at dilation
// 12 on a 16 px map) reads mostly padding: each non-centre tap meets the image only on a strip
// or a corner of the output. im2col + GEMM multiplies all k*k taps over every output pixel;
// here the convolution runs as one GEMM per tap over just the output pixels that tap reads
// from the image (a 1x1 convolution of the shifted sub-rectangle): 4x fewer multiplications for
// 3x3 / dilation 12 on 16 px, and no column matrix (K x P, 19 MB for ASPP's 2048 channels),
// no flipped kernel and no per-worker weight-gradient partials. Work is split over output
// channels (forward, weight gradient) and input channels (input gradient), so no two workers
// write the same value.

extension ConvGeometry {
    /// Whether the tap-wise path applies: stride 1, the output the input's size, more than one
    /// tap reading the image, and the taps together reading at most half the pixels im2col
    /// would compute.
    var isTapwise: Bool {
        guard stride == 1, dilation > 1, outH == height, outW == width, onlyTap == nil else { return false }
        let read = imageTaps.reduce(0) { $0 + $1.rows.count * $1.columns.count }
        return 2 * read <= kernelH * kernelW * outPixels
    }

    /// The taps that read the image: index kh * kW + kw, the output rows and columns they
    /// reach, and the input offset of output pixel (0, 0).
    var imageTaps: [(tap: Int, rows: Range<Int>, columns: Range<Int>, offH: Int, offW: Int)] {
        var taps: [(tap: Int, rows: Range<Int>, columns: Range<Int>, offH: Int, offW: Int)] = []
        for kh in 0..<kernelH {
            let offH = kh * dilation - padding, rows = validRange(offset: offH, size: height, count: outH)
            for kw in 0..<kernelW {
                let offW = kw * dilation - padding, columns = validRange(offset: offW, size: width, count: outW)
                if !rows.isEmpty && !columns.isEmpty { taps.append((kh * kernelW + kw, rows, columns, offH, offW)) }
            }
        }
        return taps
    }
}

/// Calls `body(plane, n)` for each row of the rectangle at rows `rows` + offH, columns
/// `columns` + offW of planes (channels, height, width) `channelStride` apart, in order: `plane`
/// is the row's first float in the planes, `n` its length; the packed rectangle (channels,
/// rows x columns) holds the rows one after another.
@inline(__always)
private func forEachRectangleRow(channels: Int, channelStride: Int, width: Int, rows: Range<Int>, columns: Range<Int>, offH: Int,
                                 offW: Int, _ body: (_ plane: Int, _ n: Int) -> Void) {
    for c in 0..<channels { for r in rows { body(c * channelStride + (r + offH) * width + columns.lowerBound + offW, columns.count) } }
}

/// sub (channels, rows x columns) = the rectangle (see `forEachRectangleRow`).
@inline(__always)
private func gatherRectangle(_ planes: UnsafePointer<Float>, _ sub: UnsafeMutablePointer<Float>, channels: Int, channelStride: Int,
                             width: Int, rows: Range<Int>, columns: Range<Int>, offH: Int, offW: Int) {
    var dst = sub
    forEachRectangleRow(channels: channels, channelStride: channelStride, width: width, rows: rows, columns: columns, offH: offH,
                        offW: offW) { plane, n in dst.update(from: planes + plane, count: n); dst += n }
}

/// The inverse of `gatherRectangle`, adding: the rectangle += sub.
@inline(__always)
private func addRectangle(_ sub: UnsafePointer<Float>, _ planes: UnsafeMutablePointer<Float>, channels: Int, channelStride: Int,
                          width: Int, rows: Range<Int>, columns: Range<Int>, offH: Int, offW: Int) {
    var src = sub
    forEachRectangleRow(channels: channels, channelStride: channelStride, width: width, rows: rows, columns: columns, offH: offH,
                        offW: offW) { plane, n in rowAdd(planes + plane, src, n); src += n }
}

/// The (outputs, Cin) weights of tap `tap` for output channels `outputs` of a (Cout, Cin, kH, kW) weight.
private func tapWeights(_ weight: UnsafePointer<Float>, tap: Int, taps: Int, inChannels: Int, outputs: Range<Int>,
                        into w: UnsafeMutablePointer<Float>) {
    for (i, co) in outputs.enumerated() { for ci in 0..<inChannels { w[i * inChannels + ci] = weight[(co * inChannels + ci) * taps + tap] } }
}

func tapwiseForward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>,
                    batch: Int, outChannels: Int, geometry g: ConvGeometry, relu: Bool) {
    let taps = g.imageTaps, kk = g.kernelH * g.kernelW, cin = g.channels, P = g.outPixels, Q = g.inPixels
    Parallel.chunks(outChannels) { _, outputs in
        let m = outputs.count
        let w = UnsafeMutablePointer<Float>.allocate(capacity: m * cin), xs = UnsafeMutablePointer<Float>.allocate(capacity: cin * P)
        let ys = UnsafeMutablePointer<Float>.allocate(capacity: m * P)
        defer { w.deallocate(); xs.deallocate(); ys.deallocate() }
        for n in 0..<batch { for co in outputs { (y + (n * outChannels + co) * P).update(repeating: bias?[co] ?? 0, count: P) } }
        for t in taps {
            tapWeights(weight, tap: t.tap, taps: kk, inChannels: cin, outputs: outputs, into: w)
            let pixels = t.rows.count * t.columns.count
            for n in 0..<batch {
                gatherRectangle(x + n * cin * Q, xs, channels: cin, channelStride: Q, width: g.width, rows: t.rows, columns: t.columns,
                                offH: t.offH, offW: t.offW)
                sgemm(m: m, n: pixels, k: cin, a: w, lda: cin, b: xs, ldb: pixels, beta: 0, c: ys, ldc: pixels)
                addRectangle(ys, y + (n * outChannels + outputs.lowerBound) * P, channels: m, channelStride: P, width: g.outW,
                             rows: t.rows, columns: t.columns, offH: 0, offW: 0)
            }
        }
        if relu { for n in 0..<batch { reluInPlace(y + (n * outChannels + outputs.lowerBound) * P, count: m * P) } }
    }
}

/// dweight += and, when given, dx = the gradients of a tap-wise convolution (dbias is the
/// caller's).
func tapwiseBackward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?,
                     dweight: UnsafeMutablePointer<Float>, batch: Int, outChannels: Int, geometry g: ConvGeometry) {
    let taps = g.imageTaps, kk = g.kernelH * g.kernelW, cin = g.channels, P = g.outPixels, Q = g.inPixels
    // dW_tap (outputs, Cin) += dy_sub (outputs, pixels) * x_sub^T (pixels, Cin)
    Parallel.chunks(outChannels) { _, outputs in
        let m = outputs.count
        let dw = UnsafeMutablePointer<Float>.allocate(capacity: m * cin), xs = UnsafeMutablePointer<Float>.allocate(capacity: cin * P)
        let dys = UnsafeMutablePointer<Float>.allocate(capacity: m * P)
        defer { dw.deallocate(); xs.deallocate(); dys.deallocate() }
        for t in taps {
            let pixels = t.rows.count * t.columns.count
            for n in 0..<batch {
                gatherRectangle(x + n * cin * Q, xs, channels: cin, channelStride: Q, width: g.width, rows: t.rows, columns: t.columns,
                                offH: t.offH, offW: t.offW)
                gatherRectangle(dy + (n * outChannels + outputs.lowerBound) * P, dys, channels: m, channelStride: P, width: g.outW,
                                rows: t.rows, columns: t.columns, offH: 0, offW: 0)
                sgemm(transB: true, m: m, n: cin, k: pixels, a: dys, lda: pixels, b: xs, ldb: pixels, beta: n == 0 ? 0 : 1,
                      c: dw, ldc: cin)
            }
            for (i, co) in outputs.enumerated() { for ci in 0..<cin { dweight[(co * cin + ci) * kk + t.tap] += dw[i * cin + ci] } }
        }
    }
    guard let dx else { return }
    // dx_sub (inputs, pixels) += W_tap^T (inputs, Cout) * dy_sub (Cout, pixels)
    Parallel.chunks(cin) { _, inputs in
        let m = inputs.count
        let w = UnsafeMutablePointer<Float>.allocate(capacity: m * outChannels)
        let dys = UnsafeMutablePointer<Float>.allocate(capacity: outChannels * P), dxs = UnsafeMutablePointer<Float>.allocate(capacity: m * P)
        defer { w.deallocate(); dys.deallocate(); dxs.deallocate() }
        for n in 0..<batch { (dx + (n * cin + inputs.lowerBound) * Q).update(repeating: 0, count: m * Q) }
        for t in taps {
            for (i, ci) in inputs.enumerated() { for co in 0..<outChannels { w[i * outChannels + co] = weight[(co * cin + ci) * kk + t.tap] } }
            let pixels = t.rows.count * t.columns.count
            for n in 0..<batch {
                gatherRectangle(dy + n * outChannels * P, dys, channels: outChannels, channelStride: P, width: g.outW, rows: t.rows,
                                columns: t.columns, offH: 0, offW: 0)
                sgemm(m: m, n: pixels, k: outChannels, a: w, lda: outChannels, b: dys, ldb: pixels, beta: 0, c: dxs, ldc: pixels)
                addRectangle(dxs, dx + (n * cin + inputs.lowerBound) * Q, channels: m, channelStride: Q, width: g.width, rows: t.rows,
                             columns: t.columns, offH: t.offH, offW: t.offW)
            }
        }
    }
}
