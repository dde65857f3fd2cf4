// Winograd F(2x2, 3x3) for 3x3, stride-1, padding-1, undilated convolutions (the UNet's, and
// their stride-1 input gradients): each 2x2 output tile is A^T [ (G g G^T) ⊙ (B^T d B) ] A of a
// 4x4 input tile d, so the multiply-adds move into 16 GEMMs (Cout x Cin) x (Cin x tiles) of
// 2.25x fewer multiplications than direct convolution, and the input is expanded 4x instead of
// im2col's 9x. The transforms use only adds and halves (exact in floating point).
//
// Layouts: U[ξ][Cout][Cin] (transformed weights), V[Cin][ξ][T], M[Cout][ξ][T] (a channel's tiles
// together; the GEMMs step over ξ with leading dimension 16T), ξ = 4i + j of the
// 4x4 tile, T = tile rows x tile columns of one image.

extension ConvGeometry {
    /// Whether the Winograd path applies: 3x3, stride 1, padding 1, dilation 1, and an image big
    /// enough for tiles to pay off. From 8 input channels: FCN-8s's 8 -> 8 first block at 128 px
    /// (width 8) went 80-86 -> 92-100 images/s a step when it left im2col (Xeon, 3 paired runs).
    public var isWinograd3x3: Bool {
        kernelH == 3 && kernelW == 3 && stride == 1 && padding == 1 && dilation == 1 && height >= 4 && width >= 4 && channels >= 8
    }
}

/// U = G g G^T for every (co, ci): weights (Cout, Cin, 3, 3), rows `rowStride` pairs apart
/// (a group of a wider weight's columns; default Cin) -> U (16, Cout, Cin).
/// G applied to (a, b, c): (a, (a + b + c) / 2, (a - b + c) / 2, c).
func winogradWeights(_ w: UnsafePointer<Float>, _ u: UnsafeMutablePointer<Float>, outChannels: Int, inChannels: Int,
                    flipped: Bool = false, rowStride: Int? = nil) {
    let pairs = outChannels * inChannels, rows = KernelRows(columns: inChannels, stride: rowStride ?? inChannels)
    @inline(__always) func g4(_ a: Lanes, _ b: Lanes, _ c: Lanes) -> (Lanes, Lanes, Lanes, Lanes) {
        (a, 0.5 * (a + b + c), 0.5 * (a - b + c), c)
    }
    forEachKernelBlock(pairs) { p, count in
        let g = kernelTaps(w, p, count, flipped: flipped, rows: rows)
        // G g, column by column: rows k of G g are (r0[k], r1[k], r2[k]) for the 3 columns
        let c0 = g4(g[0], g[3], g[6]), c1 = g4(g[1], g[4], g[7]), c2 = g4(g[2], g[5], g[8])
        @inline(__always) func put(_ row: Int, _ v: (Lanes, Lanes, Lanes, Lanes)) {
            store(v.0, u + (4 * row) * pairs + p, count: count); store(v.1, u + (4 * row + 1) * pairs + p, count: count)
            store(v.2, u + (4 * row + 2) * pairs + p, count: count); store(v.3, u + (4 * row + 3) * pairs + p, count: count)
        }
        // ... then (G g) G^T, row by row
        put(0, g4(c0.0, c1.0, c2.0)); put(1, g4(c0.1, c1.1, c2.1)); put(2, g4(c0.2, c1.2, c2.2)); put(3, g4(c0.3, c1.3, c2.3))
    }
}

/// Scratch floats `winogradInput` needs for an image `w` wide: a zero row and four combined rows.
func winogradInputScratch(width w: Int) -> Int { w + 8 + 4 * (2 * ((w + 1) / 2) + 24) }

