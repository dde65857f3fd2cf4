import CSystem

// Winograd F(4x4, 3x3): 4x4 output tiles from 6x6 input tiles, 36 GEMMs, 4x fewer
// multiplications than direct convolution (F(2x2, 3x3): 2.25x) and cheaper transforms per
// output pixel. Used for the forward pass and the input gradient of 3x3 / stride 1 / padding 1
// convolutions on images of at least `winograd4MinimumSide` a side (`Winograd.swift` has the
// 2x2 version, used below that and for the weight gradient). Matrices from Lavin & Gray, "Fast Algorithms for Convolutional Neural
// Networks" (2016): B^T, G, A^T below.

/// Below this side F(2x2, 3x3) is faster for narrow layers: 4x4 tiles leave the GEMMs too few
/// columns (UNet w=16 on an AMD EPYC: 8 -> 48-50 images/s, 32 -> 53-55, 64 -> 54-56, 128 -> 52-53).
public let winograd4MinimumSide = 64

/// Wide layers (both sides at least `winograd4WideChannels`) take F(4x4) from 16 px up: their
/// GEMMs are long enough, and the 1.8x fewer multiplications show (2-core AMD EPYC Zen 4, batch
/// 4, forward / backward, best of 6: 512 -> 512 at 16 px 30-35 / 62-65 ms -> 19-22 / 42-47;
/// 1024 -> 256 at 16 px 32-35 / 56-67 -> 17-21 / 37-39; DeepLabV3's layer3, 256 -> 256 at
/// 32 px with dilation 2, 25-34 -> 18 ms forward). At 8 px it is slower (1024 -> 512: 16-19 ->
/// 19-23 ms), and so are 64-128 channels at 16-32 px.
public let winograd4WideChannels = 256

/// Scratch floats `winograd4Input` needs for an image `w` wide: a zero row and six combined rows.
func winograd4InputScratch(width w: Int) -> Int { w + 8 + 6 * (4 * ((w + 3) / 4) + 16) }

/// U = G g G^T for every (co, ci): weights (Cout, Cin, 3, 3), rows `rowStride` pairs apart
/// (default Cin) -> U (36, Cout, Cin).
func winograd4Weights(_ w: UnsafePointer<Float>, _ u: UnsafeMutablePointer<Float>, outChannels: Int, inChannels: Int,
                    flipped: Bool = false, rowStride: Int? = nil) {
    let pairs = outChannels * inChannels, rows = KernelRows(columns: inChannels, stride: rowStride ?? inChannels)
    typealias Six = (Lanes, Lanes, Lanes, Lanes, Lanes, Lanes)
    @inline(__always) func g6(_ a: Lanes, _ b: Lanes, _ c: Lanes) -> Six {
        (a / 4, -(a + b + c) / 6, -(a - b + c) / 6, a / 24 + b / 12 + c / 6, a / 24 - b / 12 + c / 6, c)
    }
    forEachKernelBlock(pairs) { p, count in
        let g = kernelTaps(w, p, count, flipped: flipped, rows: rows)
        // G g, column by column; then (G g) G^T row by row
        let c0 = g6(g[0], g[3], g[6]), c1 = g6(g[1], g[4], g[7]), c2 = g6(g[2], g[5], g[8])
        @inline(__always) func put(_ row: Int, _ r: Six) {
            let o = u + 6 * row * pairs + p
            store(r.0, o, count: count); store(r.1, o + pairs, count: count); store(r.2, o + 2 * pairs, count: count)
            store(r.3, o + 3 * pairs, count: count); store(r.4, o + 4 * pairs, count: count); store(r.5, o + 5 * pairs, count: count)
        }
        put(0, g6(c0.0, c1.0, c2.0)); put(1, g6(c0.1, c1.1, c2.1)); put(2, g6(c0.2, c1.2, c2.2))
        put(3, g6(c0.3, c1.3, c2.3)); put(4, g6(c0.4, c1.4, c2.4)); put(5, g6(c0.5, c1.5, c2.5))
    }
}

