import Foundation
// The two Winograd variants behind one driver: F(2x2, 3x3) (`Winograd.swift`) and F(4x4, 3x3)
// (`Winograd4.swift`) differ only in their transforms and tile sizes; the per-image loop, the
// GEMMs over the transformed tiles and the scratch handling are the same.

/// One Winograd F(m x m, 3x3) algorithm: its tile side m, its transforms and their scratch.
/// Every transform works on a block of tile rows (`Range<Int>`), tiles numbered within it.
public struct WinogradVariant: Sendable {
    /// Output tile side m; input tiles are (m + 2) x (m + 2).
    public let side: Int
    var points: Int { (side + 2) * (side + 2) }
    let inputScratch: @Sendable (_ w: Int) -> Int
    let outputScratch: @Sendable (_ tileColumns: Int) -> Int
    let gradientScratch: @Sendable (_ tileColumns: Int) -> Int
    /// (weight, U, rows, columns, flipped, row stride in pairs)
    let weights: @Sendable (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int, Int, Bool, Int) -> Void
    let input: @Sendable (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int, Int, Int, Range<Int>, TileSlab,
                          UnsafeMutablePointer<Float>) -> Void
    let output: @Sendable (UnsafePointer<Float>, UnsafeMutablePointer<Float>, UnsafePointer<Float>?, Int, Int, Int, Range<Int>,
                           TileSlab, UnsafeMutablePointer<Float>) -> Void
    let outputGradient: @Sendable (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int, Int, Int, Range<Int>, TileSlab,
                                   UnsafeMutablePointer<Float>) -> Void
    /// (dU, dW, rows, columns, dW's row stride in pairs): dW += G^T dU G
    let weightGradient: @Sendable (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int, Int, Int) -> Void

    public static let f2 = WinogradVariant(
        side: 2, inputScratch: { winogradInputScratch(width: $0) }, outputScratch: { 4 * $0 },
        gradientScratch: { 4 * $0 },
        weights: { winogradWeights($0, $1, outChannels: $2, inChannels: $3, flipped: $4, rowStride: $5) },
        input: { winogradInput($0, $1, channels: $2, height: $3, width: $4, tileRows: $5, slab: $6, scratch: $7) },
        output: { winogradOutput($0, $1, bias: $2, outChannels: $3, height: $4, width: $5, tileRows: $6, slab: $7, scratch: $8) },
        outputGradient: { winogradOutputGradient($0, $1, outChannels: $2, height: $3, width: $4, tileRows: $5, slab: $6, rows: $7) },
        weightGradient: { winogradWeightGradientTransform($0, $1, outChannels: $2, inChannels: $3, rowStride: $4) })

    public static let f4 = WinogradVariant(
        side: 4, inputScratch: { winograd4InputScratch(width: $0) }, outputScratch: { 16 * $0 + 8 },
        gradientScratch: { winograd4GradientScratch(tileColumns: $0) },
        weights: { winograd4Weights($0, $1, outChannels: $2, inChannels: $3, flipped: $4, rowStride: $5) },
        input: { winograd4Input($0, $1, channels: $2, height: $3, width: $4, tileRows: $5, slab: $6, scratch: $7) },
        output: { winograd4Output($0, $1, bias: $2, outChannels: $3, height: $4, width: $5, tileRows: $6, slab: $7, scratch: $8) },
        outputGradient: { winograd4OutputGradient($0, $1, outChannels: $2, height: $3, width: $4, tileRows: $5, slab: $6, rows: $7) },
        weightGradient: { winograd4WeightGradientTransform($0, $1, outChannels: $2, inChannels: $3, rowStride: $4) })

    /// The faster variant for an `h x w` map between `channels` input and output channels at
    /// least (see `winograd4MinimumSide` and `winograd4WideChannels`).
    public static func forMap(height h: Int, width w: Int, channels: Int = 0) -> WinogradVariant {
        let side = min(h, w)
        return side >= winograd4MinimumSide || (side >= 16 && channels >= winograd4WideChannels) ? .f4 : .f2
    }

    func tiles(_ h: Int, _ w: Int) -> (rows: Int, columns: Int) { ((h + side - 1) / side, (w + side - 1) / side) }

    /// Tile rows per block: as many as keep one block's transformed tiles of both sides
    /// (`channels` = in + out, `points` floats a tile each) within `winogradBlockBytes`, but at
    /// least `winogradMinimumTiles` tiles (when the image has them) and one row.
    func blockRows(channels: Int, tileColumns tw: Int, tileRows th: Int) -> Int {
        let tiles = max(winogradBlockBytes / (4 * points * channels), winogradMinimumTiles)
        return min(th, max(1, tiles / tw))
    }

