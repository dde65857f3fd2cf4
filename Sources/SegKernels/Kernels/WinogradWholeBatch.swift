// The whole-batch Winograd schedule, for small, wide maps (a ResNet's layer4 and heads at output
// stride 8, a UNet's deepest levels): every image's tiles in one plane, one GEMM per tile point
// over the whole batch. Its transformed weights U (points x Cout x Cin) and the transformed
// tiles of the wider side are what such a layer holds beyond its tensors: for FCN's 2048 -> 512
// head at 16 px, F(2x2), 64 MB of U (twice: the input gradient has its own) and 134 MB of
// per-worker weight-gradient partials under the block schedule — the peak of the whole step
// (heaptrack, fcn_resnet50 batch 4). So the wider side runs in groups of channels, each with
// its own share of U, V and dU within `winogradGroupBytes`; the narrower side's tiles are made
// once. Groups change only the order of additions in the input-channel sum (tests hold every
// grouping to a direct convolution).

/// Most bytes of one group's transformed weights and grouped-side tiles (U_g and V_g or M_g).
let winogradGroupBytes = 16 << 20

/// The 3x3 kernels a Winograd convolution multiplies by, a (Cout, Cin) grid of 9 taps each.
public enum WinogradKernels {
    /// A layer's own weight (Cout, Cin, 3, 3).
    case weight(UnsafePointer<Float>)
    /// The input gradient's kernels, read in place from the layer's weight `(Cin', Cout', 3, 3)`
    /// whose in and out channels are this pass's out and in channels: pair (co, ci) is that
    /// weight's kernel (ci, co) flipped. The transform reads them in that weight's order, taps
    /// reversed, and leaves U transposed for the GEMMs to read so; no flipped copy is made.
    case adjoint(of: UnsafePointer<Float>)
}

extension WinogradVariant {
    /// U for output channels `outs` and input channels `ins` of `kernels` (a pass with `cout`
    /// output and `cin` input channels): laid out (ξ, outs, ins) for a layer's weight, and
    /// (ξ, ins, outs) — the transpose, which the GEMMs read as such (the result says which) —
    /// for an adjoint's, so that its kernels are read in the weight's own order, turned by the
    /// transform, and never gathered pair by pair into the pass's order.
    func transform(_ kernels: WinogradKernels, into u: UnsafeMutablePointer<Float>, outChannels cout: Int, inChannels cin: Int,
                   outs: Range<Int>, ins: Range<Int>) -> Bool {
        // the kernels as (rows, columns) pairs of the weight's memory, rows of `full` pairs
        let (w, rows, columns, full, flipped): (UnsafePointer<Float>, Range<Int>, Range<Int>, Int, Bool)
        switch kernels {
        case .weight(let weight): (w, rows, columns, full, flipped) = (weight, outs, ins, cin, false)
        // the input gradient's weight is (Cin', Cout', 3, 3) = (cin, cout): row ci holds every co
        case .adjoint(of: let weight): (w, rows, columns, full, flipped) = (weight, ins, outs, cout, true)
        }
        // read in place: the group's columns of each row, rows `full` pairs apart
        weights(w + (rows.lowerBound * full + columns.lowerBound) * 9, u, rows.count, columns.count, flipped, full)
        return flipped
    }
}

/// Consecutive ranges covering `0..<count` channels, each of at most `size` (`size` >= count: one).
func channelGroups(_ count: Int, size: Int) -> [Range<Int>] {
    let size = max(1, size), groups = max(1, count / size + (count % size == 0 ? 0 : 1))
    let base = count / groups, extra = count % groups
    var start = 0
    return (0..<groups).map { g in
        let end = start + base + (g < extra ? 1 : 0)
        defer { start = end }
        return start..<end
    }
}

extension WinogradVariant {
    /// Channels per group of the wider side (`winogradGroupBytes`), a multiple of `kernelBlock`.
    func groupChannels(inChannels cin: Int, outChannels cout: Int, plane: Int) -> Int {
        let perChannel = 4 * points * (min(cin, cout) + plane)
        return max(kernelBlock, winogradGroupBytes / perChannel / kernelBlock * kernelBlock)
    }
}

