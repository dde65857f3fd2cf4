// Legend: planes = N * C; each plane H x W in, outH x outW out.

/// PyTorch's bins: output cell i covers input [floor(i * in / out), ceil((i + 1) * in / out)).
@inline(__always)
func adaptiveBin(_ i: Int, inSize: Int, outSize: Int) -> Range<Int> {
    (i * inSize / outSize)..<(((i + 1) * inSize + outSize - 1) / outSize)
}

public func adaptiveAvgPool2dForward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, planes: Int,
                                     height: Int, width: Int, outH: Int, outW: Int) {
    Parallel.forEach(planes) { p in
        let src = x + p * height * width, dst = y + p * outH * outW
        for i in 0..<outH {
            let rows = adaptiveBin(i, inSize: height, outSize: outH)
            for j in 0..<outW {
                let cols = adaptiveBin(j, inSize: width, outSize: outW)
                var s: Float = 0
                for r in rows { for c in cols { s += src[r * width + c] } }
                dst[i * outW + j] = s / Float(rows.count * cols.count)
            }
        }
    }
}

public func adaptiveAvgPool2dBackward(dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, planes: Int,
                                      height: Int, width: Int, outH: Int, outW: Int) {
    Parallel.forEach(planes) { p in
        let g = dy + p * outH * outW, d = dx + p * height * width
        d.update(repeating: 0, count: height * width)
        for i in 0..<outH {
            let rows = adaptiveBin(i, inSize: height, outSize: outH)
            for j in 0..<outW {
                let cols = adaptiveBin(j, inSize: width, outSize: outW)
                let share = g[i * outW + j] / Float(rows.count * cols.count)
                for r in rows { for c in cols { d[r * width + c] += share } }
            }
        }
    }
}