    /// How to run a layer: whole batch together where one image's transformed tiles are fewer
    /// than the transformed weights or than `winogradMinimumTiles` (the deep, small, wide maps)
    /// and the batch's tiles fit in `winogradBatchBytes`; else blocks of tile rows.
    func schedule(batch: Int, inChannels cin: Int, outChannels cout: Int, height h: Int, width w: Int) -> WinogradSchedule {
        let (th, tw) = tiles(h, w), imageTiles = th * tw
        // the narrower side's tiles are held whole, the wider side's a group at a time
        let wholeSideBytes = 4 * points * min(cin, cout) * imageTiles * batch
        if wholeSideBytes <= winogradBatchBytes && (imageTiles < winogradMinimumTiles || imageTiles * (cin + cout) < cin * cout) {
            return .wholeBatch(groupChannels: groupChannels(inChannels: cin, outChannels: cout, plane: imageTiles * batch))
        }
        return .blocks(rows: blockRows(channels: cin + cout, tileColumns: tw, tileRows: th))
    }
}

/// Where a block's transformed tiles sit in V, M or DY, laid out (channel, ξ, tile) with
/// `plane` tiles per (channel, ξ): tile t of the block is tile `offset + t` of the plane. One
/// image's block alone fills its plane (offset 0); a whole batch shares one plane, image n at
/// offset n T.
struct TileSlab {
    let plane: Int
    let offset: Int
}

/// How a Winograd convolution walks its batch (`WinogradVariant.schedule`; tests force one).
public enum WinogradSchedule: Sendable, Equatable {
    /// (image, block of `rows` tile rows) items spread over the workers, each transformed,
    /// multiplied and transformed back while its tiles stay in L2.
    case blocks(rows: Int)
    /// Every image's tiles transformed into one plane, then one GEMM per tile point over the
    /// whole batch, the points spread over the workers: each transformed weight matrix U_ξ is
    /// read once per step instead of once per image or block. The wider of the two channel
    /// sides runs in groups of at most `groupChannels` (`WinogradWholeBatch.swift`).
    case wholeBatch(groupChannels: Int)
}

/// Bytes of transformed tiles (input and output side together) one block may hold: half the
/// core's L2 (512 KB where the system does not say). Whole images' tiles (UNet at 128 px:
/// 2.4 MB a side) leave the caches between the transform, the GEMMs and the inverse transform;
/// blocks of a few tile rows stay in L2. Measured (UNet w=16 / w=32, AMD EPYC with 1 MB L2):
/// 256 KB-1 MB blocks 35-43 / 14.3-15.9 images/s, whole images 36 / 11.1-12.6.
public let winogradBlockBytes: Int = {
    let l2 = sysconf(Int32(_SC_LEVEL2_CACHE_SIZE))
    return l2 > 0 ? min(max(l2 / 2, 128 * 1024), 2 * 1024 * 1024) : 512 * 1024
}()

/// Fewest tiles a block's GEMMs multiply: each GEMM packs its whole U_ξ (Cout x Cin) for the
/// block's tiles, so on wide layers blocks of a few tiles spent more time packing weights than
/// multiplying. Measured (UNet w=64, batch 4, 128 px, 2-core AMD EPYC): no minimum 5.4-5.6
/// images/s, at least 64 tiles 6.5-6.9, 128 6.4-6.8, 256 5.8-6.5.
let winogradMinimumTiles = 64

/// Most bytes of the transformed tiles of a whole batch's narrower channel side that
/// `.wholeBatch` holds at once (the wider side's are bounded by `winogradGroupBytes`).
let winogradBatchBytes = 32 << 20

/// Calls `body(rows)` for consecutive blocks of `size` tile rows covering `0..<count`.
@inline(__always) func forEachBlock(_ count: Int, size: Int, _ body: (Range<Int>) -> Void) {
    var start = 0
    while start < count { let end = min(count, start + size); body(start..<end); start = end }
}

/// Floats of scratch, zeroed, for one worker's transforms of a `variant` layer.
struct TransformScratch {
    let input: UnsafeMutablePointer<Float>, output: UnsafeMutablePointer<Float>
    init(_ variant: WinogradVariant, width w: Int, tileColumns tw: Int) {
        let size = variant.inputScratch(w)
        input = .allocate(capacity: size)
        input.initialize(repeating: 0, count: size)   // the padding columns are never written
        let outputSize = max(variant.outputScratch(tw), variant.gradientScratch(tw))
        output = .allocate(capacity: outputSize)
    }
    func deallocate() { input.deallocate(); output.deallocate() }
}

