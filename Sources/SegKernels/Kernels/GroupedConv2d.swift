// Grouped convolutions, as `F.conv2d(groups=G)`: the input's C channels and the output's Cout
// channels are split into G groups, group g's outputs reading only group g's inputs; the weight
// is (Cout, C / G, kH, kW). `geometry.channels` is C (the whole input).
//
// Depthwise (one input channel per group — MobileNet's case) runs as a direct convolution
// (Depthwise.swift). Wider groups run each group through the ordinary
// convolution (im2col / Winograd + GEMM over the group's channels), image by image.

/// Whether a grouped convolution with these channels takes the direct depthwise kernels.
@inline(__always) func isDepthwise(_ g: ConvGeometry, groups: Int) -> Bool { g.channels == groups }

public func groupedConv2dForward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                                 y: UnsafeMutablePointer<Float>, batch: Int, outChannels: Int, groups: Int, geometry g: ConvGeometry) {
    precondition(g.channels % groups == 0 && outChannels % groups == 0,
                 "conv2d: \(g.channels) input and \(outChannels) output channels do not split into \(groups) groups")
    if groups == 1 {
        return conv2dForward(x: x, weight: weight, bias: bias, y: y, batch: batch, outChannels: outChannels, geometry: g)
    }
    let cin = g.channels / groups, cout = outChannels / groups, kk = g.kernelH * g.kernelW
    let P = g.outPixels, Q = g.inPixels
    if isDepthwise(g, groups: groups) {
        return depthwiseForward(x: x, weight: weight, bias: bias, y: y, batch: batch, outChannels: outChannels, geometry: g)
    }
    let sub = ConvGeometry(channels: cin, height: g.height, width: g.width, kernelH: g.kernelH, kernelW: g.kernelW,
                           stride: g.stride, padding: g.padding, dilation: g.dilation)
    for n in 0..<batch {
        for group in 0..<groups {
            conv2dForward(x: x + (n * g.channels + group * cin) * Q, weight: weight + group * cout * cin * kk,
                          bias: bias.map { $0 + group * cout }, y: y + (n * outChannels + group * cout) * P,
                          batch: 1, outChannels: cout, geometry: sub)
        }
    }
}

/// Accumulates into dweight and dbias (+=); overwrites dx when given.
public func groupedConv2dBackward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                                  dx: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>,
                                  dbias: UnsafeMutablePointer<Float>?, batch: Int, outChannels: Int, groups: Int,
                                  geometry g: ConvGeometry) {
    if groups == 1 {
        return conv2dBackward(x: x, weight: weight, dy: dy, dx: dx, dweight: dweight, dbias: dbias, batch: batch,
                              outChannels: outChannels, geometry: g)
    }
    let cin = g.channels / groups, cout = outChannels / groups, kk = g.kernelH * g.kernelW
    let P = g.outPixels, Q = g.inPixels
    if isDepthwise(g, groups: groups) {
        if let dbias { sumPerChannel(dy, into: dbias, batch: batch, channels: outChannels, pixels: P) }
        return depthwiseBackward(x: x, weight: weight, dy: dy, dx: dx, dweight: dweight, batch: batch, outChannels: outChannels,
                                 geometry: g)
    }
    let sub = ConvGeometry(channels: cin, height: g.height, width: g.width, kernelH: g.kernelH, kernelW: g.kernelW,
                           stride: g.stride, padding: g.padding, dilation: g.dilation)
    for n in 0..<batch {
        for group in 0..<groups {
            conv2dBackward(x: x + (n * g.channels + group * cin) * Q, weight: weight + group * cout * cin * kk,
                           dy: dy + (n * outChannels + group * cout) * P, dx: dx.map { $0 + (n * g.channels + group * cin) * Q },
                           dweight: dweight + group * cout * cin * kk, dbias: dbias.map { $0 + group * cout },
                           batch: 1, outChannels: cout, geometry: sub)
        }
    }
}
