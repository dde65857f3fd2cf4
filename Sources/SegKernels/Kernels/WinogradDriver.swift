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
    let inputScratch: @Sendable (_ w: Int, _ rows: Int) -> Int
    let outputScratch: @Sendable (_ tileColumns: Int) -> Int
    let gradientScratch: @Sendable (_ tileColumns: Int) -> Int
    let weights: @Sendable (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int, Int) -> Void
    let input: @Sendable (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int, Int, Int, Range<Int>, UnsafeMutablePointer<Float>) -> Void
    let output: @Sendable (UnsafePointer<Float>, UnsafeMutablePointer<Float>, UnsafePointer<Float>?, Int, Int, Int, Range<Int>,
                           UnsafeMutablePointer<Float>) -> Void
    let outputGradient: @Sendable (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int, Int, Int, Range<Int>,
                                   UnsafeMutablePointer<Float>) -> Void
    let weightGradient: @Sendable (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int, Int) -> Void

    public static let f2 = WinogradVariant(
        side: 2, inputScratch: { winogradInputScratch(width: $0, rows: $1) }, outputScratch: { 4 * $0 },
        gradientScratch: { 4 * $0 },
        weights: { winogradWeights($0, $1, outChannels: $2, inChannels: $3) },
        input: { winogradInput($0, $1, channels: $2, height: $3, width: $4, tileRows: $5, scratch: $6) },
        output: { winogradOutput($0, $1, bias: $2, outChannels: $3, height: $4, width: $5, tileRows: $6, scratch: $7) },
        outputGradient: { winogradOutputGradient($0, $1, outChannels: $2, height: $3, width: $4, tileRows: $5, rows: $6) },
        weightGradient: { winogradWeightGradientTransform($0, $1, outChannels: $2, inChannels: $3) })

    public static let f4 = WinogradVariant(
        side: 4, inputScratch: { winograd4InputScratch(width: $0, rows: $1) }, outputScratch: { 16 * $0 + 8 },
        gradientScratch: { 16 * ($0 + 8) },
        weights: { winograd4Weights($0, $1, outChannels: $2, inChannels: $3) },
        input: { winograd4Input($0, $1, channels: $2, height: $3, width: $4, tileRows: $5, scratch: $6) },
        output: { winograd4Output($0, $1, bias: $2, outChannels: $3, height: $4, width: $5, tileRows: $6, scratch: $7) },
        outputGradient: { winograd4OutputGradient($0, $1, outChannels: $2, height: $3, width: $4, tileRows: $5, rows: $6) },
        weightGradient: { winograd4WeightGradientTransform($0, $1, outChannels: $2, inChannels: $3) })

    /// The faster variant for an `h x w` map (see `winograd4MinimumSide`).
    public static func forMap(height h: Int, width w: Int) -> WinogradVariant { min(h, w) >= winograd4MinimumSide ? .f4 : .f2 }

    func tiles(_ h: Int, _ w: Int) -> (rows: Int, columns: Int) { ((h + side - 1) / side, (w + side - 1) / side) }

    /// Tile rows per block: as many as keep one block's transformed tiles of both sides
    /// (`channels` = in + out, `points` floats a tile each) within `winogradBlockBytes`, at least one.
    func blockRows(channels: Int, tileColumns tw: Int, tileRows th: Int) -> Int {
        let tiles = winogradBlockBytes / (4 * points * channels)
        return min(th, max(1, tiles / tw))
    }
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

/// Calls `body(rows)` for consecutive blocks of `size` tile rows covering `0..<count`.
@inline(__always) func forEachBlock(_ count: Int, size: Int, _ body: (Range<Int>) -> Void) {
    var start = 0
    while start < count { let end = min(count, start + size); body(start..<end); start = end }
}

