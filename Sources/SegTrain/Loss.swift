import SegCore

/// The training objectives: BCE on one-hot channels (the lab's), softmax cross-entropy on class
/// indices, soft Dice, or BCE + Dice.
public enum LossKind: String, CaseIterable, Sendable {
    case bce, ce, dice
    case bceDice = "bce+dice"

    /// Mean loss over the batch and d(loss)/d(logits). `oneHot` (N, classes, H, W) holds the
    /// target as one-hot channels; cross-entropy reads the class index from it.
    public func evaluate(logits: Tensor, oneHot: Tensor) throws -> (loss: Float, gradient: Tensor) {
        precondition(logits.shape == oneHot.shape, "Logits \(logits.shape) and targets \(oneHot.shape) differ")
        let (n, classes, h, w) = logits.nchw
        var grad = Tensor(uninitialized: logits.shape)
        switch self {
        case .bce:
            let loss = logits.ptr { l in oneHot.ptr { t in grad.mutPtr { g in bceWithLogits(logits: l, targets: t, count: logits.count, grad: g) } } }
            return (loss, grad)
        case .dice:
            let loss = logits.ptr { l in oneHot.ptr { t in grad.mutPtr { g in
                softDiceLoss(logits: l, targets: t, batch: n, classes: classes, pixels: h * w, activation: .sigmoid, grad: g)
            } } }
            return (loss, grad)
        case .bceDice:
            let (a, ga) = try LossKind.bce.evaluate(logits: logits, oneHot: oneHot)
            var (b, gb) = try LossKind.dice.evaluate(logits: logits, oneHot: oneHot)
            gb += ga
            return (a + b, gb)
        case .ce:
            let indices = classIndices(oneHot)
            let loss = try logits.ptr { l in try indices.withUnsafeBufferPointer { t in try grad.mutPtr { g in
                try softmaxCrossEntropy(logits: l, targets: t.baseAddress!, batch: n, classes: classes, pixels: h * w, grad: g)
            } } }
            return (loss, grad)
        }
    }
}

/// The class of each pixel of a one-hot (N, C, H, W) target: the channel holding its largest value.
public func classIndices(_ oneHot: Tensor) -> [Int32] {
    let (n, classes, h, w) = oneHot.nchw
    let p = h * w
    var out = [Int32](repeating: 0, count: n * p)
    oneHot.ptr { t in
        for b in 0..<n {
            for q in 0..<p {
                var best: Int32 = 0, bestValue = t[b * classes * p + q]
                for c in 1..<max(classes, 1) where t[(b * classes + c) * p + q] > bestValue {
                    best = Int32(c); bestValue = t[(b * classes + c) * p + q]
                }
                out[b * p + q] = best
            }
        }
    }
    return out
}
