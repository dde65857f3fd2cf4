import Foundation

public func reluForward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, count: Int) {
    forEachSpan(count) { span in
        var i = span.lowerBound
        while i + 8 <= span.upperBound { store(clampedAtZero(load(x, i)), y, i); i += 8 }
        while i < span.upperBound { y[i] = max(x[i], 0); i += 1 }
    }
}

/// dx = dy where the *output* was positive (the output is what a fused layer keeps).
public func reluBackward(y: UnsafePointer<Float>, dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, count: Int) {
    forEachSpan(count) { span in
        var i = span.lowerBound
        while i + 8 <= span.upperBound { store(Lanes().replacing(with: load(dy, i), where: load(y, i) .> 0), dx, i); i += 8 }
        while i < span.upperBound { dx[i] = y[i] > 0 ? dy[i] : 0; i += 1 }
    }
}

/// max(v, 0) lane by lane as one compare and blend (NaN stays NaN, as `max(x, 0)`): the
/// standard library's `pointwiseMax` did not inline and took 4% of a ResNet-50 step (perf).
@inline(__always) func clampedAtZero(_ v: Lanes) -> Lanes { v.replacing(with: Lanes(), where: v .< Lanes()) }

/// p[i] = max(p[i], 0) on one thread (for epilogues inside parallel work).
@inline(__always) func reluInPlace(_ p: UnsafeMutablePointer<Float>, count: Int) {
    var i = 0
    while i + 8 <= count { store(clampedAtZero(load(p, i)), p, i); i += 8 }
    while i < count { p[i] = max(p[i], 0); i += 1 }
}

/// Calls `body` on consecutive spans of `0..<count`, spread over the workers when the spans
/// are long enough (64k floats each) to pay for the dispatch: a ResNet-50's activations at
/// 128 px are 0.5-2 M floats a layer.
@inline(__always) func forEachSpan(_ count: Int, _ body: (Range<Int>) -> Void) {
    let spans = min(Parallel.threads, max(1, count / 65_536))
    Parallel.chunks(spans) { _, range in
        for s in range { body((s * count / spans)..<((s + 1) * count / spans)) }
    }
}

@inline(__always)
public func sigmoid(_ x: Float) -> Float {
    // Split by sign so exp never overflows.
    if x >= 0 { return 1 / (1 + expf(-x)) }
    let e = expf(x)
    return e / (1 + e)
}

public func sigmoidBackward(y: UnsafePointer<Float>, dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, count: Int) {
    for i in 0..<count { dx[i] = dy[i] * y[i] * (1 - y[i]) }
}

public func addForward(a: UnsafePointer<Float>, b: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, count: Int) {
    forEachSpan(count) { span in
        var i = span.lowerBound
        while i + 8 <= span.upperBound { store(load(a, i) + load(b, i), y, i); i += 8 }
        while i < span.upperBound { y[i] = a[i] + b[i]; i += 1 }
    }
}

/// a = relu(a + b) in place: the sums of `addForward` clamped as `reluForward` clamps them
/// (the same spans, lanes and tails), so the same values as the two ops, in one pass over
/// memory and with no tensor between them.
public func addReLUInPlace(_ a: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, count: Int) {
    forEachSpan(count) { span in
        var i = span.lowerBound
        while i + 8 <= span.upperBound { store(clampedAtZero(load(a, i) + load(b, i)), a, i); i += 8 }
        while i < span.upperBound { a[i] = max(a[i] + b[i], 0); i += 1 }
    }
}
