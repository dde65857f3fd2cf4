// Small phase images — FCN's and DeepLabV3's layer4 on training crops (16 px at dilation 4:
// 4x4 phases) and layer3 (8x8) — have one to four F(2x2) tiles a row, and the transforms in
// `Winograd.swift` put a tile row's tiles on the SIMD lanes, so on these they ran one float at a
// time: 40-50% of such a layer's time went to transforms (512 -> 512 channels, batch 4, 2-core
// Xeon). Here the phases are split into an image-minor layout (C, H/d, W/d, B), B = N d² phase
// images, where one pixel of every phase image is a contiguous run: the transforms run with 8
// phase images on the lanes, whole vectors in and out, and the plane of tiles is ordered
// (tile, image) — the whole-batch GEMMs (`winogradWholeBatchProducts`) do not mind the order.
// Measured (2-core Xeon, Emerald Rapids; best of 12 interleaved): 512 -> 512, batch 4, 16 px,
// dilation 4, forward 17.5 -> 13.6 ms, backward 32.3 -> 25.4 ms; 256 -> 256 at dilation 2,
// backward 7.7 -> 6.5 ms; a whole fcn_resnet50 step (batch 4, 128 px) 922 -> 858 ms at best,
// 999 -> 972 ms median over 32 steps.

extension ConvGeometry {
    /// Whether the dilated path (`winogradPhases` is d) runs its phases interleaved: phase images
    /// under 16 px wide (fewer than 8 tiles a row) on F(2x2), under the whole-batch schedule.
    func interleavesPhases(outChannels cout: Int, phases d: Int, batch: Int) -> Bool {
        let p = phaseGeometry, variant = WinogradVariant.forMap(height: p.height, width: p.width, channels: min(channels, cout))
        guard variant.side == 2, p.width < 16 else { return false }
        if case .wholeBatch = variant.schedule(batch: batch * d * d, inChannels: channels, outChannels: cout,
                                               height: p.height, width: p.width) { return true }
        return false
    }
}

/// x (N, C, H, W) -> xp (C, H/d, W/d, N d²): xp[c, i, j, (n d + r) d + s] = x[n, c, d i + r, d j + s].
/// A row of x is W/d runs of d floats, one run per phase column.
func splitPhasesInterleaved(_ x: UnsafePointer<Float>, _ xp: UnsafeMutablePointer<Float>, batch: Int, channels: Int,
                            height h: Int, width w: Int, phases d: Int) {
    forEachInterleavedRun(batch: batch, channels: channels, height: h, width: w, phases: d) { pixel, phase in
        for s in 0..<d { xp[phase + s] = x[pixel + s] }
    }
}

/// The inverse of `splitPhasesInterleaved`.
func mergePhasesInterleaved(_ xp: UnsafePointer<Float>, _ x: UnsafeMutablePointer<Float>, batch: Int, channels: Int,
                            height h: Int, width w: Int, phases d: Int) {
    forEachInterleavedRun(batch: batch, channels: channels, height: h, width: w, phases: d) { pixel, phase in
        for s in 0..<d { x[pixel + s] = xp[phase + s] }
    }
}

/// Calls `body(pixel, phase)` for every run of d pixels of x (N, C, H, W) starting at `pixel`
/// (columns d j ..< d j + d of a row), `phase` being where the run goes in (C, H/d, W/d, N d²).
/// Channels are spread over the workers (each writes its own channel's block).
@inline(__always) private func forEachInterleavedRun(batch: Int, channels: Int, height h: Int, width w: Int, phases d: Int,
                                                     _ body: (_ pixel: Int, _ phase: Int) -> Void) {
    let ph = h / d, pw = w / d, images = batch * d * d
    Parallel.forEach(channels) { c in
        for n in 0..<batch {
            for y in 0..<h {
                let i = y / d, r = y % d
                let pixel = ((n * channels + c) * h + y) * w, phase = ((c * ph + i) * pw) * images + (n * d + r) * d
                for j in 0..<pw { body(pixel + j * d, phase + j * images) }
            }
        }
    }
}

/// The tiles of interleaved phase images: `images` images of `height` x `width`, F(2x2).
struct PhaseLanes {
    let height: Int, width: Int, images: Int
    var tileRows: Int { (height + 1) / 2 }
    var tileColumns: Int { (width + 1) / 2 }
    /// Tiles in a plane of V, M or DY: every image's, ordered (tile, image).
    var plane: Int { tileRows * tileColumns * images }