/// y (N, Cout, H, W) = conv3x3(x (N, Cin, H, W), weight (Cout, Cin, 3, 3), stride 1, padding 1)
/// + bias: per block of tile rows of an image the input tiles V, then M_ξ = U_ξ V_ξ (one GEMM
/// per tile point ξ), then the output transform. Tiles are channel-major: V (Cin, ξ, T),
/// M (Cout, ξ, T). `blockRows` overrides the cache-sized block (tests).
public func winogradConv3x3(_ variant: WinogradVariant, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                            bias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>, batch: Int, inChannels cin: Int,
                            outChannels cout: Int, height h: Int, width w: Int, blockRows: Int? = nil) {
    let (th, tw) = variant.tiles(h, w), points = variant.points
    let rows = blockRows ?? variant.blockRows(channels: cin + cout, tileColumns: tw, tileRows: th), t = rows * tw
    let u = UnsafeMutablePointer<Float>.allocate(capacity: points * cout * cin)
    defer { u.deallocate() }
    variant.weights(weight, u, cout, cin)
    // The work is (image, block of tile rows) pairs, spread over the workers: a batch of one
    // image (prediction, a micro-batch of one) still fills every core. Blocks write disjoint
    // output rows and each is computed the same way whichever worker takes it.
    let blocks = (th + rows - 1) / rows
    Parallel.chunks(batch * blocks) { _, items in
        let v = UnsafeMutablePointer<Float>.allocate(capacity: points * cin * t)
        let m = UnsafeMutablePointer<Float>.allocate(capacity: points * cout * t)
        let size = variant.inputScratch(w, rows)
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: size)
        scratch.initialize(repeating: 0, count: size)   // the padding columns are never written
        let outScratch = UnsafeMutablePointer<Float>.allocate(capacity: variant.outputScratch(tw))
        defer { v.deallocate(); m.deallocate(); scratch.deallocate(); outScratch.deallocate() }
        for item in items {
            let n = item / blocks, first = (item % blocks) * rows
            let block = first..<min(th, first + rows)
            let tb = block.count * tw
            variant.input(x + n * cin * h * w, v, cin, h, w, block, scratch)
            for xi in 0..<points {
                sgemm(m: cout, n: tb, k: cin, a: u + xi * cout * cin, lda: cin, b: v + xi * tb, ldb: points * tb,
                      beta: 0, c: m + xi * tb, ldc: points * tb)
            }
            variant.output(m, y + n * cout * h * w, bias, cout, h, w, block, outScratch)
        }
    }
}

/// dweight (Cout, Cin, 3, 3) += the weight gradient of a 3x3 / stride 1 / padding 1 convolution
/// of x (N, Cin, H, W) with output gradient dy (N, Cout, H, W): per block of tile rows of an
/// image the input tiles V and the gradient tiles DY, dU_ξ += DY_ξ V_ξ^T (GEMMs of depth T),
/// and once dW += G^T dU G.
public func winogradConv3x3WeightGradient(_ variant: WinogradVariant, x: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                                          dweight: UnsafeMutablePointer<Float>, batch: Int, inChannels cin: Int,
                                          outChannels cout: Int, height h: Int, width w: Int, blockRows: Int? = nil) {
    let (th, tw) = variant.tiles(h, w), points = variant.points
    let rows = blockRows ?? variant.blockRows(channels: cin + cout, tileColumns: tw, tileRows: th), t = rows * tw
    let workers = Parallel.workers(for: batch)
    let partials = UnsafeMutablePointer<Float>.allocate(capacity: workers * points * cout * cin)
    partials.initialize(repeating: 0, count: workers * points * cout * cin)
    defer { partials.deallocate() }
    Parallel.chunks(batch, workers: workers) { worker, images in
        let v = UnsafeMutablePointer<Float>.allocate(capacity: points * cin * t)
        let dyt = UnsafeMutablePointer<Float>.allocate(capacity: points * cout * t)
        let size = variant.inputScratch(w, rows)
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: size)
        scratch.initialize(repeating: 0, count: size)
        let gradientRows = UnsafeMutablePointer<Float>.allocate(capacity: variant.gradientScratch(tw))
        defer { v.deallocate(); dyt.deallocate(); scratch.deallocate(); gradientRows.deallocate() }
        let du = partials + worker * points * cout * cin
        for n in images {
            forEachBlock(th, size: rows) { block in
                let tb = block.count * tw
                variant.input(x + n * cin * h * w, v, cin, h, w, block, scratch)
                variant.outputGradient(dy + n * cout * h * w, dyt, cout, h, w, block, gradientRows)
                for xi in 0..<points {
                    sgemm(transB: true, m: cout, n: cin, k: tb, a: dyt + xi * tb, lda: points * tb, b: v + xi * tb,
                          ldb: points * tb, beta: 1, c: du + xi * cout * cin, ldc: cin)
                }
            }
        }
    }
    for worker in 1..<max(workers, 1) { addInPlace(partials, partials + worker * points * cout * cin, count: points * cout * cin) }
    variant.weightGradient(partials, dweight, cout, cin)
}