/// V = B^T d B for every channel and tile in tile rows `tileRows` of one image (C, H, W) ->
/// V (C, 16, T), T = the block's tiles. For each tile row, B^T runs down the columns on the
/// image rows themselves (8 columns on SIMD lanes; rows outside the image read as zeros) into
/// four combined rows (padded column c + 1 holds image column c), then B along each with 8
/// tiles on the lanes: tile tx reads padded columns 2tx ..< 2tx + 4, the even and odd halves
/// of two 16-float loads 2 floats apart. `scratch` holds `winogradInputScratch` floats and is
/// zero on the first call (the zero row and the padding columns are never written).
func winogradInput(_ x: UnsafePointer<Float>, _ v: UnsafeMutablePointer<Float>, channels: Int, height h: Int, width w: Int,
                   tileRows: Range<Int>, slab: TileSlab, scratch: UnsafeMutablePointer<Float>) {
    let tw = (w + 1) / 2, ty0 = tileRows.lowerBound
    let stride = 2 * tw + 24
    let plane = slab.plane   // layout (channel, ξ, tile): one channel's tiles together
    let zeros = UnsafePointer(scratch), comb = scratch + w + 8
    let c0 = comb + 1, c1 = c0 + stride, c2 = c1 + stride, c3 = c2 + stride
    for c in 0..<channels {
        let img = x + c * h * w
        for ty in tileRows {
            @inline(__always) func src(_ r: Int) -> UnsafePointer<Float> {
                let y = 2 * ty - 1 + r
                return y >= 0 && y < h ? img + y * w : zeros
            }
            // B^T d over image rows 2ty - 1 ..< 2ty + 3: r0 - r2, r1 + r2, r2 - r1, r1 - r3
            let r0 = src(0), r1 = src(1), r2 = src(2), r3 = src(3)
            var col = 0
            while col + 8 <= w {
                let a = load(r0, col), b = load(r1, col), d = load(r2, col), e = load(r3, col)
                store(a - d, c0, col); store(b + d, c1, col); store(d - b, c2, col); store(b - e, c3, col)
                col += 8
            }
            while col < w {
                c0[col] = r0[col] - r2[col]; c1[col] = r1[col] + r2[col]; c2[col] = r2[col] - r1[col]; c3[col] = r1[col] - r3[col]
                col += 1
            }
            // ... then B over each tile's padded columns p0..p3: p0 - p2, p1 + p2, p2 - p1, p1 - p3
            let base = c * 16 * plane + slab.offset + (ty - ty0) * tw
            for i in 0..<4 {
                let p = comb + i * stride
                let o0 = v + (4 * i) * plane + base, o1 = v + (4 * i + 1) * plane + base
                let o2 = v + (4 * i + 2) * plane + base, o3 = v + (4 * i + 3) * plane + base
                var tx = 0
                while tx + 8 <= tw {
                    let a = UnsafeRawPointer(p + 2 * tx).loadUnaligned(as: SIMD16<Float>.self)
                    let b = UnsafeRawPointer(p + 2 * tx + 2).loadUnaligned(as: SIMD16<Float>.self)
                    let p0 = a.evenHalf, p1 = a.oddHalf, p2 = b.evenHalf, p3 = b.oddHalf
                    store(p0 - p2, o0, tx); store(p1 + p2, o1, tx); store(p2 - p1, o2, tx); store(p1 - p3, o3, tx)
                    tx += 8
                }
                while tx < tw {
                    let q = p + 2 * tx
                    o0[tx] = q[0] - q[2]; o1[tx] = q[1] + q[2]; o2[tx] = q[2] - q[1]; o3[tx] = q[1] - q[3]
                    tx += 1
                }
            }
        }
    }
}

/// The 16 floats a[0], b[0], a[1], b[1], ...: even and odd columns back in image order.
@inline(__always) func interleave2(_ a: Lanes, _ b: Lanes) -> SIMD16<Float> {
    SIMD16(a[0], b[0], a[1], b[1], a[2], b[2], a[3], b[3], a[4], b[4], a[5], b[5], a[6], b[6], a[7], b[7])
}