/// B^T applied to six vectors: (4a - 5c + e, -4b - 4c + d + e, 4b - 4c - d + e,
/// -2b - c + 2d + e, 2b - c - 2d + e, 4b - 5d + f).
@inline(__always)
func winograd4B(_ a: Lanes, _ b: Lanes, _ c: Lanes, _ d: Lanes, _ e: Lanes, _ f: Lanes)
    -> (Lanes, Lanes, Lanes, Lanes, Lanes, Lanes) {
    let ec = e - c, db = d - b
    return ((e - 5 * c).addingProduct(a, 4), (e + d).addingProduct(b + c, -4), (e - d).addingProduct(b - c, 4),
            ec.addingProduct(db, 2), ec.addingProduct(db, -2), (f - 5 * d).addingProduct(b, 4))
}

@inline(__always)
func winograd4B(_ a: Float, _ b: Float, _ c: Float, _ d: Float, _ e: Float, _ f: Float)
    -> (Float, Float, Float, Float, Float, Float) {
    (4 * a - 5 * c + e, e + d - 4 * (b + c), e - d + 4 * (b - c), e - c + 2 * (d - b), e - c - 2 * (d - b), 4 * b - 5 * d + f)
}

/// V = B^T d B for every channel and 6x6 tile (stride 4) in tile rows `tileRows` of one image
/// (C, H, W) -> V (C, 36, T), T = the block's tiles. For each tile row, B^T runs down the
/// columns on the image rows themselves (8 columns on SIMD lanes, rows outside the image read
/// as zeros) into six combined rows; then B runs along each combined row with 8 tiles on the
/// lanes: two 32-float loads, 4 floats apart, split into their column phases (padded column
/// 4 tx + k) by shuffles. Splitting every image row into phases in memory first, as this did
/// before, cost a third more (UNet w=16's 16-channel layer at 768 px, one core of a 2-core
/// Xeon: 21-25 -> 15-18 ns a tile and channel). `scratch` holds `winograd4InputScratch`
/// floats and is zero on the first call (the zero row and the padding columns are never written).
/// On training-sized maps (rows of 128 floats: 8 cache lines, too short for the hardware's
/// stream prefetcher to get going) the loads of x were most of its time; the rows of the next
/// tile row are prefetched (UNet w=16, batch 8, 128 px: 11-12% -> 10% of a step's samples).
func winograd4Input(_ x: UnsafePointer<Float>, _ v: UnsafeMutablePointer<Float>, channels: Int, height h: Int, width w: Int,
                    tileRows: Range<Int>, slab: TileSlab, scratch: UnsafeMutablePointer<Float>) {
    let tw = (w + 3) / 4, ty0 = tileRows.lowerBound
    let stride = 4 * tw + 16
    let plane = slab.plane
    let zeros = UnsafePointer(scratch), comb = scratch + w + 8
    @inline(__always) func row(_ c: Int, _ ty: Int, _ r: Int) -> UnsafePointer<Float> {
        let y = 4 * ty - 1 + r
        return y >= 0 && y < h ? x + (c * h + y) * w : zeros
    }
    for c in 0..<channels {
        for ty in tileRows {
            let r0 = row(c, ty, 0), r1 = row(c, ty, 1), r2 = row(c, ty, 2), r3 = row(c, ty, 3), r4 = row(c, ty, 4), r5 = row(c, ty, 5)
            // the rows the next tile row (or the next channel's first) reads beyond these: asked
            // for now, they arrive while this one is transformed
            let last = ty + 1 == tileRows.upperBound
            let (nc, nty) = last ? (c + 1 < channels ? c + 1 : c, tileRows.lowerBound) : (c, ty + 1)
            let n0 = row(nc, nty, last ? 0 : 2), n1 = row(nc, nty, last ? 1 : 3), n2 = row(nc, nty, 4), n3 = row(nc, nty, 5)
            let n4 = row(nc, nty, last ? 2 : 5), n5 = row(nc, nty, last ? 3 : 5)
            // B^T down the columns: comb row i, padded column col + 1
            var col = 0
            while col + 8 <= w {
                if col % 16 == 0 {
                    segdist_prefetch(n0 + col); segdist_prefetch(n1 + col); segdist_prefetch(n2 + col)
                    segdist_prefetch(n3 + col); segdist_prefetch(n4 + col); segdist_prefetch(n5 + col)
                }
                let o = winograd4B(load(r0, col), load(r1, col), load(r2, col), load(r3, col), load(r4, col), load(r5, col))
                let d = comb + col + 1
                store(o.0, d, 0); store(o.1, d + stride, 0); store(o.2, d + 2 * stride, 0)
                store(o.3, d + 3 * stride, 0); store(o.4, d + 4 * stride, 0); store(o.5, d + 5 * stride, 0)
                col += 8
            }
            while col < w {
                let o = winograd4B(r0[col], r1[col], r2[col], r3[col], r4[col], r5[col])
                let d = comb + col + 1
                d[0] = o.0; d[stride] = o.1; d[2 * stride] = o.2; d[3 * stride] = o.3; d[4 * stride] = o.4; d[5 * stride] = o.5
                col += 1
            }
            // ... then B along each combined row: tile tx reads padded columns 4tx ..< 4tx + 6
            let base = c * 36 * plane + slab.offset + (ty - ty0) * tw
            for i in 0..<6 {
                let p = comb + i * stride
                @inline(__always) func out(_ j: Int) -> UnsafeMutablePointer<Float> { v + (6 * i + j) * plane + base }
                var tx = 0
                while tx + 8 <= tw {
                    let a = UnsafeRawPointer(p + 4 * tx).loadUnaligned(as: SIMD32<Float>.self)
                    let b = UnsafeRawPointer(p + 4 * tx + 4).loadUnaligned(as: SIMD32<Float>.self)
                    let ae = a.evenHalf, ao = a.oddHalf, be = b.evenHalf, bo = b.oddHalf
                    let o = winograd4B(ae.evenHalf, ao.evenHalf, ae.oddHalf, ao.oddHalf, be.evenHalf, bo.evenHalf)
                    store(o.0, out(0), tx); store(o.1, out(1), tx); store(o.2, out(2), tx)
                    store(o.3, out(3), tx); store(o.4, out(4), tx); store(o.5, out(5), tx)
                    tx += 8
                }
                while tx < tw {
                    let q = p + 4 * tx
                    let o = winograd4B(q[0], q[1], q[2], q[3], q[4], q[5])
                    out(0)[tx] = o.0; out(1)[tx] = o.1; out(2)[tx] = o.2; out(3)[tx] = o.3; out(4)[tx] = o.4; out(5)[tx] = o.5
                    tx += 1
                }
            }
        }
    }
}

