import SegCore

/// How logits become per-class masks: sigmoid per channel thresholded at 0.5 (the lab's rule for
/// BCE on one-hot channels), or the arg-max class under softmax.
public enum PredictionRule: Sendable {
    case sigmoidThreshold, argmax

    public init(loss: LossKind) { self = loss == .ce ? .argmax : .sigmoidThreshold }
}

/// Per-class Dice and Jaccard with the lab's smoothing, (2|A∩B| + 1e-4) / (|A| + |B| + 1e-4) and
/// (|A∩B| + 1e-4) / (|A∪B| + 1e-4), so two empty masks score 1; averaged over images.
public struct SegmentationScores: Equatable, Sendable {
    public let classes: Int
    /// Sums over images of the per-image scores, per class.
    public private(set) var diceSum: [Double]
    public private(set) var jaccardSum: [Double]
    public private(set) var images = 0

    public init(classes: Int) {
        self.classes = classes
        diceSum = .init(repeating: 0, count: classes); jaccardSum = .init(repeating: 0, count: classes)
    }

    /// Scores from sums gathered elsewhere (e.g. reduced over ranks).
    public init(classes: Int, diceSum: [Double], jaccardSum: [Double], images: Int) {
        self.classes = classes; self.diceSum = diceSum; self.jaccardSum = jaccardSum; self.images = images
    }

    public static let smooth = 1e-4

    public static func dice(intersection: Int, predicted: Int, truth: Int) -> Double {
        (2 * Double(intersection) + smooth) / (Double(predicted + truth) + smooth)
    }

    public static func jaccard(intersection: Int, predicted: Int, truth: Int) -> Double {
        (Double(intersection) + smooth) / (Double(predicted + truth - intersection) + smooth)
    }

    /// Adds every image of a batch: logits and one-hot targets (N, classes, H, W).
    public mutating func add(logits: Tensor, targets: Tensor, rule: PredictionRule) {
        let (n, c, h, w) = logits.nchw
        precondition(c == classes && targets.shape == logits.shape, "Scores expect \(classes) classes and matching targets")
        let p = h * w
        logits.ptr { l in targets.ptr { t in
            for b in 0..<n {
                for k in 0..<c {
                    var inter = 0, predicted = 0, truth = 0
                    for q in 0..<p {
                        let isPred = Self.predicts(l + b * c * p, class: k, pixel: q, classes: c, pixels: p, rule: rule)
                        let isTrue = t[(b * c + k) * p + q] > 0.5
                        if isPred { predicted += 1 }
                        if isTrue { truth += 1 }
                        if isPred && isTrue { inter += 1 }
                    }
                    diceSum[k] += Self.dice(intersection: inter, predicted: predicted, truth: truth)
                    jaccardSum[k] += Self.jaccard(intersection: inter, predicted: predicted, truth: truth)
                }
            }
        } }
        images += n
    }

    @inline(__always)
    static func predicts(_ l: UnsafePointer<Float>, class k: Int, pixel q: Int, classes c: Int, pixels p: Int,
                         rule: PredictionRule) -> Bool {
        switch rule {
        case .sigmoidThreshold: return l[k * p + q] > 0
        case .argmax:
            let mine = l[k * p + q]
            for j in 0..<c where j != k {
                let other = l[j * p + q]
                if other > mine || (other == mine && j < k) { return false }
            }
            return true
        }
    }

    /// Adds another shard's sums (evaluation split over workers or ranks).
    public mutating func merge(_ other: SegmentationScores) {
        for k in 0..<classes { diceSum[k] += other.diceSum[k]; jaccardSum[k] += other.jaccardSum[k] }
        images += other.images
    }

    public var dice: [Double] { diceSum.map { $0 / Double(max(images, 1)) } }
    public var jaccard: [Double] { jaccardSum.map { $0 / Double(max(images, 1)) } }
    /// The headline numbers: means over the foreground classes (all but class 0).
    public var foregroundDice: Double { dice.dropFirst().reduce(0, +) / Double(max(classes - 1, 1)) }
    public var foregroundJaccard: Double { jaccard.dropFirst().reduce(0, +) / Double(max(classes - 1, 1)) }
}