/// Runs `body(n, channels)` for every image n and a share of its `channels`, spread over the
/// workers (a batch of one still fills every core), with each worker's transform scratch.
func forEachImageChannels(_ variant: WinogradVariant, batch: Int, channels: Int, height h: Int, width w: Int,
                                  _ body: (_ n: Int, _ channels: Range<Int>, TransformScratch) -> Void) {
    let tw = variant.tiles(h, w).columns
    let parts = max(1, min(channels, (Parallel.threads + batch - 1) / batch))
    Parallel.chunks(batch * parts) { _, items in
        let scratch = TransformScratch(variant, width: w, tileColumns: tw)
        defer { scratch.deallocate() }
        for item in items {
            let n = item / parts, part = item % parts
            body(n, (part * channels / parts)..<((part + 1) * channels / parts), scratch)
        }
    }
}

/// y (N, Cout, H, W) = conv3x3(x (N, Cin, H, W), weight (Cout, Cin, 3, 3), stride 1, padding 1)
/// + bias: the input tiles V, then M_ξ = U_ξ V_ξ (one GEMM per tile point ξ), then the output
/// transform, per `schedule` (the variant's own by default), and with `relu` max(0, y) on each
/// block's rows while they are still in cache. Tiles are channel-major: V (Cin, ξ, T), M (Cout, ξ, T).
public func winogradConv3x3(_ variant: WinogradVariant, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                            bias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>, batch: Int, inChannels cin: Int,
                            outChannels cout: Int, height h: Int, width w: Int, relu: Bool = false, schedule: WinogradSchedule? = nil) {
    winogradConv3x3(variant, inputs: ChannelParts([(x, cin)]), weight: weight, bias: bias, y: y, batch: batch, outChannels: cout,
                    height: h, width: w, relu: relu, schedule: schedule)
}

/// A convolution's input given as consecutive channel blocks of separate tensors, each
/// (N, C_k, H, W): the parts of a channel concatenation (a UNet's skip and upsampled maps),
/// which the Winograd input transform reads part by part into one V — the concatenated tensor
/// is never built.
public struct ChannelParts {
    public let parts: [(base: UnsafePointer<Float>, channels: Int)]
    public let channels: Int
    public init(_ parts: [(base: UnsafePointer<Float>, channels: Int)]) {
        self.parts = parts
        channels = parts.reduce(0) { $0 + $1.channels }
    }

    /// Calls `body(source, first, count)` for each run of channels `range` of image `n` that
    /// lies in one part: `source` points at the run's first plane, `first` is its channel in
    /// the whole input.
    @inline(__always) func forEach(image n: Int, channels range: Range<Int>, pixels: Int,
                                   _ body: (_ source: UnsafePointer<Float>, _ first: Int, _ count: Int) -> Void) {
        var start = 0
        for part in parts {
            let lo = max(range.lowerBound, start), hi = min(range.upperBound, start + part.channels)
            if lo < hi { body(part.base + (n * part.channels + lo - start) * pixels, lo, hi - lo) }
            start += part.channels
        }
    }
}

/// `winogradConv3x3` over an input in channel parts (`ChannelParts`).
public func winogradConv3x3(_ variant: WinogradVariant, inputs: ChannelParts, weight: UnsafePointer<Float>,
                            bias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>, batch: Int,
                            outChannels cout: Int, height h: Int, width w: Int, relu: Bool = false, schedule: WinogradSchedule? = nil) {
    winogradConv3x3(variant, inputs: inputs, kernels: .weight(weight), bias: bias, y: y, batch: batch, outChannels: cout,
                    height: h, width: w, relu: relu, schedule: schedule)
}