/// A^T applied to six vectors: (a + b + c + d + e, b - c + 2(d - e), b + c + 4(d + e), b - c + 8(d - e) + f).
@inline(__always)
func winograd4A(_ a: Lanes, _ b: Lanes, _ c: Lanes, _ d: Lanes, _ e: Lanes, _ f: Lanes) -> (Lanes, Lanes, Lanes, Lanes) {
    let de = d + e, dme = d - e, bc = b + c, bmc = b - c
    return (a + bc + de, bmc + 2 * dme, bc + 4 * de, bmc + 8 * dme + f)
}

@inline(__always)
func winograd4A(_ a: Float, _ b: Float, _ c: Float, _ d: Float, _ e: Float, _ f: Float) -> (Float, Float, Float, Float) {
    let de = d + e, dme = d - e, bc = b + c, bmc = b - c
    return (a + bc + de, bmc + 2 * dme, bc + 4 * de, bmc + 8 * dme + f)
}

/// The 32 floats a[0], b[0], c[0], d[0], a[1], ... : four phase vectors back in image order.
@inline(__always) func interleave4(_ a: Lanes, _ b: Lanes, _ c: Lanes, _ d: Lanes) -> (SIMD16<Float>, SIMD16<Float>) {
    (SIMD16(a[0], b[0], c[0], d[0], a[1], b[1], c[1], d[1], a[2], b[2], c[2], d[2], a[3], b[3], c[3], d[3]),
     SIMD16(a[4], b[4], c[4], d[4], a[5], b[5], c[5], d[5], a[6], b[6], c[6], d[6], a[7], b[7], c[7], d[7]))
}

