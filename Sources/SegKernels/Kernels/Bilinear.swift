// Legend: planes = N * C; each plane is inH x inW in and outH x outW out.

/// For each output coordinate along one axis: the two source indices and their weights,
/// computed as PyTorch's `upsample_bilinear2d` does.
public struct BilinearAxis {
    public let i0: [Int], i1: [Int], w0: [Float], w1: [Float]

    public init(inSize: Int, outSize: Int, alignCorners: Bool) {
        var i0 = [Int](repeating: 0, count: outSize), i1 = i0
        var w0 = [Float](repeating: 0, count: outSize), w1 = w0
        let scale: Float = alignCorners
            ? (outSize > 1 ? Float(inSize - 1) / Float(outSize - 1) : 0)
            : Float(inSize) / Float(outSize)
        for o in 0..<outSize {
            let src = alignCorners ? scale * Float(o) : max(scale * (Float(o) + 0.5) - 0.5, 0)
            let lo = min(Int(src), inSize - 1)
            i0[o] = lo
            i1[o] = lo < inSize - 1 ? lo + 1 : lo
            w1[o] = src - Float(lo)
            w0[o] = 1 - w1[o]
        }
        self.i0 = i0; self.i1 = i1; self.w0 = w0; self.w1 = w1
    }
}

public func bilinearForward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, planes: Int,
                            inH: Int, inW: Int, outH: Int, outW: Int, alignCorners: Bool) {
    let ax = BilinearAxis(inSize: inW, outSize: outW, alignCorners: alignCorners)
    let ay = BilinearAxis(inSize: inH, outSize: outH, alignCorners: alignCorners)
    Parallel.forEach(planes) { p in
        let src = x + p * inH * inW, dst = y + p * outH * outW
        for o in 0..<outH {
            let r0 = src + ay.i0[o] * inW, r1 = src + ay.i1[o] * inW
            let wy0 = ay.w0[o], wy1 = ay.w1[o]
            let out = dst + o * outW
            for q in 0..<outW {
                let a = ax.i0[q], b = ax.i1[q]
                out[q] = wy0 * (ax.w0[q] * r0[a] + ax.w1[q] * r0[b]) + wy1 * (ax.w0[q] * r1[a] + ax.w1[q] * r1[b])
            }
        }
    }
}

/// Overwrites dx with the adjoint of `bilinearForward` applied to dy.
public func bilinearBackward(dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, planes: Int,
                             inH: Int, inW: Int, outH: Int, outW: Int, alignCorners: Bool) {
    let ax = BilinearAxis(inSize: inW, outSize: outW, alignCorners: alignCorners)
    let ay = BilinearAxis(inSize: inH, outSize: outH, alignCorners: alignCorners)
    Parallel.forEach(planes) { p in
        let g = dy + p * outH * outW, d = dx + p * inH * inW
        d.update(repeating: 0, count: inH * inW)
        for o in 0..<outH {
            let r0 = d + ay.i0[o] * inW, r1 = d + ay.i1[o] * inW
            let wy0 = ay.w0[o], wy1 = ay.w1[o]
            let row = g + o * outW
            for q in 0..<outW {
                let v = row[q], a = ax.i0[q], b = ax.i1[q]
                r0[a] += wy0 * ax.w0[q] * v; r0[b] += wy0 * ax.w1[q] * v
                r1[a] += wy1 * ax.w0[q] * v; r1[b] += wy1 * ax.w1[q] * v
            }
        }
    }
}