    /// Calls `body(c, k, ty, tx, b, count)` for each channel c of `channels` (k its index in
    /// the range), tile (ty, tx) and block of `count` <= 8 images from b; channels spread over
    /// the workers.
    @inline(__always) func forEachBlock(_ channels: Range<Int>,
                                        _ body: (_ c: Int, _ k: Int, _ ty: Int, _ tx: Int, _ b: Int, _ count: Int) -> Void) {
        Parallel.chunks(channels.count) { _, ks in
            for k in ks {
                for ty in 0..<tileRows { for tx in 0..<tileColumns {
                    var b = 0
                    while b < images { body(channels.lowerBound + k, k, ty, tx, b, min(8, images - b)); b += 8 }
                } }
            }
        }
    }

    /// The lanes of pixel (y, x) of channel c of (C, height, width, images) memory, images b ..<
    /// b + count; 0 outside the image.
    @inline(__always) func pixel(_ p: UnsafePointer<Float>, _ c: Int, _ y: Int, _ x: Int, _ b: Int, _ count: Int) -> Lanes {
        guard y >= 0, y < height, x >= 0, x < width else { return Lanes() }
        return load(p + ((c * height + y) * width + x) * images + b, count: count)
    }

    /// Where tile point ξ of channel k's tile (ty, tx), image b, lies in a plane laid out (channel, ξ, plane).
    @inline(__always) func slot(_ k: Int, _ xi: Int, _ ty: Int, _ tx: Int, _ b: Int) -> Int {
        (k * 16 + xi) * plane + (ty * tileColumns + tx) * images + b
    }

    /// V = B^T d B of channels `channels` of xp: V's channel k is channel `channels.lowerBound + k`.
    func input(_ xp: UnsafePointer<Float>, _ v: UnsafeMutablePointer<Float>, channels: Range<Int>) {
        forEachBlock(channels) { c, k, ty, tx, b, count in
            // B^T down each column q of the 4x4 tile: (d0 - d2, d1 + d2, d2 - d1, d1 - d3)
            var t = [16 of Lanes](repeating: Lanes())
            for q in 0..<4 {
                let x = 2 * tx - 1 + q
                let d0 = pixel(xp, c, 2 * ty - 1, x, b, count), d1 = pixel(xp, c, 2 * ty, x, b, count)
                let d2 = pixel(xp, c, 2 * ty + 1, x, b, count), d3 = pixel(xp, c, 2 * ty + 2, x, b, count)
                t[q] = d0 - d2; t[4 + q] = d1 + d2; t[8 + q] = d2 - d1; t[12 + q] = d1 - d3
            }
            // ... then B along each row i: (p0 - p2, p1 + p2, p2 - p1, p1 - p3)
            for i in 0..<4 {
                let p0 = t[4 * i], p1 = t[4 * i + 1], p2 = t[4 * i + 2], p3 = t[4 * i + 3]
                store(p0 - p2, v + slot(k, 4 * i, ty, tx, b), count: count)
                store(p1 + p2, v + slot(k, 4 * i + 1, ty, tx, b), count: count)
                store(p2 - p1, v + slot(k, 4 * i + 2, ty, tx, b), count: count)
                store(p1 - p3, v + slot(k, 4 * i + 3, ty, tx, b), count: count)
            }
        }
    }

    /// Channels `channels` of yp (C, height, width, images) = A^T M A (+ bias, then with `relu`
    /// max(0, y)); M's channel k is channel `channels.lowerBound + k`.
    func output(_ m: UnsafePointer<Float>, _ yp: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>?, relu: Bool,
                channels: Range<Int>) {
        forEachBlock(channels) { c, k, ty, tx, b, count in
            @inline(__always) func at(_ xi: Int) -> Lanes { load(m + slot(k, xi, ty, tx, b), count: count) }
            // A^T down the columns j: (m0j + m1j + m2j, m1j - m2j - m3j), then A along the rows
            var s0 = [4 of Lanes](repeating: Lanes()), s1 = s0
            for j in 0..<4 {
                let a = at(j), bb = at(4 + j), cc = at(8 + j), dd = at(12 + j)
                s0[j] = a + bb + cc; s1[j] = bb - cc - dd
            }
            let shift = Lanes(repeating: bias?[c] ?? 0)
            // (y00, y01, y10, y11) in registers: an Array here was a heap allocation per block
            let results: [4 of Lanes] = [s0[0] + s0[1] + s0[2], s0[1] - s0[2] - s0[3], s1[0] + s1[1] + s1[2], s1[1] - s1[2] - s1[3]]
            for index in 0..<4 {
                let y = 2 * ty + index / 2, x = 2 * tx + index % 2
                guard y < height, x < width else { continue }
                let r = results[index] + shift
                store(relu ? pointwiseMax(r, Lanes()) : r, yp + ((c * height + y) * width + x) * images + b, count: count)
            }
        }
    }

