// MobileNetV3's piecewise-linear activations and the squeeze-and-excitation channel scaling,
// with PyTorch's gradients at the kinks (hardswish: 0 up to and including -3, (2x + 3) / 6
// strictly inside (-3, 3), 1 from 3 on; hardsigmoid: 1/6 strictly inside (-3, 3), 0 elsewhere).

/// The piecewise-linear activations.
public enum HardActivation: String, Sendable {
    /// x * relu6(x + 3) / 6, as `F.hardswish`.
    case hardswish
    /// relu6(x + 3) / 6, as `F.hardsigmoid`.
    case hardsigmoid
}

public func hardActivationForward(_ kind: HardActivation, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, count: Int) {
    Parallel.chunks(count) { _, range in
        switch kind {
        case .hardswish: for i in range { let v = x[i]; y[i] = v * min(max(v + 3, 0), 6) / 6 }
        case .hardsigmoid: for i in range { y[i] = min(max(x[i] + 3, 0), 6) / 6 }
        }
    }
}

/// dx from the activation's input x and dy.
public func hardActivationBackward(_ kind: HardActivation, x: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                                   dx: UnsafeMutablePointer<Float>, count: Int) {
    Parallel.chunks(count) { _, range in
        switch kind {
        case .hardswish:
            for i in range {
                let v = x[i]
                dx[i] = v <= -3 ? 0 : v < 3 ? dy[i] * (v / 3 + 0.5) : dy[i]
            }
        case .hardsigmoid:
            for i in range { dx[i] = x[i] > -3 && x[i] < 3 ? dy[i] / 6 : 0 }
        }
    }
}

/// y[n, c] = x[n, c] * s[n, c] for x (N, C, P) and one scale per (image, channel): the
/// squeeze-and-excitation block's `scale * input`, as PyTorch broadcasts (N, C, 1, 1).
public func scaleChannelsForward(x: UnsafePointer<Float>, scales: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                                 planes: Int, pixels: Int) {
    Parallel.forEach(planes) { plane in
        let s = scales[plane], src = x + plane * pixels, dst = y + plane * pixels
        for i in 0..<pixels { dst[i] = src[i] * s }
    }
}

/// dx = dy * s (per plane) and ds[n, c] = the sum of dy * x over the plane.
public func scaleChannelsBackward(x: UnsafePointer<Float>, scales: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                                  dx: UnsafeMutablePointer<Float>, dscales: UnsafeMutablePointer<Float>, planes: Int, pixels: Int) {
    Parallel.forEach(planes) { plane in
        let s = scales[plane], src = x + plane * pixels, grad = dy + plane * pixels, out = dx + plane * pixels
        var sum: Double = 0
        for i in 0..<pixels { out[i] = grad[i] * s; sum += Double(grad[i] * src[i]) }
        dscales[plane] = Float(sum)
    }
}
