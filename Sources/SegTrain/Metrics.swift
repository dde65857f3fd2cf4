import SegCore
import SegData

/// Per-class Dice and Jaccard with the lab's smoothing, (2|A∩B| + 1e-4) / (|A| + |B| + 1e-4) and
/// (|A∩B| + 1e-4) / (|A∪B| + 1e-4), so two empty masks score 1; averaged over images. The
/// pooled Dice takes the pixel counts of all images together (what PyTorch reference scripts
/// such as torch_train.py print), which weighs images by their foreground.
/// The predicted classes are those of `decideClasses` (the classes `predict` writes); ignored
/// pixels count nowhere.
public struct SegmentationScores: Equatable, Sendable {
    public let classes: Int
    /// Sums over images of the per-image scores, per class.
    public private(set) var diceSum: [Double]
    public private(set) var jaccardSum: [Double]
    public private(set) var images = 0
    /// Per class, summed over images: |A∩B|, |A|, |B| (pixels).
    public private(set) var pixelCounts: [Double]

    public init(classes: Int) {
        self.classes = classes
        diceSum = .init(repeating: 0, count: classes); jaccardSum = .init(repeating: 0, count: classes)
        pixelCounts = .init(repeating: 0, count: 3 * classes)
    }

    /// Scores from sums gathered elsewhere (e.g. reduced over ranks).
    public init(classes: Int, diceSum: [Double], jaccardSum: [Double], images: Int, pixelCounts: [Double]? = nil) {
        self.classes = classes; self.diceSum = diceSum; self.jaccardSum = jaccardSum; self.images = images
        self.pixelCounts = pixelCounts ?? .init(repeating: 0, count: 3 * classes)
    }

    /// Every sum as one array (to add over ranks) and back.
    public var sums: [Double] { diceSum + jaccardSum + pixelCounts + [Double(images)] }
    public init(classes k: Int, sums: [Double]) {
        self.init(classes: k, diceSum: Array(sums[0..<k]), jaccardSum: Array(sums[k..<(2 * k)]), images: Int(sums[5 * k]),
                  pixelCounts: Array(sums[(2 * k)..<(5 * k)]))
    }

    public static let smooth = 1e-4

    public static func dice(intersection: Int, predicted: Int, truth: Int) -> Double {
        (2 * Double(intersection) + smooth) / (Double(predicted + truth) + smooth)
    }

    public static func jaccard(intersection: Int, predicted: Int, truth: Int) -> Double {
        (Double(intersection) + smooth) / (Double(predicted + truth - intersection) + smooth)
    }

    /// Adds one image: its predicted classes and its mask's labels (`Sample.ignored` where
    /// unlabelled), pixel by pixel at the mask's own resolution. With one class the foreground is
    /// class 1 against labels other than 0.
    public mutating func add(predicted: [Int32], labels: [UInt8]) {
        precondition(predicted.count == labels.count, "A prediction of \(predicted.count) pixels scored against a mask of \(labels.count)")
        var counts = [Int](repeating: 0, count: 3 * classes)
        let single = classes == 1
        for q in 0..<labels.count where labels[q] != Sample.ignored {
            let truth = single ? (labels[q] != 0 ? 0 : -1) : Int(labels[q])
            let guess = single ? (predicted[q] != 0 ? 0 : -1) : Int(predicted[q])
            if truth >= 0 && truth < classes { counts[3 * truth + 2] += 1 }
            if guess >= 0 { counts[3 * guess + 1] += 1 }
            if guess >= 0 && guess == truth { counts[3 * guess] += 1 }
        }
        for k in 0..<classes {
            diceSum[k] += Self.dice(intersection: counts[3 * k], predicted: counts[3 * k + 1], truth: counts[3 * k + 2])
            jaccardSum[k] += Self.jaccard(intersection: counts[3 * k], predicted: counts[3 * k + 1], truth: counts[3 * k + 2])
            for j in 0..<3 { pixelCounts[3 * k + j] += Double(counts[3 * k + j]) }
        }
        images += 1
    }

    /// Adds every image of a batch: logits and one-hot targets (N, classes, H, W) on `backend`,
    /// which counts the pixels; only the counts come to the host.
    public mutating func add(logits: Tensor, targets: Tensor, activation: OutputActivation,
                             backend: Backend = CPUBackend.shared) {
        let (n, c, _, _) = logits.nchw
        precondition(c == classes && targets.shape == logits.shape, "Scores expect \(classes) classes and matching targets")
        let counts = backend.overlapCounts(logits: logits, targets: targets, activation: activation)
        for b in 0..<n {
            for k in 0..<c {
                let i = 3 * (b * c + k)
                diceSum[k] += Self.dice(intersection: counts[i], predicted: counts[i + 1], truth: counts[i + 2])
                jaccardSum[k] += Self.jaccard(intersection: counts[i], predicted: counts[i + 1], truth: counts[i + 2])
                for j in 0..<3 { pixelCounts[3 * k + j] += Double(counts[i + j]) }
            }
        }
        images += n
    }

    /// Adds another shard's sums (evaluation split over workers or ranks).
    public mutating func merge(_ other: SegmentationScores) {
        for k in 0..<classes { diceSum[k] += other.diceSum[k]; jaccardSum[k] += other.jaccardSum[k] }
        for j in pixelCounts.indices { pixelCounts[j] += other.pixelCounts[j] }
        images += other.images
    }

    /// Per class [|A∩B|, |A| (predicted), |B| (truth)] in pixels over all images: what two
    /// evaluations that count the same pixels agree on exactly.
    public var classPixelCounts: [[Int]] { (0..<classes).map { k in (0..<3).map { Int(pixelCounts[3 * k + $0]) } } }

    public var dice: [Double] { diceSum.map { $0 / Double(max(images, 1)) } }
    public var jaccard: [Double] { jaccardSum.map { $0 / Double(max(images, 1)) } }
    /// The headline numbers: means over the foreground classes (all but class 0); with a single
    /// channel, that channel is the foreground.
    public var foregroundDice: Double { classes == 1 ? dice[0] : dice.dropFirst().reduce(0, +) / Double(classes - 1) }
    /// Dice per class over the pixels of all images together.
    public var pooledDice: [Double] {
        (0..<classes).map { k in
            (2 * pixelCounts[3 * k] + Self.smooth) / (pixelCounts[3 * k + 1] + pixelCounts[3 * k + 2] + Self.smooth)
        }
    }
    public var pooledForegroundDice: Double {
        classes == 1 ? pooledDice[0] : pooledDice.dropFirst().reduce(0, +) / Double(classes - 1)
    }
    public var foregroundJaccard: Double { classes == 1 ? jaccard[0] : jaccard.dropFirst().reduce(0, +) / Double(classes - 1) }
}
