/// Channel concatenation of a (N, Ca, H, W) and b (N, Cb, H, W) into y (N, Ca + Cb, H, W).
public func concatChannelsForward(a: UnsafePointer<Float>, b: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                                  batch: Int, channelsA: Int, channelsB: Int, pixels: Int) {
    let sa = channelsA * pixels, sb = channelsB * pixels
    Parallel.forEach(batch) { n in
        (y + n * (sa + sb)).update(from: a + n * sa, count: sa)
        (y + n * (sa + sb) + sa).update(from: b + n * sb, count: sb)
    }
}

/// Splits dy (N, Ca + Cb, H, W) back into da and db.
public func concatChannelsBackward(dy: UnsafePointer<Float>, da: UnsafeMutablePointer<Float>, db: UnsafeMutablePointer<Float>,
                                   batch: Int, channelsA: Int, channelsB: Int, pixels: Int) {
    let sa = channelsA * pixels, sb = channelsB * pixels
    Parallel.forEach(batch) { n in
        (da + n * sa).update(from: dy + n * (sa + sb), count: sa)
        (db + n * sb).update(from: dy + n * (sa + sb) + sa, count: sb)
    }
}