/// The forward pass (and an input gradient's) under `.wholeBatch(groupChannels:)`.
func winogradWholeBatchForward(_ variant: WinogradVariant, inputs: ChannelParts, kernels: WinogradKernels,
                               bias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>, batch: Int, outChannels cout: Int,
                               height h: Int, width w: Int, relu: Bool, groupChannels: Int) {
    let (th, tw) = variant.tiles(h, w), points = variant.points
    let imageTiles = th * tw, plane = batch * imageTiles
    winogradWholeBatchProducts(variant, kernels: kernels, inChannels: inputs.channels, outChannels: cout, plane: plane,
                               groupChannels: groupChannels, transformInputs: { ins, v in
        forEachImageChannels(variant, batch: batch, channels: ins.count, height: h, width: w) { n, cs, scratch in
            let channels = (ins.lowerBound + cs.lowerBound)..<(ins.lowerBound + cs.upperBound)
            inputs.forEach(image: n, channels: channels, pixels: h * w) { source, first, count in
                variant.input(source, v + (first - ins.lowerBound) * points * plane, count, h, w, 0..<th,
                              TileSlab(plane: plane, offset: n * imageTiles), scratch.input)
            }
        }
    }, transformOutputs: { outs, m in
        forEachImageChannels(variant, batch: batch, channels: outs.count, height: h, width: w) { n, cs, scratch in
            let c = outs.lowerBound + cs.lowerBound
            variant.output(m + cs.lowerBound * points * plane, y + (n * cout + c) * h * w, bias.map { $0 + c }, cs.count, h, w,
                           0..<th, TileSlab(plane: plane, offset: n * imageTiles), scratch.output)
            if relu { reluInPlace(y + (n * cout + c) * h * w, count: cs.count * h * w) }
        }
    })
}

/// The GEMMs of a whole-batch Winograd pass between tiles laid out (channel, ξ, plane), in
/// whatever order the caller's transforms put a plane's `plane` tiles: `transformInputs(ins, v)`
/// writes V for input channels `ins` (v's channel 0 is `ins.lowerBound`), `transformOutputs(outs,
/// m)` reads M of output channels `outs` likewise. The narrower side is transformed whole, the
/// wider in groups of at most `groupChannels`.
func winogradWholeBatchProducts(_ variant: WinogradVariant, kernels: WinogradKernels, inChannels cin: Int, outChannels cout: Int,
                                plane: Int, groupChannels: Int,
                                transformInputs: (_ ins: Range<Int>, _ v: UnsafeMutablePointer<Float>) -> Void,
                                transformOutputs: (_ outs: Range<Int>, _ m: UnsafeMutablePointer<Float>) -> Void) {
    let points = variant.points
    if cout > cin {
        // the input side whole, the outputs in groups: U_g, M_g = U_g V, y's channels of the group
        let groups = channelGroups(cout, size: groupChannels), most = groups.map(\.count).max()!
        let v = UnsafeMutablePointer<Float>.allocate(capacity: points * cin * plane)
        let u = UnsafeMutablePointer<Float>.allocate(capacity: points * most * cin)
        let m = UnsafeMutablePointer<Float>.allocate(capacity: points * most * plane)
        defer { v.deallocate(); u.deallocate(); m.deallocate() }
        transformInputs(0..<cin, v)
        for outs in groups {
            let transposed = variant.transform(kernels, into: u, outChannels: cout, inChannels: cin, outs: outs, ins: 0..<cin)
            Parallel.forEach(points) { xi in
                sgemm(transA: transposed, m: outs.count, n: plane, k: cin, a: u + xi * outs.count * cin, lda: transposed ? outs.count : cin,
                      b: v + xi * plane, ldb: points * plane, beta: 0, c: m + xi * plane, ldc: points * plane)
            }
            transformOutputs(outs, m)
        }
    } else {
        // the output side whole, the inputs in groups: M += U_g V_g, then y once
        let groups = channelGroups(cin, size: groupChannels), most = groups.map(\.count).max()!
        let m = UnsafeMutablePointer<Float>.allocate(capacity: points * cout * plane)
        let u = UnsafeMutablePointer<Float>.allocate(capacity: points * cout * most)
        let v = UnsafeMutablePointer<Float>.allocate(capacity: points * most * plane)
        defer { m.deallocate(); u.deallocate(); v.deallocate() }
        for (index, ins) in groups.enumerated() {
            let transposed = variant.transform(kernels, into: u, outChannels: cout, inChannels: cin, outs: 0..<cout, ins: ins)
            transformInputs(ins, v)
            Parallel.forEach(points) { xi in
                sgemm(transA: transposed, m: cout, n: plane, k: ins.count, a: u + xi * cout * ins.count,
                      lda: transposed ? cout : ins.count, b: v + xi * plane, ldb: points * plane, beta: index == 0 ? 0 : 1,
                      c: m + xi * plane, ldc: points * plane)
            }
        }
        transformOutputs(0..<cout, m)
    }
}