/// y = A^T M A for every output channel and tile in tile rows `tileRows`: M (Cout, 36, T) ->
/// those rows of y (Cout, H, W), plus bias. Groups of 8 tiles that lie inside the image are
/// put back in image order by shuffles and stored as whole rows of 32 floats (storing them
/// one float at a time cost 25-28 against 17-21 ns a tile and channel, 16 channels at 768 px
/// on a Xeon core); the rest go through `scratch` (16 * tw floats: the 16 outputs of every
/// tile of a tile row) and are scattered one by one.
func winograd4Output(_ m: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>?,
                     outChannels: Int, height h: Int, width w: Int, tileRows: Range<Int>, slab: TileSlab, scratch q: UnsafeMutablePointer<Float>) {
    let tw = (w + 3) / 4, plane = slab.plane   // layout (channel, ξ, tile)
    for co in 0..<outChannels {
        let b = bias?[co] ?? 0, bv = Lanes(repeating: b)
        let out = y + co * h * w
        for ty in tileRows {
            let base = co * 36 * plane + slab.offset + (ty - tileRows.lowerBound) * tw
            func row(_ xi: Int) -> UnsafePointer<Float> { m + xi * plane + base }
            let fullRows = min(4, h - 4 * ty)   // image rows this tile row covers
            var tx = 0, scattered = tw   // tiles from `scattered` on go through q
            while tx + 8 <= tw {
                // A^T over the 6 rows, for each of the 6 columns j, then A over the columns
                @inline(__always) func column(_ j: Int) -> (Lanes, Lanes, Lanes, Lanes) {
                    winograd4A(load(row(j), tx), load(row(6 + j), tx), load(row(12 + j), tx), load(row(18 + j), tx),
                               load(row(24 + j), tx), load(row(30 + j), tx))
                }
                let c0 = column(0), c1 = column(1), c2 = column(2), c3 = column(3), c4 = column(4), c5 = column(5)
                let direct = 4 * tx + 32 <= w
                if !direct { scattered = min(scattered, tx) }
                @inline(__always) func emit(_ i: Int, _ o: (Lanes, Lanes, Lanes, Lanes)) {
                    if direct {
                        guard i < fullRows else { return }
                        let (lo, hi) = interleave4(o.0 + bv, o.1 + bv, o.2 + bv, o.3 + bv)
                        let d = UnsafeMutableRawPointer(out + (4 * ty + i) * w + 4 * tx)
                        d.storeBytes(of: lo, as: SIMD16<Float>.self); (d + 64).storeBytes(of: hi, as: SIMD16<Float>.self)
                    } else {
                        store(o.0 + bv, q + (4 * i) * tw, tx); store(o.1 + bv, q + (4 * i + 1) * tw, tx)
                        store(o.2 + bv, q + (4 * i + 2) * tw, tx); store(o.3 + bv, q + (4 * i + 3) * tw, tx)
                    }
                }
                emit(0, winograd4A(c0.0, c1.0, c2.0, c3.0, c4.0, c5.0))
                emit(1, winograd4A(c0.1, c1.1, c2.1, c3.1, c4.1, c5.1))
                emit(2, winograd4A(c0.2, c1.2, c2.2, c3.2, c4.2, c5.2))
                emit(3, winograd4A(c0.3, c1.3, c2.3, c3.3, c4.3, c5.3))
                tx += 8
            }
            scattered = min(scattered, tx)
            while tx < tw {
                @inline(__always) func column(_ j: Int) -> (Float, Float, Float, Float) {
                    winograd4A(row(j)[tx], row(6 + j)[tx], row(12 + j)[tx], row(18 + j)[tx], row(24 + j)[tx], row(30 + j)[tx])
                }
                let c0 = column(0), c1 = column(1), c2 = column(2), c3 = column(3), c4 = column(4), c5 = column(5)
                @inline(__always) func emit(_ i: Int, _ o: (Float, Float, Float, Float)) {
                    q[(4 * i) * tw + tx] = o.0 + b; q[(4 * i + 1) * tw + tx] = o.1 + b
                    q[(4 * i + 2) * tw + tx] = o.2 + b; q[(4 * i + 3) * tw + tx] = o.3 + b
                }
                emit(0, winograd4A(c0.0, c1.0, c2.0, c3.0, c4.0, c5.0))
                emit(1, winograd4A(c0.1, c1.1, c2.1, c3.1, c4.1, c5.1))
                emit(2, winograd4A(c0.2, c1.2, c2.2, c3.2, c4.2, c5.2))
                emit(3, winograd4A(c0.3, c1.3, c2.3, c3.3, c4.3, c5.3))
                tx += 1
            }
            // the rest: output row 4ty + i, column 4tx + j is q[4i + j][tx]
            for i in 0..<fullRows {
                let dst = out + (4 * ty + i) * w
                let q0 = q + (4 * i) * tw, q1 = q0 + tw, q2 = q1 + tw, q3 = q2 + tw
                var tx = scattered
                while 4 * tx + 4 <= w {
                    dst[4 * tx] = q0[tx]; dst[4 * tx + 1] = q1[tx]; dst[4 * tx + 2] = q2[tx]; dst[4 * tx + 3] = q3[tx]
                    tx += 1
                }
                let rest = w - 4 * tx   // 0...3 columns of a last, partial tile
                if rest > 0 { dst[4 * tx] = q0[tx] }
                if rest > 1 { dst[4 * tx + 1] = q1[tx] }
                if rest > 2 { dst[4 * tx + 2] = q2[tx] }
            }
        }
    }
}

