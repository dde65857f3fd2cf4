/// Measurements over a dataset's training samples (epoch 0, as the files are, no augmentation).
public enum DatasetStatistics {
    /// Per-channel mean and (population) standard deviation of the training images.
    public static func channelMeanAndStd(_ data: SegmentationDataset) -> (mean: [Float], std: [Float]) {
        let c = data.channels
        var sum = [Double](repeating: 0, count: c), squares = sum
        var count = 0
        for i in 0..<data.trainingCount {
            let s = data.trainingSample(epoch: 0, index: i)
            let n = s.height * s.width
            for k in 0..<c {
                var a = 0.0, b = 0.0
                for v in s.image[(k * n)..<((k + 1) * n)] { a += Double(v); b += Double(v) * Double(v) }
                sum[k] += a; squares[k] += b
            }
            count += n
        }
        let mean = sum.map { $0 / Double(max(count, 1)) }
        let std = zip(squares, mean).map { (max(0, $0 / Double(max(count, 1)) - $1 * $1)).squareRoot() }
        return (mean.map { Float($0) }, std.map { Float($0) })
    }

    /// Labelled pixels per class over the training masks (ignored pixels not counted).
    public static func classPixels(_ data: SegmentationDataset) -> [Int] {
        var counts = [Int](repeating: 0, count: max(data.classes, 2))
        for i in 0..<data.trainingCount {
            for label in data.trainingSample(epoch: 0, index: i).labels where label != Sample.ignored && Int(label) < counts.count {
                counts[Int(label)] += 1
            }
        }
        return counts
    }
}
