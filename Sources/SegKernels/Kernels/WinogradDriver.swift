// The two Winograd variants behind one driver: F(2x2, 3x3) (`Winograd.swift`) and F(4x4, 3x3)
// (`Winograd4.swift`) differ only in their transforms and tile sizes; the per-image loop, the
// GEMMs over the transformed tiles and the scratch handling are the same.

/// One Winograd F(m x m, 3x3) algorithm: its tile side m, its transforms and their scratch.
public struct WinogradVariant: Sendable {
    /// Output tile side m; input tiles are (m + 2) x (m + 2).
    public let side: Int
    var points: Int { (side + 2) * (side + 2) }
    let inputScratch: @Sendable (_ h: Int, _ w: Int) -> Int
    let outputScratch: @Sendable (_ tileColumns: Int) -> Int
    let gradientScratch: @Sendable (_ tileColumns: Int) -> Int
    let weights: @Sendable (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int, Int) -> Void
    let input: @Sendable (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int, Int, Int, UnsafeMutablePointer<Float>) -> Void
    let output: @Sendable (UnsafePointer<Float>, UnsafeMutablePointer<Float>, UnsafePointer<Float>?, Int, Int, Int,
                           UnsafeMutablePointer<Float>) -> Void
    let outputGradient: @Sendable (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int, Int, Int, UnsafeMutablePointer<Float>) -> Void
    let weightGradient: @Sendable (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int, Int) -> Void

    public static let f2 = WinogradVariant(
        side: 2, inputScratch: { winogradInputScratch(height: $0, width: $1) }, outputScratch: { 4 * $0 },
        gradientScratch: { 4 * $0 },
        weights: { winogradWeights($0, $1, outChannels: $2, inChannels: $3) },
        input: { winogradInput($0, $1, channels: $2, height: $3, width: $4, scratch: $5) },
        output: { winogradOutput($0, $1, bias: $2, outChannels: $3, height: $4, width: $5, scratch: $6) },
        outputGradient: { winogradOutputGradient($0, $1, outChannels: $2, height: $3, width: $4, rows: $5) },
        weightGradient: { winogradWeightGradientTransform($0, $1, outChannels: $2, inChannels: $3) })

    public static let f4 = WinogradVariant(
        side: 4, inputScratch: { winograd4InputScratch(height: $0, width: $1) }, outputScratch: { 16 * $0 + 8 },
        gradientScratch: { 16 * ($0 + 8) },
        weights: { winograd4Weights($0, $1, outChannels: $2, inChannels: $3) },
        input: { winograd4Input($0, $1, channels: $2, height: $3, width: $4, scratch: $5) },
        output: { winograd4Output($0, $1, bias: $2, outChannels: $3, height: $4, width: $5, scratch: $6) },
        outputGradient: { winograd4OutputGradient($0, $1, outChannels: $2, height: $3, width: $4, rows: $5) },
        weightGradient: { winograd4WeightGradientTransform($0, $1, outChannels: $2, inChannels: $3) })

    /// The faster variant for an `h x w` map (see `winograd4MinimumSide`).
    public static func forMap(height h: Int, width w: Int) -> WinogradVariant { min(h, w) >= winograd4MinimumSide ? .f4 : .f2 }

    func tiles(_ h: Int, _ w: Int) -> (rows: Int, columns: Int) { ((h + side - 1) / side, (w + side - 1) / side) }
}

/// y (N, Cout, H, W) = conv3x3(x (N, Cin, H, W), weight (Cout, Cin, 3, 3), stride 1, padding 1)
/// + bias: per image the input tiles V, then M_ξ = U_ξ V_ξ (one GEMM per tile point ξ), then
/// the output transform. Tiles are channel-major: V (Cin, ξ, T), M (Cout, ξ, T).
public func winogradConv3x3(_ variant: WinogradVariant, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                            bias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>, batch: Int, inChannels cin: Int,
                            outChannels cout: Int, height h: Int, width w: Int) {
    let (th, tw) = variant.tiles(h, w), t = th * tw, points = variant.points
    let u = UnsafeMutablePointer<Float>.allocate(capacity: points * cout * cin)
    defer { u.deallocate() }
    variant.weights(weight, u, cout, cin)
    Parallel.chunks(batch) { _, images in
        let v = UnsafeMutablePointer<Float>.allocate(capacity: points * cin * t)
        let m = UnsafeMutablePointer<Float>.allocate(capacity: points * cout * t)
        let size = variant.inputScratch(h, w)
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: size)
        scratch.initialize(repeating: 0, count: size)   // the padding is never written
        let outScratch = UnsafeMutablePointer<Float>.allocate(capacity: variant.outputScratch(tw))
        defer { v.deallocate(); m.deallocate(); scratch.deallocate(); outScratch.deallocate() }
        for n in images {
            variant.input(x + n * cin * h * w, v, cin, h, w, scratch)
            for xi in 0..<points {
                sgemm(m: cout, n: t, k: cin, a: u + xi * cout * cin, lda: cin, b: v + xi * t, ldb: points * t,
                      beta: 0, c: m + xi * t, ldc: points * t)
            }
            variant.output(m, y + n * cout * h * w, bias, cout, h, w, outScratch)
        }
    }
}

/// dweight (Cout, Cin, 3, 3) += the weight gradient of a 3x3 / stride 1 / padding 1 convolution
/// of x (N, Cin, H, W) with output gradient dy (N, Cout, H, W): per image the input tiles V and
/// the gradient tiles DY, dU_ξ += DY_ξ V_ξ^T (GEMMs of depth T), and once dW += G^T dU G.
public func winogradConv3x3WeightGradient(_ variant: WinogradVariant, x: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                                          dweight: UnsafeMutablePointer<Float>, batch: Int, inChannels cin: Int,
                                          outChannels cout: Int, height h: Int, width w: Int) {
    let (th, tw) = variant.tiles(h, w), t = th * tw, points = variant.points
    let workers = Parallel.workers(for: batch)
    let partials = UnsafeMutablePointer<Float>.allocate(capacity: workers * points * cout * cin)
    partials.initialize(repeating: 0, count: workers * points * cout * cin)
    defer { partials.deallocate() }
    Parallel.chunks(batch, workers: workers) { worker, images in
        let v = UnsafeMutablePointer<Float>.allocate(capacity: points * cin * t)
        let dyt = UnsafeMutablePointer<Float>.allocate(capacity: points * cout * t)
        let size = variant.inputScratch(h, w)
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: size)
        scratch.initialize(repeating: 0, count: size)
        let rows = UnsafeMutablePointer<Float>.allocate(capacity: variant.gradientScratch(tw))
        defer { v.deallocate(); dyt.deallocate(); scratch.deallocate(); rows.deallocate() }
        let du = partials + worker * points * cout * cin
        for n in images {
            variant.input(x + n * cin * h * w, v, cin, h, w, scratch)
            variant.outputGradient(dy + n * cout * h * w, dyt, cout, h, w, rows)
            for xi in 0..<points {
                sgemm(transB: true, m: cout, n: cin, k: t, a: dyt + xi * t, lda: points * t, b: v + xi * t, ldb: points * t,
                      beta: 1, c: du + xi * cout * cin, ldc: cin)
            }
        }
    }
    for worker in 1..<max(workers, 1) { addInPlace(partials, partials + worker * points * cout * cin, count: points * cout * cin) }
    variant.weightGradient(partials, dweight, cout, cin)
}
