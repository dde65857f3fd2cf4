import Foundation

// Legend: N = batch, C = channels (classes), P = pixels per plane; x is (N, C, P).
// The per-pixel operations across channels (softmax, arg-max) and the per-channel reductions,
// each written once: losses, metrics, prediction and batch norm all use these.

/// Sum over the batch and pixels of channel `c`, in Double so large batches keep float32 accuracy.
@inline(__always)
public func channelSum(_ x: UnsafePointer<Float>, batch: Int, channels: Int, pixels: Int, channel c: Int) -> Double {
    var s: Double = 0
    for n in 0..<batch { s += Double(rowSum(x + (n * channels + c) * pixels, pixels)) }
    return s
}

/// out[c] += sum over batch and pixels of t[n, c, :].
public func sumPerChannel(_ t: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>,
                          batch: Int, channels: Int, pixels: Int) {
    Parallel.forEach(channels) { c in
        out[c] += Float(channelSum(t, batch: batch, channels: channels, pixels: pixels, channel: c))
    }
}

/// Softmax across the `classes` planes at one pixel: reads `x[c * pixels]`, writes the
/// probabilities to `out[c * pixels]` (may be nil) and returns log(sum(exp)), the log-partition.
@inline(__always)
public func softmaxPixel(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>?, classes: Int, pixels: Int) -> Float {
    var m = -Float.infinity
    for c in 0..<classes { m = max(m, x[c * pixels]) }
    var sum: Float = 0
    for c in 0..<classes { sum += expf(x[c * pixels] - m) }
    let logZ = m + logf(sum)
    if let out { for c in 0..<classes { out[c * pixels] = expf(x[c * pixels] - logZ) } }
    return logZ
}

/// Runs `body(image, pixels)` over blocks of at most 16,384 of every image's pixels, spread over
/// the workers, so one image keeps every core busy; each pixel is computed as it would be alone.
@inline(__always)
func forEachPixelBlock(batch: Int, pixels: Int, _ body: (_ image: Int, _ pixels: Range<Int>) -> Void) {
    let block = 16_384, blocks = (pixels + block - 1) / block
    Parallel.forEach(batch * blocks) { i in
        let (n, b) = i.quotientAndRemainder(dividingBy: blocks)
        body(n, (b * block)..<min(pixels, (b + 1) * block))
    }
}

/// Softmax across the `classes` planes at one pixel as PyTorch's CPU kernel computes it:
/// e_c = exp(x_c - max), p_c = e_c * (1 / sum e) — one exp a class (the loss's
/// `softmaxPixel` takes two and a log, for the log-partition it needs).
@inline(__always)
public func softmaxProbabilities(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, classes: Int, pixels: Int) {
    var m = -Float.infinity
    for c in 0..<classes { m = max(m, x[c * pixels]) }
    var sum: Float = 0
    for c in 0..<classes { let e = expf(x[c * pixels] - m); out[c * pixels] = e; sum += e }
    let r = 1 / sum
    for c in 0..<classes { out[c * pixels] *= r }
}

/// y = softmax over the channels of x, pixel by pixel (`softmaxProbabilities`).
public func softmaxChannels(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int, classes: Int, pixels: Int) {
    forEachPixelBlock(batch: batch, pixels: pixels) { n, range in
        let base = n * classes * pixels
        for q in range { softmaxProbabilities(x + base + q, y + base + q, classes: classes, pixels: pixels) }
    }
}

/// y = sigmoid(x), element by element.
public func sigmoidForward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, count: Int) {
    forEachPixelBlock(batch: 1, pixels: count) { _, range in for i in range { y[i] = sigmoid(x[i]) } }
}

/// The channel holding the largest value at each pixel (the first one on ties, as torch.argmax).
public func argmaxChannels(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Int32>, batch: Int, classes: Int, pixels: Int) {
    forEachPixelBlock(batch: batch, pixels: pixels) { n, range in
        argmaxPixels(x + n * classes * pixels, out + n * pixels, classes: classes, pixels: pixels, range)
    }
}

/// `argmaxChannels` of one image's pixels in `range`, on the calling thread.
@inline(__always)
func argmaxPixels(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Int32>, classes: Int, pixels: Int, _ range: Range<Int>) {
    for q in range {
        var best: Int32 = 0, bestValue = x[q]
        for c in 1..<max(classes, 1) where x[c * pixels + q] > bestValue {
            best = Int32(c); bestValue = x[c * pixels + q]
        }
        out[q] = best
    }
}

/// How logits become per-class decisions: each channel's sigmoid thresholded at 0.5 (logit > 0),
/// or the arg-max class (softmax).
public enum OutputActivation: String, Sendable { case sigmoid, softmax }

/// Per image and class: (|predicted ∩ truth|, |predicted|, |truth|) into `counts`
/// (N, classes, 3), where truth is target > 0.5 on one-hot targets (N, classes, P); ignored
/// pixels (negative targets) are counted nowhere.
public func overlapCounts(logits: UnsafePointer<Float>, targets: UnsafePointer<Float>, counts: UnsafeMutablePointer<Int>,
                          batch: Int, classes: Int, pixels: Int, activation: OutputActivation) {
    Parallel.forEach(batch) { n in
        let l = logits + n * classes * pixels, t = targets + n * classes * pixels
        let out = counts + n * classes * 3
        out.update(repeating: 0, count: classes * 3)
        var winner = [Int32](repeating: 0, count: activation == .softmax ? pixels : 0)
        if activation == .softmax {
            winner.withUnsafeMutableBufferPointer { argmaxPixels(l, $0.baseAddress!, classes: classes, pixels: pixels, 0..<pixels) }
        }
        for k in 0..<classes {
            var inter = 0, predicted = 0, truth = 0
            for q in 0..<pixels where t[q] >= 0 {
                let isPred = activation == .softmax ? winner[q] == Int32(k) : l[k * pixels + q] > 0
                let isTrue = t[k * pixels + q] > 0.5
                if isPred { predicted += 1 }
                if isTrue { truth += 1 }
                if isPred && isTrue { inter += 1 }
            }
            out[3 * k] = inter; out[3 * k + 1] = predicted; out[3 * k + 2] = truth
        }
    }
}

/// The class of each pixel of one-hot targets (N, classes, P): the channel holding 1, or -1 for
/// an ignored pixel (negative targets).
public func targetClasses(_ targets: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Int32>, batch: Int, classes: Int, pixels: Int) {
    argmaxChannels(targets, out, batch: batch, classes: classes, pixels: pixels)
    for n in 0..<batch {
        for q in 0..<pixels where targets[n * classes * pixels + q] < 0 { out[n * pixels + q] = -1 }
    }
}

/// t *= s.
public func scaleInPlace(_ t: UnsafeMutablePointer<Float>, _ s: Float, count: Int) {
    var i = 0
    let v = Lanes(repeating: s)
    while i + 8 <= count { store(load(t, i) * v, t, i); i += 8 }
    while i < count { t[i] *= s; i += 1 }
}
