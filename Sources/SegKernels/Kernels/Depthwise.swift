// Depthwise convolution (one input channel per group, MobileNet's) as a direct convolution, a
// plane at a time: it is memory-bound, and im2col would copy every input k*k times for a single
// multiply each.
//
// Each plane is first copied into a zero-padded scratch plane whose columns are split by
// stride phase (padded column c at phase c % stride, index c / stride). Every tap then reads
// 8 consecutive output columns as 8 consecutive floats, also at stride 2, with no bounds to
// test: the forward pass keeps each output vector in a register over all k*k taps and writes
// it once. (The walk it replaced went tap by tap over clipped row ranges, through a closure
// per row, scalar at stride 2: it took 37% of an lraspp_mobilenet_v3_large training step, perf.)

/// A plane of one depthwise layer, zero-padded and split into stride phases.
struct PaddedPlane {
    let g: ConvGeometry
    /// Rows (input rows + 2 * padding) and floats per phase row.
    let rows: Int, rowFloats: Int
    /// Output columns rounded up to whole vectors: the reads of the last vector stay inside.
    let vectorColumns: Int

    init(_ g: ConvGeometry) {
        self.g = g
        let s = g.stride, padded = g.width + 2 * g.padding
        vectorColumns = (g.outW + 7) / 8 * 8
        rows = g.height + 2 * g.padding
        rowFloats = max((padded + s - 1) / s, vectorColumns + (g.kernelW - 1) * g.dilation / s)
    }

    var floats: Int { g.stride * rows * rowFloats }

    /// The scratch index of padded pixel (row, column).
    @inline(__always) func index(row: Int, column c: Int) -> Int { ((c % g.stride) * rows + row) * rowFloats + c / g.stride }

    /// Floats from one output row's reads to the next's.
    var outputRowStride: Int { g.stride * rowFloats }

    /// Calls `body` with the offset of each tap's read (index kh * kW + kw) for output row 0,
    /// column 0, worked out once per plane: a division per tap and row was most of the work on
    /// 8 px planes.
    @inline(__always) func withTapOffsets<R>(_ body: (UnsafePointer<Int>) -> R) -> R {
        withUnsafeTemporaryAllocation(of: Int.self, capacity: g.kernelH * g.kernelW) { taps in
            for kh in 0..<g.kernelH { for kw in 0..<g.kernelW {
                taps[kh * g.kernelW + kw] = index(row: kh * g.dilation, column: kw * g.dilation)
            } }
            return body(UnsafePointer(taps.baseAddress!))
        }
    }

    /// scratch = the padded, phase-split copy of `plane` (height x width).
    func fill(_ scratch: UnsafeMutablePointer<Float>, from plane: UnsafePointer<Float>) {
        scratch.update(repeating: 0, count: floats)
        let p = g.padding, w = g.width
        for y in 0..<g.height {
            let src = plane + y * w
            if g.stride == 1 {
                (scratch + index(row: y + p, column: p)).update(from: src, count: w)
            } else {
                for x in 0..<w { scratch[index(row: y + p, column: x + p)] = src[x] }
            }
        }
    }

    /// plane (height x width) += the interior of a padded, phase-split scratch.
    func addInterior(of scratch: UnsafePointer<Float>, to plane: UnsafeMutablePointer<Float>) {
        let p = g.padding, w = g.width
        for y in 0..<g.height {
            let dst = plane + y * w
            if g.stride == 1 {
                rowAdd(dst, scratch + index(row: y + p, column: p), w)
            } else {
                for x in 0..<w { dst[x] += scratch[index(row: y + p, column: x + p)] }
            }
        }
    }
}

