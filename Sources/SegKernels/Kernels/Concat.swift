// Copied plane by plane over the workers, so one image's concatenation uses every core.

/// Channel concatenation of a (N, Ca, H, W) and b (N, Cb, H, W) into y (N, Ca + Cb, H, W).
public func concatChannelsForward(a: UnsafePointer<Float>, b: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                                  batch: Int, channelsA: Int, channelsB: Int, pixels: Int) {
    let c = channelsA + channelsB
    Parallel.forEach(batch * c) { plane in
        let (n, k) = plane.quotientAndRemainder(dividingBy: c)
        let source = k < channelsA ? a + (n * channelsA + k) * pixels : b + (n * channelsB + k - channelsA) * pixels
        (y + plane * pixels).update(from: source, count: pixels)
    }
}

/// Splits dy (N, Ca + Cb, H, W) back into da and db.
public func concatChannelsBackward(dy: UnsafePointer<Float>, da: UnsafeMutablePointer<Float>, db: UnsafeMutablePointer<Float>,
                                   batch: Int, channelsA: Int, channelsB: Int, pixels: Int) {
    let c = channelsA + channelsB
    Parallel.forEach(batch * c) { plane in
        let (n, k) = plane.quotientAndRemainder(dividingBy: c)
        let target = k < channelsA ? da + (n * channelsA + k) * pixels : db + (n * channelsB + k - channelsA) * pixels
        target.update(from: dy + plane * pixels, count: pixels)
    }
}
