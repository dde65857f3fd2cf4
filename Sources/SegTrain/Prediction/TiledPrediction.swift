import SegCore
import SegData
import SegNN

/// Sliding-window prediction for images too large for one forward pass: windows of one size,
/// overlapping, run in batches; each window's probabilities are blended with a weight that falls
/// off linearly over the overlap (window centres count most, so seams vanish), and the classes
/// come from the blended probabilities. Memory: the windows of one batch plus the image's
/// probabilities, whatever the image size.
public struct TilePlan: Equatable, Sendable {
    public let tileHeight: Int, tileWidth: Int, overlap: Int, batch: Int
    /// Top-left corners of the windows, row by row; the last window of a row or column is
    /// moved back to end at the image's edge.
    public let origins: [(y: Int, x: Int)]

    public static func == (a: TilePlan, b: TilePlan) -> Bool {
        a.tileHeight == b.tileHeight && a.tileWidth == b.tileWidth && a.overlap == b.overlap && a.batch == b.batch
            && a.origins.map { [$0.y, $0.x] } == b.origins.map { [$0.y, $0.x] }
    }

    public init(height: Int, width: Int, tile: Int, overlap: Int, batch: Int) {
        let overlap = max(0, min(overlap, tile / 2))
        tileHeight = min(tile, height); tileWidth = min(tile, width)
        self.overlap = overlap; self.batch = max(1, batch)
        func starts(_ length: Int, _ window: Int) -> [Int] {
            guard length > window else { return [0] }
            var s = Array(stride(from: 0, to: length - window, by: max(1, window - overlap)))
            if s.last != length - window { s.append(length - window) }
            return s
        }
        let ys = starts(height, tileHeight), xs = starts(width, tileWidth)
        origins = ys.flatMap { y in xs.map { x in (y, x) } }
    }
}

extension Predictor {
    /// Predicts a (1, C, H, W) image window by window (see `TilePlan`); `progress` hears
    /// (windows done, windows in all).
    public static func predictTiled(model: SegmentationModel, input: Tensor, activation: OutputActivation, plan: TilePlan,
                                    progress: ((Int, Int) -> Void)? = nil) -> Prediction {
        let backend = model.store.backend
        let (_, c, h, w) = input.nchw
        let (th, tw) = (plan.tileHeight, plan.tileWidth)
        let k = model.classes
        var sum = [Float](repeating: 0, count: k * h * w), weights = [Float](repeating: 0, count: h * w)
        // window weight: 1 inside, falling linearly to a small positive value over the overlap
        func ramp(_ i: Int, _ n: Int) -> Float {
            guard plan.overlap > 0 else { return 1 }
            return min(1, (Float(i) + 0.5) / Float(plan.overlap), (Float(n - i) - 0.5) / Float(plan.overlap))
        }
        let rampY = (0..<th).map { ramp($0, th) }, rampX = (0..<tw).map { ramp($0, tw) }
        let pixels = input.storage
        var done = 0
        for first in stride(from: 0, to: plan.origins.count, by: plan.batch) {
            let group = Array(plan.origins[first..<min(plan.origins.count, first + plan.batch)])
            var windows = [Float](repeating: 0, count: group.count * c * th * tw)
            for (b, o) in group.enumerated() {
                for ch in 0..<c { for y in 0..<th {
                    let src = (ch * h + o.y + y) * w + o.x, dst = ((b * c + ch) * th + y) * tw
                    windows.replaceSubrange(dst..<(dst + tw), with: pixels[src..<(src + tw)])
                } }
            }
            let logits = model.forward(backend.upload(Tensor(shape: [group.count, c, th, tw], storage: windows)), .inference(backend: backend))
            let probabilities = backend.download(backend.activate(logits, activation)).storage
            for (b, o) in group.enumerated() {
                for y in 0..<th {
                    for x in 0..<tw {
                        let weight = rampY[y] * rampX[x], p = (o.y + y) * w + o.x + x
                        weights[p] += weight
                        for kk in 0..<k { sum[kk * h * w + p] += weight * probabilities[((b * k + kk) * th + y) * tw + x] }
                    }
                }
            }
            done += group.count
            progress?(done, plan.origins.count)
        }
        for kk in 0..<k { for p in 0..<(h * w) { sum[kk * h * w + p] /= weights[p] } }
        let blended = Tensor(shape: [k, h, w], storage: sum)
        return Prediction(probabilities: blended, classes: decideClasses(sum, classes: k))
    }
}

extension MemoryEstimate {
    /// A tiled prediction: one batch of windows, plus the image's probabilities and blend.
    public static func tiledPrediction(model: SegmentationModel, architecture: ModelArchitecture, height: Int, width: Int,
                                       plan: TilePlan) -> MemoryEstimate {
        var window = prediction(model: model, architecture: architecture, height: plan.tileHeight, width: plan.tileWidth)
        let windowOutputs = model.classes * plan.tileHeight * plan.tileWidth * 4 * 2 + plan.tileHeight * plan.tileWidth * 16
        window.activationBytes = (window.activationBytes - windowOutputs) * plan.batch
        window.activationBytes += (model.classes + 1) * height * width * 4 * 3 + height * width * (model.inputChannels * 4 + 16)
        return window
    }
}
