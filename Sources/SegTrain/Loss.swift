import SegCore

/// The training objectives: BCE on one-hot channels (the lab's), softmax cross-entropy on class
/// indices, soft Dice, or BCE + Dice.
public enum LossKind: String, CaseIterable, Sendable {
    case bce, ce, dice
    case bceDice = "bce+dice"

    /// How this objective's logits become probabilities and decisions — the one place that
    /// rule lives (metrics, prediction and pictures all ask here): softmax over the classes
    /// for cross-entropy, each channel's own sigmoid otherwise.
    public var outputActivation: OutputActivation { self == .ce ? .softmax : .sigmoid }

    /// The mean loss over the batch as a recorded scalar: `oneHot` (N, classes, H, W) holds the
    /// target as one-hot channels (every channel -1 at ignored pixels, which no loss counts);
    /// cross-entropy reads the class index from it.
    /// `classWeights` (one per class) weight cross-entropy as `F.cross_entropy(weight=)`.
    public func apply(_ logits: Tensor, oneHot: Tensor, _ pass: Pass, classWeights: [Float]? = nil) throws -> Tensor {
        precondition(logits.shape == oneHot.shape, "Logits \(logits.shape) and targets \(oneHot.shape) differ")
        switch self {
        case .bce: return pass.bceWithLogits(logits, targets: oneHot)
        case .dice: return pass.softDice(logits, targets: oneHot, activation: .sigmoid)
        case .bceDice: return pass.add(try LossKind.bce.apply(logits, oneHot: oneHot, pass),
                                       try LossKind.dice.apply(logits, oneHot: oneHot, pass))
        case .ce:
            let weights = classWeights.map { pass.backend.upload(Tensor(shape: [$0.count], storage: $0)) }
            return try pass.crossEntropy(logits, targets: pass.backend.targetClasses(oneHot), ignoreIndex: -1, classWeights: weights)
        }
    }
}

extension LossKind {
    /// What the mean of this loss over a batch is taken over, for host one-hot targets: the
    /// labelled target elements (bce), the class weights of the labelled pixels (ce, as
    /// `F.cross_entropy`'s weighted mean), or the images (dice and bce+dice, whose Dice term
    /// is a ratio of sums, not a mean). Data parallelism weights every slice by it.
    public func denominator(oneHot: Tensor, classWeights: [Float]?) -> Double {
        let (n, k, h, w) = oneHot.nchw
        let p = h * w
        switch self {
        case .dice, .bceDice: return Double(n)
        case .bce:
            return oneHot.withUnsafeBufferPointer { t in Double(t.reduce(0) { $0 + ($1 >= 0 ? 1 : 0) }) }
        case .ce:
            return oneHot.withUnsafeBufferPointer { t in
                var total = 0.0
                for i in 0..<n {
                    for q in 0..<p where t[i * k * p + q] >= 0 {
                        var c = 0
                        while c < k - 1 && t[(i * k + c) * p + q] < 0.5 { c += 1 }   // the one-hot channel
                        total += Double(classWeights?[c] ?? 1)
                    }
                }
                return total
            }
        }
    }

    /// The weighted sum of this loss over a model's training outputs (the main logits with
    /// weight 1, auxiliary heads with theirs), as one recorded scalar.
    public func apply(to outputs: [(logits: Tensor, weight: Float)], oneHot: Tensor, _ pass: Pass,
                      classWeights: [Float]? = nil) throws -> Tensor {
        var total: Tensor?
        for (logits, weight) in outputs {
            var term = try apply(logits, oneHot: oneHot, pass, classWeights: classWeights)
            if weight != 1 { term = pass.scaled(term, by: weight) }
            total = total.map { pass.add($0, term) } ?? term
        }
        guard let total else { throw TrainingError("the model produced no output to train on") }
        return total
    }
}

/// The class of each pixel of a one-hot (N, C, H, W) host target, -1 where ignored.
public func classIndices(_ oneHot: Tensor) -> [Int32] { CPUBackend.shared.targetClasses(oneHot).values }
