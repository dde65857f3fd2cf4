/// Inverted dropout: each element is kept with probability 1 - p and scaled by 1 / (1 - p), so
/// evaluation needs no rescaling. `mask` receives the per-element factor (0 or 1 / (1 - p)) for
/// the backward pass, which is then dx = dy * mask.
public func dropoutForward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, mask: UnsafeMutablePointer<Float>,
                           count: Int, p: Float, generator: inout SeededGenerator) {
    precondition(p >= 0 && p < 1, "Dropout probability must be in [0, 1), got \(p)")
    let keep = 1 / (1 - p)
    for i in 0..<count {
        mask[i] = generator.nextUnit() < p ? 0 : keep
        y[i] = x[i] * mask[i]
    }
}

public func dropoutBackward(dy: UnsafePointer<Float>, mask: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, count: Int) {
    for i in 0..<count { dx[i] = dy[i] * mask[i] }
}
