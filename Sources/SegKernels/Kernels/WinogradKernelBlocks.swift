// The weight-side Winograd transforms (U = G g G^T before the forward GEMMs, dW += G^T dU G
// after the weight-gradient GEMMs) touch every (Cout, Cin) pair of a layer: 260k pairs for
// one of the lab's UNet w=64 layers at 8 px, several times a step. Run one pair at a time on
// one core they took 14% of a UNet w=64 step (perf, 2-core AMD EPYC) while the other core
// idled, so they run here 8 pairs at a time on SIMD lanes, spread over the workers.

/// Pairs per block: one per SIMD lane.
let kernelBlock = 8

/// Calls `body(p, count)` for consecutive blocks of at most `kernelBlock` pairs of `0..<pairs`,
/// the blocks spread over the workers (each block written by one worker only).
@inline(__always) func forEachKernelBlock(_ pairs: Int, _ body: (_ first: Int, _ count: Int) -> Void) {
    let blocks = (pairs + kernelBlock - 1) / kernelBlock
    // under ~16k pairs the dispatch costs more than it saves
    Parallel.chunks(blocks, workers: pairs < 16_384 ? 1 : nil) { _, range in
        for b in range { let p = b * kernelBlock; body(p, min(kernelBlock, pairs - p)) }
    }
}

/// Where the kernels of a grid of (row, column) pairs lie: `columns` pairs a row, each row
/// `stride` pairs after the last in memory — a channel group's columns of a layer's weight (or
/// weight gradient) read or written in place; `stride == columns` for a whole weight.
struct KernelRows {
    let columns: Int, stride: Int
    /// The float offset of pair `pair` (numbered row by row).
    @inline(__always) func offset(_ pair: Int) -> Int {
        (columns == stride ? pair : (pair / columns) * stride + pair % columns) * 9
    }
}

/// The nine taps of the 3x3 kernels of pairs `p..<p + count` of `rows` at `w` (9 floats a
/// pair): lane i of tap k is tap k of pair p + i (`flipped`: tap 8 - k, the kernel turned by
/// 180 degrees, as an input gradient convolves); lanes past `count` are 0.
@inline(__always) func kernelTaps(_ w: UnsafePointer<Float>, _ p: Int, _ count: Int, flipped: Bool, rows: KernelRows) -> [9 of Lanes] {
    var taps = [9 of Lanes](repeating: Lanes())
    for i in 0..<count {
        let g = w + rows.offset(p + i)
        if flipped { for k in 0..<9 { taps[k][i] = g[8 - k] } } else { for k in 0..<9 { taps[k][i] = g[k] } }
    }
    return taps
}

/// Tap k of pair p + i of `rows` at `w` += taps[k][i] for the block's `count` pairs.
@inline(__always) func addKernelTaps(_ taps: [9 of Lanes], _ w: UnsafeMutablePointer<Float>, _ p: Int, _ count: Int, rows: KernelRows) {
    for i in 0..<count {
        let g = w + rows.offset(p + i)
        for k in 0..<9 { g[k] += taps[k][i] }
    }
}

/// Stores the first `count` lanes of `v` at `dst`.
@inline(__always) func store(_ v: Lanes, _ dst: UnsafeMutablePointer<Float>, count: Int) {
    if count == kernelBlock { store(v, dst, 0); return }
    for i in 0..<count { dst[i] = v[i] }
}

/// Loads `count` floats from `src` into the first lanes (the rest 0).
@inline(__always) func load(_ src: UnsafePointer<Float>, count: Int) -> Lanes {
    if count == kernelBlock { return load(src, 0) }
    var v = Lanes()
    for i in 0..<count { v[i] = src[i] }
    return v
}