/// out (outH x outW) = bias + the window of `w` (kH x kW) over one padded input plane, or
/// out += it when `accumulate`.
func depthwiseForwardPlane(_ padded: UnsafePointer<Float>, _ layout: PaddedPlane, _ w: UnsafePointer<Float>, bias: Float,
                           _ out: UnsafeMutablePointer<Float>, accumulate: Bool = false) {
    let g = layout.g, kk = g.kernelH * g.kernelW, ow8 = layout.vectorColumns, rowStride = layout.outputRowStride
    layout.withTapOffsets { taps in
        for oh in 0..<g.outH {
            let row = out + oh * g.outW, input = padded + oh * rowStride
            var ow = 0
            while ow < ow8 {
                var acc = Lanes(repeating: bias)
                for t in 0..<kk { acc = acc.addingProduct(Lanes(repeating: w[t]), load(input + taps[t], ow)) }
                let count = min(8, g.outW - ow)
                if count == 8 {
                    store(accumulate ? acc + load(row, ow) : acc, row, ow)
                } else {
                    for i in 0..<count { row[ow + i] = accumulate ? row[ow + i] + acc[i] : acc[i] }
                }
                ow += 8
            }
        }
    }
}

/// dw (kH x kW) += the correlation of one output-gradient plane, copied into rows of
/// `vectorColumns` with zeros after its last column, with its padded input plane.
func depthwiseWeightGradientPlane(_ padded: UnsafePointer<Float>, _ layout: PaddedPlane, dy: UnsafePointer<Float>,
                                  _ dw: UnsafeMutablePointer<Float>) {
    let g = layout.g, ow8 = layout.vectorColumns, rowStride = layout.outputRowStride
    layout.withTapOffsets { taps in
        for t in 0..<(g.kernelH * g.kernelW) {
            var acc = Lanes()
            for oh in 0..<g.outH {
                let x = padded + oh * rowStride + taps[t], d = dy + oh * ow8
                var ow = 0
                while ow < ow8 { acc = acc.addingProduct(load(d, ow), load(x, ow)); ow += 8 }
            }
            dw[t] += acc.sum()
        }
    }
}

/// The padded, phase-split input-gradient scratch += each tap of `w` times one output-gradient
/// plane (rows of `vectorColumns`, zeros after the last column), scattered back.
func depthwiseInputGradientPlane(dy: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ padded: UnsafeMutablePointer<Float>,
                                 _ layout: PaddedPlane) {
    let g = layout.g, ow8 = layout.vectorColumns, rowStride = layout.outputRowStride
    layout.withTapOffsets { taps in
        for oh in 0..<g.outH {
            let d = dy + oh * ow8, input = padded + oh * rowStride
            for t in 0..<(g.kernelH * g.kernelW) {
                let a = Lanes(repeating: w[t]), x = input + taps[t]
                var ow = 0
                while ow < ow8 { store(load(x, ow).addingProduct(a, load(d, ow)), x, ow); ow += 8 }
            }
        }
    }
}

/// rows (outH x vectorColumns) = the plane (outH x outW), zeros after each row's last column.
func copyToVectorRows(_ plane: UnsafePointer<Float>, _ rows: UnsafeMutablePointer<Float>, _ layout: PaddedPlane) {
    let g = layout.g, ow8 = layout.vectorColumns
    for oh in 0..<g.outH {
        (rows + oh * ow8).update(from: plane + oh * g.outW, count: g.outW)
        if ow8 > g.outW { (rows + oh * ow8 + g.outW).update(repeating: 0, count: ow8 - g.outW) }
    }
}

/// y = depthwise conv2d(x) + bias: `outChannels / channels` outputs per input plane.
func depthwiseForward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                      y: UnsafeMutablePointer<Float>, batch: Int, outChannels: Int, geometry g: ConvGeometry) {
    let layout = PaddedPlane(g), perInput = outChannels / g.channels, kk = g.kernelH * g.kernelW
    // work items are input planes: each is padded once for its `perInput` outputs
    Parallel.chunks(batch * g.channels) { _, planes in
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: layout.floats)
        defer { scratch.deallocate() }
        for plane in planes {
            let n = plane / g.channels, ic = plane % g.channels
            layout.fill(scratch, from: x + plane * g.inPixels)
            for oc in (ic * perInput)..<((ic + 1) * perInput) {
                depthwiseForwardPlane(scratch, layout, weight + oc * kk, bias: bias?[oc] ?? 0,
                                      y + (n * outChannels + oc) * g.outPixels)
            }
        }
    }
}