/// A applied to four vectors: (a, a + b + c + d, a - b + c - d, a + 2b + 4c + 8d, a - 2b + 4c - 8d, d).
@inline(__always)
func winograd4AT(_ a: Lanes, _ b: Lanes, _ c: Lanes, _ d: Lanes) -> (Lanes, Lanes, Lanes, Lanes, Lanes, Lanes) {
    let ac = a + c, bd = b + d, c4 = a + 4 * c, bd8 = 2 * b + 8 * d
    return (a, ac + bd, ac - bd, c4 + bd8, c4 - bd8, d)
}

/// Scratch floats `winograd4OutputGradient` needs for `tw` tile columns: a zero row and six
/// combined rows.
func winograd4GradientScratch(tileColumns tw: Int) -> Int { 7 * (4 * tw + 8) }

/// DY = A dY A^T for every output channel and 4x4 tile in tile rows `tileRows` of an output
/// gradient (Cout, H, W) -> DY (Cout, 36, T): with V of the same tiles, dU = DY V^T is the
/// transformed weight gradient. A runs down the columns on the image rows themselves (rows
/// past the image read as zeros) into six combined rows, then along each with 8 tiles on the
/// lanes, their column phases split from one 32-float load by shuffles; pixels past the image
/// count as 0. `rows` holds `winograd4GradientScratch` floats.
func winograd4OutputGradient(_ dy: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, outChannels: Int,
                             height h: Int, width w: Int, tileRows: Range<Int>, slab: TileSlab, rows: UnsafeMutablePointer<Float>) {
    let tw = (w + 3) / 4, plane = slab.plane   // layout (channel, ξ, tile)
    let stride = 4 * tw + 8
    let zeros = UnsafePointer(rows), comb = rows + stride
    rows.update(repeating: 0, count: w)
    for i in 0..<6 { (comb + i * stride + w).update(repeating: 0, count: stride - w) }   // columns past the image
    for co in 0..<outChannels {
        let img = dy + co * h * w
        for ty in tileRows {
            @inline(__always) func src(_ r: Int) -> UnsafePointer<Float> { 4 * ty + r < h ? img + (4 * ty + r) * w : zeros }
            let r0 = src(0), r1 = src(1), r2 = src(2), r3 = src(3)
            // A over the tile's 4 rows, 8 columns at a time
            var col = 0
            while col + 8 <= w {
                let o = winograd4AT(load(r0, col), load(r1, col), load(r2, col), load(r3, col))
                store(o.0, comb, col); store(o.1, comb + stride, col); store(o.2, comb + 2 * stride, col)
                store(o.3, comb + 3 * stride, col); store(o.4, comb + 4 * stride, col); store(o.5, comb + 5 * stride, col)
                col += 8
            }
            while col < w {
                let a = r0[col], b = r1[col], c = r2[col], d = r3[col]
                let ac = a + c, bd = b + d, c4 = a + 4 * c, bd8 = 2 * b + 8 * d
                comb[col] = a; comb[stride + col] = ac + bd; comb[2 * stride + col] = ac - bd
                comb[3 * stride + col] = c4 + bd8; comb[4 * stride + col] = c4 - bd8; comb[5 * stride + col] = d
                col += 1
            }
            // ... then A over each combined row's 4 column phases
            let base = co * 36 * plane + slab.offset + (ty - tileRows.lowerBound) * tw
            for r in 0..<6 {
                let p = comb + r * stride
                @inline(__always) func dst(_ j: Int) -> UnsafeMutablePointer<Float> { out + (6 * r + j) * plane + base }
                var tx = 0
                while tx + 8 <= tw {
                    let v = UnsafeRawPointer(p + 4 * tx).loadUnaligned(as: SIMD32<Float>.self)
                    let e = v.evenHalf, o = v.oddHalf
                    let t = winograd4AT(e.evenHalf, o.evenHalf, e.oddHalf, o.oddHalf)
                    store(t.0, dst(0), tx); store(t.1, dst(1), tx); store(t.2, dst(2), tx)
                    store(t.3, dst(3), tx); store(t.4, dst(4), tx); store(t.5, dst(5), tx)
                    tx += 8
                }
                while tx < tw {
                    let a = p[4 * tx], b = p[4 * tx + 1], c = p[4 * tx + 2], d = p[4 * tx + 3]
                    let ac = a + c, bd = b + d, c4 = a + 4 * c, bd8 = 2 * b + 8 * d
                    dst(0)[tx] = a; dst(1)[tx] = ac + bd; dst(2)[tx] = ac - bd; dst(3)[tx] = c4 + bd8; dst(4)[tx] = c4 - bd8; dst(5)[tx] = d
                    tx += 1
                }
            }
        }
    }
}