/// `winogradConv3x3` with the kernels of `kernels` (a layer's weight or its adjoint's).
public func winogradConv3x3(_ variant: WinogradVariant, inputs: ChannelParts, kernels: WinogradKernels,
                            bias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>, batch: Int,
                            outChannels cout: Int, height h: Int, width w: Int, relu: Bool = false, schedule: WinogradSchedule? = nil) {
    let (th, tw) = variant.tiles(h, w), points = variant.points, cin = inputs.channels
    switch schedule ?? variant.schedule(batch: batch, inChannels: cin, outChannels: cout, height: h, width: w) {
    case .wholeBatch(let groupChannels):
        winogradWholeBatchForward(variant, inputs: inputs, kernels: kernels, bias: bias, y: y, batch: batch, outChannels: cout,
                                  height: h, width: w, relu: relu, groupChannels: groupChannels)
    case .blocks(let rows):
        let t = rows * tw
        // The work is (image, block of tile rows) pairs, spread over the workers: a batch of one
        // image (prediction, a micro-batch of one) still fills every core. Blocks write disjoint
        // output rows and each is computed the same way whichever worker takes it.
        let blocks = (th + rows - 1) / rows
        let u = UnsafeMutablePointer<Float>.allocate(capacity: points * cout * cin)
        defer { u.deallocate() }
        let transposed = variant.transform(kernels, into: u, outChannels: cout, inChannels: cin, outs: 0..<cout, ins: 0..<cin)
        Parallel.chunks(batch * blocks) { _, items in
            let v = UnsafeMutablePointer<Float>.allocate(capacity: points * cin * t)
            let m = UnsafeMutablePointer<Float>.allocate(capacity: points * cout * t)
            let scratch = TransformScratch(variant, width: w, tileColumns: tw)
            defer { v.deallocate(); m.deallocate(); scratch.deallocate() }
            for item in items {
                let n = item / blocks, first = (item % blocks) * rows
                let block = first..<min(th, first + rows)
                let tb = block.count * tw, slab = TileSlab(plane: tb, offset: 0)
                inputs.forEach(image: n, channels: 0..<cin, pixels: h * w) { source, first, count in
                    variant.input(source, v + first * points * tb, count, h, w, block, slab, scratch.input)
                }
                for xi in 0..<points {
                    sgemm(transA: transposed, m: cout, n: tb, k: cin, a: u + xi * cout * cin, lda: transposed ? cout : cin,
                          b: v + xi * tb, ldb: points * tb,
                          beta: 0, c: m + xi * tb, ldc: points * tb)
                }
                variant.output(m, y + n * cout * h * w, bias, cout, h, w, block, slab, scratch.output)
                if relu {
                    let first = block.lowerBound * variant.side * w, count = min(h * w, block.upperBound * variant.side * w) - first
                    for co in 0..<cout { reluInPlace(y + (n * cout + co) * h * w + first, count: count) }
                }
            }
        }
    }
}

/// dweight (Cout, Cin, 3, 3) += the weight gradient of a 3x3 / stride 1 / padding 1 convolution
/// of x (N, Cin, H, W) with output gradient dy (N, Cout, H, W): the input tiles V and the
/// gradient tiles DY, dU_ξ += DY_ξ V_ξ^T (GEMMs over the tiles), and once dW += G^T dU G.
public func winogradConv3x3WeightGradient(_ variant: WinogradVariant, x: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                                          dweight: UnsafeMutablePointer<Float>, batch: Int, inChannels cin: Int,
                                          outChannels cout: Int, height h: Int, width w: Int, schedule: WinogradSchedule? = nil) {
    let (th, tw) = variant.tiles(h, w), points = variant.points
    switch schedule ?? variant.schedule(batch: batch, inChannels: cin, outChannels: cout, height: h, width: w) {
    case .wholeBatch(let groupChannels):
        winogradWholeBatchWeightGradient(variant, x: x, dy: dy, dweight: dweight, batch: batch, inChannels: cin, outChannels: cout,
                                         height: h, width: w, groupChannels: groupChannels)
    case .blocks(let rows):
        let t = rows * tw
        let workers = Parallel.workers(for: batch)
        let partials = UnsafeMutablePointer<Float>.allocate(capacity: workers * points * cout * cin)
        partials.initialize(repeating: 0, count: workers * points * cout * cin)
        defer { partials.deallocate() }
        Parallel.chunks(batch, workers: workers) { worker, images in
            let v = UnsafeMutablePointer<Float>.allocate(capacity: points * cin * t)
            let dyt = UnsafeMutablePointer<Float>.allocate(capacity: points * cout * t)
            let scratch = TransformScratch(variant, width: w, tileColumns: tw)
            defer { v.deallocate(); dyt.deallocate(); scratch.deallocate() }
            let du = partials + worker * points * cout * cin
            for n in images {
                forEachBlock(th, size: rows) { block in
                    let tb = block.count * tw, slab = TileSlab(plane: tb, offset: 0)
                    variant.input(x + n * cin * h * w, v, cin, h, w, block, slab, scratch.input)
                    variant.outputGradient(dy + n * cout * h * w, dyt, cout, h, w, block, slab, scratch.output)
                    for xi in 0..<points {
                        sgemm(transB: true, m: cout, n: cin, k: tb, a: dyt + xi * tb, lda: points * tb, b: v + xi * tb,
                              ldb: points * tb, beta: 1, c: du + xi * cout * cin, ldc: cin)
                    }
                }
            }
        }
        for worker in 1..<max(workers, 1) { addInPlace(partials, partials + worker * points * cout * cin, count: points * cout * cin) }
        variant.weightGradient(partials, dweight, cout, cin, cin)
    }
}