/// dweight += and, when given, dx = the gradients of a depthwise convolution.
func depthwiseBackward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                       dx: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>, batch: Int, outChannels: Int,
                       geometry g: ConvGeometry) {
    let layout = PaddedPlane(g), perInput = outChannels / g.channels, kk = g.kernelH * g.kernelW
    let P = g.outPixels, Q = g.inPixels, rowsFloats = g.outH * layout.vectorColumns
    // weight gradient: each input channel's outputs over every image (one writer per channel)
    Parallel.chunks(g.channels) { _, channels in
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: layout.floats + rowsFloats)
        defer { scratch.deallocate() }
        let rows = scratch + layout.floats
        for ic in channels { for n in 0..<batch {
            layout.fill(scratch, from: x + (n * g.channels + ic) * Q)
            for oc in (ic * perInput)..<((ic + 1) * perInput) {
                copyToVectorRows(dy + (n * outChannels + oc) * P, rows, layout)
                depthwiseWeightGradientPlane(scratch, layout, dy: rows, dweight + oc * kk)
            }
        } }
    }
    guard let dx else { return }
    // stride 1: the forward window over each output plane with the kernel flipped (one plane: channels 1)
    if let adjoint = g.adjointGeometry(outChannels: 1) {
        depthwiseInputGradientGathered(dy: dy, weight: weight, dx: dx, batch: batch, outChannels: outChannels, geometry: g,
                                       adjoint: adjoint)
        return
    }
    // input gradient: each input plane gathers from the outputs that read it (one writer per plane)
    Parallel.chunks(batch * g.channels) { _, planes in
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: layout.floats + rowsFloats)
        defer { scratch.deallocate() }
        let rows = scratch + layout.floats
        for plane in planes {
            let n = plane / g.channels, ic = plane % g.channels
            scratch.update(repeating: 0, count: layout.floats)
            for oc in (ic * perInput)..<((ic + 1) * perInput) {
                copyToVectorRows(dy + (n * outChannels + oc) * P, rows, layout)
                depthwiseInputGradientPlane(dy: rows, weight + oc * kk, scratch, layout)
            }
            let d = dx + plane * Q
            d.update(repeating: 0, count: Q)
            layout.addInterior(of: scratch, to: d)
        }
    }
}

/// dx = the input gradient of a stride-1 depthwise convolution, each input plane the forward
/// window of its outputs' gradients with the kernels flipped: every dx vector is summed in a
/// register and written once (the scatter adds each tap into memory).
private func depthwiseInputGradientGathered(dy: UnsafePointer<Float>, weight: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>,
                                            batch: Int, outChannels: Int, geometry g: ConvGeometry, adjoint: ConvGeometry) {
    let layout = PaddedPlane(adjoint), perInput = outChannels / g.channels, kk = g.kernelH * g.kernelW
    let flipped = (0..<(outChannels * kk)).map { weight[$0 / kk * kk + kk - 1 - $0 % kk] }
    flipped.withUnsafeBufferPointer { flipped in
        Parallel.chunks(batch * g.channels) { _, planes in
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: layout.floats)
            defer { scratch.deallocate() }
            for plane in planes {
                let n = plane / g.channels, ic = plane % g.channels
                for (i, oc) in ((ic * perInput)..<((ic + 1) * perInput)).enumerated() {
                    layout.fill(scratch, from: dy + (n * outChannels + oc) * g.outPixels)
                    depthwiseForwardPlane(scratch, layout, flipped.baseAddress! + oc * kk, bias: 0, dx + plane * g.inPixels,
                                          accumulate: i > 0)
                }
            }
        }
    }
}
