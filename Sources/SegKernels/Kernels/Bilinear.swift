// Legend: planes = N * C; each plane is inH x inW in and outH x outW out.

/// For each output coordinate along one axis: the two source indices and their weights,
/// computed as PyTorch's `upsample_bilinear2d` does.
public struct BilinearAxis {
    public let i0: [Int], i1: [Int], w0: [Float], w1: [Float]

    public init(inSize: Int, outSize: Int, alignCorners: Bool) {
        var i0 = [Int](repeating: 0, count: outSize), i1 = i0
        var w0 = [Float](repeating: 0, count: outSize), w1 = w0
        let scale: Float = alignCorners
            ? (outSize > 1 ? Float(inSize - 1) / Float(outSize - 1) : 0)
            : Float(inSize) / Float(outSize)
        for o in 0..<outSize {
            let src = alignCorners ? scale * Float(o) : max(scale * (Float(o) + 0.5) - 0.5, 0)
            let lo = min(Int(src), inSize - 1)
            i0[o] = lo
            i1[o] = lo < inSize - 1 ? lo + 1 : lo
            w1[o] = src - Float(lo)
            w0[o] = 1 - w1[o]
        }
        self.i0 = i0; self.i1 = i1; self.w0 = w0; self.w1 = w1
    }
}

/// Separably: each source row the output needs is interpolated along x once, into one of two
/// row buffers (consecutive output rows share their source rows), and each output row is the
/// y-weighted sum of its two interpolated rows on SIMD lanes. The products and sums are those
/// of the one-pixel-at-a-time formula wy0 (wx0 a + wx1 b) + wy1 (wx0 c + wx1 d), in that order,
/// so the result is the same to the bit; it took 7% of a UNet prediction that way.
public func bilinearForward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, planes: Int,
                            inH: Int, inW: Int, outH: Int, outW: Int, alignCorners: Bool) {
    let ax = BilinearAxis(inSize: inW, outSize: outW, alignCorners: alignCorners)
    let ay = BilinearAxis(inSize: inH, outSize: outH, alignCorners: alignCorners)
    ax.i0.withUnsafeBufferPointer { i0 in ax.i1.withUnsafeBufferPointer { i1 in
    ax.w0.withUnsafeBufferPointer { w0 in ax.w1.withUnsafeBufferPointer { w1 in
        let (a, b, wa, wb) = (i0.baseAddress!, i1.baseAddress!, w0.baseAddress!, w1.baseAddress!)
        Parallel.chunks(planes) { _, range in
            let rows = UnsafeMutablePointer<Float>.allocate(capacity: 2 * outW)
            defer { rows.deallocate() }
            for p in range {
                let src = x + p * inH * inW, dst = y + p * outH * outW
                var held = (-1, -1)   // the source rows in rows[0] and rows[1]
                /// Source row i interpolated along x, computed unless held; never evicts row `keep`.
                func interpolated(_ i: Int, keep: Int) -> UnsafePointer<Float> {
                    if held.0 == i { return UnsafePointer(rows) }
                    if held.1 == i { return UnsafePointer(rows + outW) }
                    let slot = held.0 == keep ? 1 : 0, out = rows + slot * outW, r = src + i * inW
                    for q in 0..<outW { out[q] = wa[q] * r[a[q]] + wb[q] * r[b[q]] }
                    if slot == 0 { held.0 = i } else { held.1 = i }
                    return UnsafePointer(out)
                }
                for o in 0..<outH {
                    let h0 = interpolated(ay.i0[o], keep: ay.i1[o]), h1 = interpolated(ay.i1[o], keep: ay.i0[o])
                    let wy0 = ay.w0[o], wy1 = ay.w1[o], v0 = Lanes(repeating: wy0), v1 = Lanes(repeating: wy1)
                    let out = dst + o * outW
                    var q = 0
                    while q + 8 <= outW { store(v0 * load(h0, q) + v1 * load(h1, q), out, q); q += 8 }
                    while q < outW { out[q] = wy0 * h0[q] + wy1 * h1[q]; q += 1 }
                }
            }
        }
    } } } }
}

/// Overwrites dx with the adjoint of `bilinearForward` applied to dy, separably too: dy's rows
/// are spread over the source rows along y (SIMD lanes along the row) into a scratch of
/// inH x outW, then each of those rows is spread along x into its dx row.
public func bilinearBackward(dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, planes: Int,
                             inH: Int, inW: Int, outH: Int, outW: Int, alignCorners: Bool) {
    let ax = BilinearAxis(inSize: inW, outSize: outW, alignCorners: alignCorners)
    let ay = BilinearAxis(inSize: inH, outSize: outH, alignCorners: alignCorners)
    ax.i0.withUnsafeBufferPointer { i0 in ax.i1.withUnsafeBufferPointer { i1 in
    ax.w0.withUnsafeBufferPointer { w0 in ax.w1.withUnsafeBufferPointer { w1 in
        let (a, b, wa, wb) = (i0.baseAddress!, i1.baseAddress!, w0.baseAddress!, w1.baseAddress!)
        Parallel.chunks(planes) { _, range in
            let t = UnsafeMutablePointer<Float>.allocate(capacity: inH * outW)
            defer { t.deallocate() }
            for p in range {
                let g = dy + p * outH * outW, d = dx + p * inH * inW
                t.update(repeating: 0, count: inH * outW)
                /// r += wy * row on SIMD lanes.
                @inline(__always) func spread(_ row: UnsafePointer<Float>, _ wy: Float, into r: UnsafeMutablePointer<Float>) {
                    let v = Lanes(repeating: wy)
                    var q = 0
                    while q + 8 <= outW { store(load(r, q) + v * load(row, q), r, q); q += 8 }
                    while q < outW { r[q] += wy * row[q]; q += 1 }
                }
                for o in 0..<outH {
                    // the two source rows one after the other: they are one row at the bottom edge
                    spread(g + o * outW, ay.w0[o], into: t + ay.i0[o] * outW)
                    spread(g + o * outW, ay.w1[o], into: t + ay.i1[o] * outW)
                }
                d.update(repeating: 0, count: inH * inW)
                for i in 0..<inH {
                    let row = t + i * outW, out = d + i * inW
                    for q in 0..<outW { out[a[q]] += wa[q] * row[q]; out[b[q]] += wb[q] * row[q] }
                }
            }
        }
    } } } }
}