    /// DY = A dY A^T of channels `channels` of dyp (C, height, width, images), pixels past the
    /// image's last row or column counting as 0: rows of A dY (a, b), (a + c, b + d), (a - c,
    /// b - d), (-c, -d), then each row (p, q) -> (p, p + q, p - q, -q).
    func outputGradient(_ dyp: UnsafePointer<Float>, _ dyt: UnsafeMutablePointer<Float>, channels: Range<Int>) {
        forEachBlock(channels) { c, k, ty, tx, b, count in
            let a = pixel(dyp, c, 2 * ty, 2 * tx, b, count), bb = pixel(dyp, c, 2 * ty, 2 * tx + 1, b, count)
            let cc = pixel(dyp, c, 2 * ty + 1, 2 * tx, b, count), dd = pixel(dyp, c, 2 * ty + 1, 2 * tx + 1, b, count)
            @inline(__always) func put(_ i: Int, _ p: Lanes, _ q: Lanes) {
                store(p, dyt + slot(k, 4 * i, ty, tx, b), count: count)
                store(p + q, dyt + slot(k, 4 * i + 1, ty, tx, b), count: count)
                store(p - q, dyt + slot(k, 4 * i + 2, ty, tx, b), count: count)
                store(-q, dyt + slot(k, 4 * i + 3, ty, tx, b), count: count)
            }
            put(0, a, bb); put(1, a + cc, bb + dd); put(2, a - cc, bb - dd); put(3, -cc, -dd)
        }
    }
}

/// y = the dilated convolution of x on interleaved phase images (`interleavesPhases`).
func dilatedLanesForward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                         y: UnsafeMutablePointer<Float>, batch: Int, outChannels cout: Int, geometry g: ConvGeometry, phases d: Int,
                         relu: Bool) {
    let cin = g.channels, lanes = PhaseLanes(height: g.height / d, width: g.width / d, images: batch * d * d)
    let xp = UnsafeMutablePointer<Float>.allocate(capacity: batch * cin * g.inPixels)
    let yp = UnsafeMutablePointer<Float>.allocate(capacity: batch * cout * g.inPixels)
    defer { xp.deallocate(); yp.deallocate() }
    splitPhasesInterleaved(x, xp, batch: batch, channels: cin, height: g.height, width: g.width, phases: d)
    let groups = WinogradVariant.f2.groupChannels(inChannels: cin, outChannels: cout, plane: lanes.plane)
    winogradWholeBatchProducts(.f2, kernels: .weight(weight), inChannels: cin, outChannels: cout, plane: lanes.plane,
                               groupChannels: groups, transformInputs: { ins, v in lanes.input(xp, v, channels: ins) },
                               transformOutputs: { outs, m in lanes.output(m, yp, bias: bias, relu: relu, channels: outs) })
    mergePhasesInterleaved(yp, y, batch: batch, channels: cout, height: g.height, width: g.width, phases: d)
}

/// dweight += and, when `dx` is given, dx = the gradients of the dilated convolution on
/// interleaved phase images (dbias is the caller's).
func dilatedLanesBackward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                          dx: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>, batch: Int,
                          outChannels cout: Int, geometry g: ConvGeometry, phases d: Int) {
    let cin = g.channels, lanes = PhaseLanes(height: g.height / d, width: g.width / d, images: batch * d * d)
    let xp = UnsafeMutablePointer<Float>.allocate(capacity: batch * cin * g.inPixels)
    let dyp = UnsafeMutablePointer<Float>.allocate(capacity: batch * cout * g.inPixels)
    defer { xp.deallocate(); dyp.deallocate() }
    splitPhasesInterleaved(x, xp, batch: batch, channels: cin, height: g.height, width: g.width, phases: d)
    splitPhasesInterleaved(dy, dyp, batch: batch, channels: cout, height: g.height, width: g.width, phases: d)
    let groups = WinogradVariant.f2.groupChannels(inChannels: cin, outChannels: cout, plane: lanes.plane)
    winogradWholeBatchWeightProducts(.f2, dweight: dweight, inChannels: cin, outChannels: cout, plane: lanes.plane,
                                     groupChannels: groups, transformInputs: { ins, v in lanes.input(xp, v, channels: ins) },
                                     transformGradients: { outs, dyt in lanes.outputGradient(dyp, dyt, channels: outs) })
    guard let dx else { return }
    // the phase images' input gradient: the flipped-kernel convolution of dy's phases, written over xp
    winogradWholeBatchProducts(.f2, kernels: .adjoint(of: weight), inChannels: cout, outChannels: cin, plane: lanes.plane,
                               groupChannels: WinogradVariant.f2.groupChannels(inChannels: cout, outChannels: cin, plane: lanes.plane),
                               transformInputs: { ins, v in lanes.input(dyp, v, channels: ins) },
                               transformOutputs: { outs, m in lanes.output(m, xp, bias: nil, relu: false, channels: outs) })
    mergePhasesInterleaved(xp, dx, batch: batch, channels: cin, height: g.height, width: g.width, phases: d)
}
