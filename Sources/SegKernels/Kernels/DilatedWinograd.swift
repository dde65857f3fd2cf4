// A 3x3 convolution with dilation d and padding d (FCN's and DeepLab's layer3 and layer4 at
// output stride 8 or 16, PSPNet's) reads, for an output pixel (d i + r, d j + s), only pixels of
// the same phase (r, s): it is an ordinary 3x3 / padding-1 convolution on each of the d x d
// phase sub-images. Split into phases, the layer runs on the Winograd path as a batch of N d²
// images of (H/d) x (W/d) — 2.25-4x fewer multiplications than the nine taps im2col + GEMM
// computes — and its gradients do too (the input gradient is the flipped-kernel convolution
// of dy's phases, the weight gradient sums over every phase image).
// Phase images under 16 px wide are split interleaved across images instead and transformed
// with the images on the SIMD lanes (`DilatedWinogradLanes.swift`).

extension ConvGeometry {
    /// The phase count d when the split applies: a 3x3, stride-1 window with dilation
    /// d = padding > 1 (so the output keeps the input's size), sides divisible by d, phase
    /// images of at least 4 px a side that the Winograd path takes, and `outChannels` (the
    /// input gradient's channels) too. 4 px phases (FCN's layer4 at 128 px: 16 px, dilation 4;
    /// DeepLabV3+'s at 8 px, dilation 2) pay since the whole-batch schedule runs them as one
    /// GEMM per tile point over every image: 512 -> 512 channels, batch 4, 16 px, dilation 4,
    /// forward + backward 110-126 ms on im2col, 75-79 ms on phases (best of 8, 2-core Zen 4).
    public func winogradPhases(outChannels: Int) -> Int? {
        guard kernelH == 3, kernelW == 3, stride == 1, dilation > 1, padding == dilation,
              height % dilation == 0, width % dilation == 0, min(height, width) / dilation >= 4,
              outChannels >= 16, onlyTap == nil else { return nil }
        return phaseGeometry.isWinograd3x3 ? dilation : nil
    }

    /// One phase image's undilated 3x3 / padding-1 geometry.
    var phaseGeometry: ConvGeometry {
        ConvGeometry(channels: channels, height: height / dilation, width: width / dilation, kernelH: 3, kernelW: 3,
                     stride: 1, padding: 1)
    }
}

/// x (N, C, H, W) -> phases (N d², C, H/d, W/d): image n d² + r d + s holds x[n, c, d i + r, d j + s].
func splitPhases(_ x: UnsafePointer<Float>, _ phases: UnsafeMutablePointer<Float>, batch: Int, channels: Int,
                 height h: Int, width w: Int, phases d: Int) {
    forEachPhaseRow(batch: batch, channels: channels, height: h, width: w, phases: d) { pixel, phase, count in
        for j in 0..<count { phases[phase + j] = x[pixel + d * j] }
    }
}

/// The inverse of `splitPhases`: phases (N d², C, H/d, W/d) -> x (N, C, H, W).
func mergePhases(_ phases: UnsafePointer<Float>, _ x: UnsafeMutablePointer<Float>, batch: Int, channels: Int,
                 height h: Int, width w: Int, phases d: Int) {
    forEachPhaseRow(batch: batch, channels: channels, height: h, width: w, phases: d) { pixel, phase, count in
        for j in 0..<count { x[pixel + d * j] = phases[phase + j] }
    }
}

/// Calls `body(pixel, phase, count)` for every row of every phase image: `count` pixels from
/// index `pixel` of the (N, C, H, W) image at stride d, and index `phase` of the phase layout
/// (consecutive). The (image, channel) planes are spread over the workers.
@inline(__always) private func forEachPhaseRow(batch: Int, channels: Int, height h: Int, width w: Int, phases d: Int,
                                               _ body: (_ pixel: Int, _ phase: Int, _ count: Int) -> Void) {
    let ph = h / d, pw = w / d
    Parallel.forEach(batch * channels) { plane in
        let n = plane / channels, c = plane % channels
        for r in 0..<d { for s in 0..<d {
            let phase = (((n * d + r) * d + s) * channels + c) * ph * pw
            for i in 0..<ph { body(plane * h * w + (d * i + r) * w + s, phase + i * pw, pw) }
        } }
    }
}

/// y = the dilated convolution of x (`g.winogradPhases` is d), on the phase images.
func dilatedWinogradForward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                            y: UnsafeMutablePointer<Float>, batch: Int, outChannels cout: Int, geometry g: ConvGeometry, phases d: Int,
                            relu: Bool = false) {
    if g.interleavesPhases(outChannels: cout, phases: d, batch: batch) {
        return dilatedLanesForward(x: x, weight: weight, bias: bias, y: y, batch: batch, outChannels: cout, geometry: g, phases: d,
                                   relu: relu)
    }
    let p = g.phaseGeometry, images = batch * d * d
    let xp = UnsafeMutablePointer<Float>.allocate(capacity: batch * g.channels * g.inPixels)
    let yp = UnsafeMutablePointer<Float>.allocate(capacity: batch * cout * g.inPixels)
    defer { xp.deallocate(); yp.deallocate() }
    splitPhases(x, xp, batch: batch, channels: g.channels, height: g.height, width: g.width, phases: d)
    winogradConv3x3(.forMap(height: p.height, width: p.width, channels: min(g.channels, cout)), x: xp, weight: weight, bias: bias, y: yp, batch: images,
                    inChannels: g.channels, outChannels: cout, height: p.height, width: p.width, relu: relu)
    mergePhases(yp, y, batch: batch, channels: cout, height: g.height, width: g.width, phases: d)
}

/// dweight += and, when `dx` is given, dx = the gradients of the dilated convolution, on the
/// phase images of x and dy (dbias is the caller's).
func dilatedWinogradBackward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                             dx: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>, batch: Int,
                             outChannels cout: Int, geometry g: ConvGeometry, phases d: Int) {
    if g.interleavesPhases(outChannels: cout, phases: d, batch: batch) {
        return dilatedLanesBackward(x: x, weight: weight, dy: dy, dx: dx, dweight: dweight, batch: batch, outChannels: cout,
                                    geometry: g, phases: d)
    }
    let p = g.phaseGeometry, images = batch * d * d, variant = WinogradVariant.forMap(height: p.height, width: p.width,
                                                                                   channels: min(g.channels, cout))
    let xp = UnsafeMutablePointer<Float>.allocate(capacity: batch * g.channels * g.inPixels)
    let dyp = UnsafeMutablePointer<Float>.allocate(capacity: batch * cout * g.inPixels)
    defer { xp.deallocate(); dyp.deallocate() }
    splitPhases(x, xp, batch: batch, channels: g.channels, height: g.height, width: g.width, phases: d)
    splitPhases(dy, dyp, batch: batch, channels: cout, height: g.height, width: g.width, phases: d)
    winogradConv3x3WeightGradient(variant, x: xp, dy: dyp, dweight: dweight, batch: images, inChannels: g.channels,
                                  outChannels: cout, height: p.height, width: p.width)
    guard let dx else { return }
    // the phase images' input gradient, written over xp (no longer needed)
    winogradConv3x3(variant, inputs: ChannelParts([(UnsafePointer(dyp), cout)]), kernels: .adjoint(of: weight), bias: nil, y: xp,
                    batch: images, outChannels: g.channels, height: p.height, width: p.width)
    mergePhases(xp, dx, batch: batch, channels: g.channels, height: g.height, width: g.width, phases: d)
}