/// y = A^T M A for every output channel and tile in tile rows `tileRows`: M (Cout, 16, T) ->
/// those rows of y (Cout, H, W), plus bias; SIMD lanes across the tiles of a tile row. Groups
/// of 8 tiles inside the image go back in image order by shuffles, 16 floats a store; the
/// rest through `scratch` (4 * tw floats), one float at a time.
func winogradOutput(_ m: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>?,
                    outChannels: Int, height h: Int, width w: Int, tileRows: Range<Int>, slab: TileSlab, scratch: UnsafeMutablePointer<Float>) {
    let tw = (w + 1) / 2, plane = slab.plane   // layout (channel, ξ, tile)
    // scratch: the 4 results (y00, y01, y10, y11) of every tile of a row
    let q0 = scratch, q1 = scratch + tw, q2 = scratch + 2 * tw, q3 = scratch + 3 * tw
    for co in 0..<outChannels {
        let b = bias?[co] ?? 0, bv = Lanes(repeating: b)
        let out = y + co * h * w
        for ty in tileRows {
            let base = co * 16 * plane + slab.offset + (ty - tileRows.lowerBound) * tw
            func row(_ xi: Int) -> UnsafePointer<Float> { m + xi * plane + base }
            let top = out + 2 * ty * w, hasBottom = 2 * ty + 1 < h
            var tx = 0, scattered = tw   // tiles from `scattered` on go through q
            while tx + 8 <= tw {
                // rows of A^T M: s0 = m0j + m1j + m2j, s1 = m1j - m2j - m3j, for columns j = 0..3
                @inline(__always) func rows(_ j: Int) -> (Lanes, Lanes) {
                    let a = load(row(j), tx), bb = load(row(4 + j), tx), c = load(row(8 + j), tx), d = load(row(12 + j), tx)
                    return (a + bb + c, bb - c - d)
                }
                let (a0, b0) = rows(0), (a1, b1) = rows(1), (a2, b2) = rows(2), (a3, b3) = rows(3)
                // ... then A over columns: (c0 + c1 + c2, c1 - c2 - c3)
                let y00 = a0 + a1 + a2 + bv, y01 = a1 - a2 - a3 + bv, y10 = b0 + b1 + b2 + bv, y11 = b1 - b2 - b3 + bv
                if 2 * tx + 16 <= w {
                    UnsafeMutableRawPointer(top + 2 * tx).storeBytes(of: interleave2(y00, y01), as: SIMD16<Float>.self)
                    if hasBottom { UnsafeMutableRawPointer(top + w + 2 * tx).storeBytes(of: interleave2(y10, y11), as: SIMD16<Float>.self) }
                } else {
                    scattered = min(scattered, tx)
                    store(y00, q0, tx); store(y01, q1, tx); store(y10, q2, tx); store(y11, q3, tx)
                }
                tx += 8
            }
            scattered = min(scattered, tx)
            while tx < tw {
                var s0 = (Float(0), Float(0), Float(0), Float(0)), s1 = s0
                func at(_ xi: Int) -> Float { row(xi)[tx] }
                s0.0 = at(0) + at(4) + at(8); s1.0 = at(4) - at(8) - at(12)
                s0.1 = at(1) + at(5) + at(9); s1.1 = at(5) - at(9) - at(13)
                s0.2 = at(2) + at(6) + at(10); s1.2 = at(6) - at(10) - at(14)
                s0.3 = at(3) + at(7) + at(11); s1.3 = at(7) - at(11) - at(15)
                q0[tx] = s0.0 + s0.1 + s0.2 + b; q1[tx] = s0.1 - s0.2 - s0.3 + b
                q2[tx] = s1.0 + s1.1 + s1.2 + b; q3[tx] = s1.1 - s1.2 - s1.3 + b
                tx += 1
            }
            // the rest, interleaved into output rows 2ty and 2ty + 1
            for x in scattered..<(w / 2) { top[2 * x] = q0[x]; top[2 * x + 1] = q1[x] }
            if w % 2 == 1 { top[w - 1] = q0[tw - 1] }
            guard hasBottom else { continue }
            let bottom = top + w
            for x in scattered..<(w / 2) { bottom[2 * x] = q2[x]; bottom[2 * x + 1] = q3[x] }
            if w % 2 == 1 { bottom[w - 1] = q2[tw - 1] }
        }
    }
}

