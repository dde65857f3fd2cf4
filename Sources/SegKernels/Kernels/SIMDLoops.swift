// Reductions and fused loops over contiguous float rows, written with SIMD8 lanes: Swift
// keeps float addition in order, so a plain `for` reduction never vectorises on its own.

public typealias Lanes = SIMD8<Float>

@inline(__always) func load(_ p: UnsafePointer<Float>, _ i: Int) -> Lanes {
    UnsafeRawPointer(p + i).loadUnaligned(as: Lanes.self)
}

@inline(__always) func store(_ v: Lanes, _ p: UnsafeMutablePointer<Float>, _ i: Int) {
    UnsafeMutableRawPointer(p + i).storeBytes(of: v, as: Lanes.self)
}

/// Sum of `count` floats.
@inline(__always) public func rowSum(_ p: UnsafePointer<Float>, _ count: Int) -> Float {
    var acc = Lanes(), i = 0
    while i + 8 <= count { acc += load(p, i); i += 8 }
    var s = acc.sum()
    while i < count { s += p[i]; i += 1 }
    return s
}

/// Sum of (p[i] - mean)^2.
@inline(__always) func rowSquaredDeviation(_ p: UnsafePointer<Float>, _ mean: Float, _ count: Int) -> Float {
    var acc = Lanes(), i = 0
    let m = Lanes(repeating: mean)
    while i + 8 <= count {
        let d: Lanes = load(p, i) - m
        acc += d * d
        i += 8
    }
    var s = acc.sum()
    while i < count { let d = p[i] - mean; s += d * d; i += 1 }
    return s
}

/// dst[i] += src[i].
@inline(__always) public func rowAdd(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, _ count: Int) {
    var i = 0
    while i + 8 <= count {
        let v: Lanes = load(dst, i) + load(src, i)
        store(v, dst, i)
        i += 8
    }
    while i < count { dst[i] += src[i]; i += 1 }
}