/// dweight += the weight gradient under `.wholeBatch(groupChannels:)`: one GEMM of depth N T per
/// tile point and group, each point's dU written by one worker only.
func winogradWholeBatchWeightGradient(_ variant: WinogradVariant, x: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                                      dweight: UnsafeMutablePointer<Float>, batch: Int, inChannels cin: Int, outChannels cout: Int,
                                      height h: Int, width w: Int, groupChannels: Int) {
    let (th, tw) = variant.tiles(h, w), points = variant.points
    let imageTiles = th * tw, plane = batch * imageTiles
    winogradWholeBatchWeightProducts(variant, dweight: dweight, inChannels: cin, outChannels: cout, plane: plane,
                                     groupChannels: groupChannels, transformInputs: { ins, v in
        forEachImageChannels(variant, batch: batch, channels: ins.count, height: h, width: w) { n, cs, scratch in
            variant.input(x + (n * cin + ins.lowerBound + cs.lowerBound) * h * w, v + cs.lowerBound * points * plane, cs.count, h, w,
                          0..<th, TileSlab(plane: plane, offset: n * imageTiles), scratch.input)
        }
    }, transformGradients: { outs, dyt in
        forEachImageChannels(variant, batch: batch, channels: outs.count, height: h, width: w) { n, cs, scratch in
            variant.outputGradient(dy + (n * cout + outs.lowerBound + cs.lowerBound) * h * w, dyt + cs.lowerBound * points * plane,
                                   cs.count, h, w, 0..<th, TileSlab(plane: plane, offset: n * imageTiles), scratch.output)
        }
    })
}

/// The GEMMs of a whole-batch weight gradient, dU_ξ = DY_ξ V_ξ^T over a plane of `plane` tiles
/// in the order the caller's transforms choose (`transformInputs` writes V of input channels,
/// `transformGradients` DY of output channels, each relative to its range), then dW += G^T dU G.
func winogradWholeBatchWeightProducts(_ variant: WinogradVariant, dweight: UnsafeMutablePointer<Float>, inChannels cin: Int,
                                      outChannels cout: Int, plane: Int, groupChannels: Int,
                                      transformInputs: (_ ins: Range<Int>, _ v: UnsafeMutablePointer<Float>) -> Void,
                                      transformGradients: (_ outs: Range<Int>, _ dyt: UnsafeMutablePointer<Float>) -> Void) {
    let points = variant.points
    if cout > cin {
        // V whole; per group of outputs DY_g, dU_g = DY_g V^T, and dW's rows of the group
        let groups = channelGroups(cout, size: groupChannels), most = groups.map(\.count).max()!
        let v = UnsafeMutablePointer<Float>.allocate(capacity: points * cin * plane)
        let dyt = UnsafeMutablePointer<Float>.allocate(capacity: points * most * plane)
        let du = UnsafeMutablePointer<Float>.allocate(capacity: points * most * cin)
        defer { v.deallocate(); dyt.deallocate(); du.deallocate() }
        transformInputs(0..<cin, v)
        for outs in groups {
            transformGradients(outs, dyt)
            Parallel.forEach(points) { xi in
                sgemm(transB: true, m: outs.count, n: cin, k: plane, a: dyt + xi * plane, lda: points * plane, b: v + xi * plane,
                      ldb: points * plane, beta: 0, c: du + xi * outs.count * cin, ldc: cin)
            }
            variant.weightGradient(du, dweight + outs.lowerBound * cin * 9, outs.count, cin, cin)
        }
    } else {
        // DY whole; per group of inputs V_g, dU_g = DY V_g^T, added into dW's columns of the group
        let groups = channelGroups(cin, size: groupChannels), most = groups.map(\.count).max()!
        let dyt = UnsafeMutablePointer<Float>.allocate(capacity: points * cout * plane)
        let v = UnsafeMutablePointer<Float>.allocate(capacity: points * most * plane)
        let du = UnsafeMutablePointer<Float>.allocate(capacity: points * cout * most)
        defer { dyt.deallocate(); v.deallocate(); du.deallocate() }
        transformGradients(0..<cout, dyt)
        for ins in groups {
            transformInputs(ins, v)
            Parallel.forEach(points) { xi in
                sgemm(transB: true, m: cout, n: ins.count, k: plane, a: dyt + xi * plane, lda: points * plane, b: v + xi * plane,
                      ldb: points * plane, beta: 0, c: du + xi * cout * ins.count, ldc: ins.count)
            }
            // added into dW's columns of the group in place, rows cin pairs apart
            variant.weightGradient(du, dweight + ins.lowerBound * 9, cout, ins.count, cin)
        }
    }
}
