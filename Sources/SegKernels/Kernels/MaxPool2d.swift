// Legend: planes = N * C; each plane is H x W in, outH x outW out (floor on odd sizes).

/// Max pooling with a square window and no padding; records the winning input index of each
/// output (first maximum in row-major order, as PyTorch) in `argmax` for the backward pass.
public func maxPool2dForward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                             argmax: UnsafeMutablePointer<Int32>, planes: Int, height: Int, width: Int,
                             kernel: Int = 2, stride: Int = 2) {
    let oh = (height - kernel) / stride + 1, ow = (width - kernel) / stride + 1
    Parallel.forEach(planes) { p in
        let src = x + p * height * width, dst = y + p * oh * ow, arg = argmax + p * oh * ow
        for i in 0..<oh {
            for j in 0..<ow {
                var best = -Float.infinity, bestIndex = (i * stride) * width + j * stride
                for di in 0..<kernel {
                    let row = (i * stride + di) * width + j * stride
                    for dj in 0..<kernel {
                        let v = src[row + dj]
                        if v > best || v.isNaN { best = v; bestIndex = row + dj; if v.isNaN { break } }
                    }
                }
                dst[i * ow + j] = best
                arg[i * ow + j] = Int32(bestIndex)
            }
        }
    }
}

/// dx = 0 everywhere but at each window's recorded maximum, which receives the output gradient.
public func maxPool2dBackward(dy: UnsafePointer<Float>, argmax: UnsafePointer<Int32>, dx: UnsafeMutablePointer<Float>,
                              planes: Int, height: Int, width: Int, outH: Int, outW: Int) {
    Parallel.forEach(planes) { p in
        let g = dy + p * outH * outW, arg = argmax + p * outH * outW, d = dx + p * height * width
        d.update(repeating: 0, count: height * width)
        for i in 0..<(outH * outW) { d[Int(arg[i])] += g[i] }
    }
}

public func maxPool2dOutputSize(height: Int, width: Int, kernel: Int = 2, stride: Int = 2) -> (h: Int, w: Int) {
    ((height - kernel) / stride + 1, (width - kernel) / stride + 1)
}