/// DY = A dY A^T for every output channel and tile in tile rows `tileRows` of one output
/// gradient (Cout, H, W) -> DY (Cout, 16, T): the transform whose product with V gives the transformed weight gradient.
/// Rows of A dY: (a, b), (a + c, b + d), (a - c, b - d), (-c, -d); then each row (p, q) ->
/// (p, p + q, p - q, -q). Pixels past the image's last row or column count as 0. Groups of 8
/// tiles inside the image read their columns straight from dY (the even and odd halves of a
/// 16-float load); the rest are split into `rows` (4 * tw floats) one by one.
func winogradOutputGradient(_ dy: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, outChannels: Int,
                            height h: Int, width w: Int, tileRows: Range<Int>, slab: TileSlab, rows: UnsafeMutablePointer<Float>) {
    let tw = (w + 1) / 2, plane = slab.plane   // layout (channel, ξ, tile)
    // the tile row's pixels split by column parity: a = (2ty, even), b = (2ty, odd), c, d the row below
    let a = rows, b = rows + tw, c = rows + 2 * tw, d = rows + 3 * tw
    let direct = w >= 16 ? (w - 16) / 2 + 1 : 0   // tiles tx < direct have 2tx + 16 <= w
    for co in 0..<outChannels {
        let img = dy + co * h * w
        for ty in tileRows {
            let top = img + 2 * ty * w, hasBottom = 2 * ty + 1 < h
            let base = co * 16 * plane + slab.offset + (ty - tileRows.lowerBound) * tw
            func put(_ i: Int, _ tx: Int, _ p: Lanes, _ q: Lanes) {
                store(p, out + (4 * i) * plane + base, tx); store(p + q, out + (4 * i + 1) * plane + base, tx)
                store(p - q, out + (4 * i + 2) * plane + base, tx); store(-q, out + (4 * i + 3) * plane + base, tx)
            }
            var tx = 0
            while tx + 8 <= direct {
                let t = UnsafeRawPointer(top + 2 * tx).loadUnaligned(as: SIMD16<Float>.self)
                let u = hasBottom ? UnsafeRawPointer(top + w + 2 * tx).loadUnaligned(as: SIMD16<Float>.self) : SIMD16<Float>()
                let va = t.evenHalf, vb = t.oddHalf, vc = u.evenHalf, vd = u.oddHalf
                put(0, tx, va, vb); put(1, tx, va + vc, vb + vd); put(2, tx, va - vc, vb - vd); put(3, tx, -vc, -vd)
                tx += 8
            }
            guard tx < tw else { continue }
            // the rest of the row's tiles, split one pixel at a time
            let first = tx
            for k in 0..<2 {
                let y = 2 * ty + k, even = k == 0 ? a : c, odd = k == 0 ? b : d
                (even + first).update(repeating: 0, count: tw - first); (odd + first).update(repeating: 0, count: tw - first)
                guard y < h else { continue }
                let src = img + y * w
                for x in first..<(w / 2) { even[x] = src[2 * x]; odd[x] = src[2 * x + 1] }
                if w % 2 == 1 { even[tw - 1] = src[w - 1] }
            }
            while tx + 8 <= tw {
                let va = load(a, tx), vb = load(b, tx), vc = load(c, tx), vd = load(d, tx)
                put(0, tx, va, vb); put(1, tx, va + vc, vb + vd); put(2, tx, va - vc, vb - vd); put(3, tx, -vc, -vd)
                tx += 8
            }
            while tx < tw {
                func put1(_ i: Int, _ p: Float, _ q: Float) {
                    out[(4 * i) * plane + base + tx] = p; out[(4 * i + 1) * plane + base + tx] = p + q
                    out[(4 * i + 2) * plane + base + tx] = p - q; out[(4 * i + 3) * plane + base + tx] = -q
                }
                put1(0, a[tx], b[tx]); put1(1, a[tx] + c[tx], b[tx] + d[tx]); put1(2, a[tx] - c[tx], b[tx] - d[tx]); put1(3, -c[tx], -d[tx])
                tx += 1
            }
        }
    }
}

/// dW (Cout, Cin, 3, 3), rows `rowStride` pairs apart (default Cin), += G^T dU G for every
/// (co, ci), dU (16, Cout, Cin). G^T rows: (1, 1/2, 1/2, 0), (0, 1/2, -1/2, 0), (0, 1/2, 1/2, 1).
func winogradWeightGradientTransform(_ du: UnsafePointer<Float>, _ dw: UnsafeMutablePointer<Float>, outChannels: Int, inChannels: Int,
                                     rowStride: Int? = nil) {
    let pairs = outChannels * inChannels, rows = KernelRows(columns: inChannels, stride: rowStride ?? inChannels)
    @inline(__always) func gt(_ u0: Lanes, _ u1: Lanes, _ u2: Lanes, _ u3: Lanes) -> (Lanes, Lanes, Lanes) {
        (u0 + 0.5 * (u1 + u2), 0.5 * (u1 - u2), 0.5 * (u1 + u2) + u3)
    }
    forEachKernelBlock(pairs) { p, count in
        @inline(__always) func at(_ xi: Int) -> Lanes { load(du + xi * pairs + p, count: count) }
        // G^T over rows (4 -> 3), for each of the 4 columns
        let c0 = gt(at(0), at(4), at(8), at(12)), c1 = gt(at(1), at(5), at(9), at(13))
        let c2 = gt(at(2), at(6), at(10), at(14)), c3 = gt(at(3), at(7), at(11), at(15))
        // ... then over columns (4 -> 3), row by row
        let r0 = gt(c0.0, c1.0, c2.0, c3.0), r1 = gt(c0.1, c1.1, c2.1, c3.1), r2 = gt(c0.2, c1.2, c2.2, c3.2)
        addKernelTaps([r0.0, r0.1, r0.2, r1.0, r1.1, r1.2, r2.0, r2.1, r2.2], dw, p, count, rows: rows)
    }
}