/// dW (Cout, Cin, 3, 3) += G^T dU G for every (co, ci), dU (36, Cout, Cin). G^T applied to
/// (u0..u5): (u0/4 - (u1 + u2)/6 + (u3 + u4)/24, (u2 - u1)/6 + (u3 - u4)/12, (u3 + u4 - u1 - u2)/6 + u5).
func winograd4WeightGradientTransform(_ du: UnsafePointer<Float>, _ dw: UnsafeMutablePointer<Float>, outChannels: Int, inChannels: Int,
                                      rowStride: Int? = nil) {
    let pairs = outChannels * inChannels, rows = KernelRows(columns: inChannels, stride: rowStride ?? inChannels)
    @inline(__always) func gt(_ u0: Lanes, _ u1: Lanes, _ u2: Lanes, _ u3: Lanes, _ u4: Lanes, _ u5: Lanes) -> (Lanes, Lanes, Lanes) {
        (u0 / 4 - (u1 + u2) / 6 + (u3 + u4) / 24, (u2 - u1) / 6 + (u3 - u4) / 12, (u3 + u4 - u1 - u2) / 6 + u5)
    }
    forEachKernelBlock(pairs) { p, count in
        @inline(__always) func at(_ xi: Int) -> Lanes { load(du + xi * pairs + p, count: count) }
        // G^T over the 6 rows, for each of the 6 columns j
        @inline(__always) func column(_ j: Int) -> (Lanes, Lanes, Lanes) { gt(at(j), at(6 + j), at(12 + j), at(18 + j), at(24 + j), at(30 + j)) }
        let c0 = column(0), c1 = column(1), c2 = column(2), c3 = column(3), c4 = column(4), c5 = column(5)
        // ... then over the columns, row by row
        let r0 = gt(c0.0, c1.0, c2.0, c3.0, c4.0, c5.0), r1 = gt(c0.1, c1.1, c2.1, c3.1, c4.1, c5.1)
        let r2 = gt(c0.2, c1.2, c2.2, c3.2, c4.2, c5.2)
        addKernelTaps([r0.0, r0.1, r0.2, r1.0, r1.1, r1.2, r2.0, r2.1, r2.2], dw, p, count, rows: rows)
    }
}
