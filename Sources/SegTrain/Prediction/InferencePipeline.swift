import Foundation
import SegCore
import SegData
import SegNN

/// The one path from an image to probabilities and classes. Validation during training,
/// `segdist eval` and `segdist predict` all run it, so the Dice that training reports is the Dice
/// of the masks that `predict` writes:
///
/// pixels scaled to [0, 1] as in training (`InputScaling`) -> resized for the model (`resize`)
/// -> normalised -> padded up to the model's smallest input -> each model of the ensemble on
/// each mirrored copy (`tta: flip`), whole or in blended windows when the image would not fit
/// in memory -> softmax or sigmoid as the loss decides -> mean -> the padding cropped and the
/// probabilities resized back to the image's own size -> classes by one rule (`decideClasses`).
public final class InferencePipeline {
    public let models: [SegmentationModel]
    public let architecture: ModelArchitecture
    public let channels: Int, classes: Int
    public let scaling: InputScaling
    public let normalization: Normalization?
    public let resize: ResizeRule
    public let activation: OutputActivation
    public let flips: Bool
    /// Window side for tiled prediction: 0 = the whole image whenever it fits in memory.
    public var tile = 0
    /// Overlap of neighbouring windows (nil: a quarter of the window).
    public var overlap: Int?
    /// Windows per forward pass.
    public var windowBatch = 4
    /// The window side used when an image does not fit whole.
    public var defaultWindow: Int
    /// Hears (image size, windows done, windows in all) during tiled prediction.
    public var progress: ((Int, Int, Int, Int) -> Void)?
    private var estimates: [ImageSize: MemoryEstimate] = [:]

    public init(config: TrainingConfig, models: [SegmentationModel]) {
        precondition(!models.isEmpty, "An inference pipeline needs a model")
        self.models = models
        architecture = config.model
        channels = config.inChannels; classes = models[0].classes
        scaling = config.inputScaling
        normalization = config.normalization
        resize = config.resize
        activation = config.loss.outputActivation
        flips = config.ttaFlip
        let unit = 1 << config.model.downsamplings
        let trained = config.augmentation.crop ?? config.resize.fixedSize.map { max($0.height, $0.width) } ?? config.imageSize
        defaultWindow = max(unit, max(trained, 256) / unit * unit)
    }

    /// What this pipeline does, in one line.
    public var summary: String {
        var parts = ["inputs \(scaling == .minMax ? "min-max stretched" : "/ 255")"]
        if let normalization { parts.append("normalised (mean \(normalization.mean), std \(normalization.std))") }
        parts.append(resize == .none ? "at their own size" : "resized to \(resize.text) and back")
        parts.append(activation.rawValue)
        if flips { parts.append("mean of 4 mirrorings") }
        if models.count > 1 { parts.append("mean of \(models.count) models") }
        return parts.joined(separator: ", ")
    }

    /// An image file's pixels as training saw them: (channels, H, W), scaled.
    public func pixels(of file: ImageFile) -> [Float] { scaling.planes(of: file, channels: channels) }

    /// The model's answer for one scaled image (channels, H, W) at its own size.
    public func predict(_ image: [Float], height: Int, width: Int) throws -> Prediction {
        try predict([image], height: height, width: width)[0]
    }

    /// The size an image of `height` x `width` is resized to (`resized`) and then padded to
    /// (`padded`: at least the model's smallest input) before the model sees it.
    func modelSize(height: Int, width: Int) -> (resized: (h: Int, w: Int), padded: (h: Int, w: Int)) {
        let (mh, mw) = resize.size(height: height, width: width)
        let unit = 1 << architecture.downsamplings
        return ((mh, mw), (max(mh, unit), max(mw, unit)))
    }

    /// The model's answers for scaled images of one size, each (channels, H, W), at that size.
    public func predict(_ images: [[Float]], height: Int, width: Int) throws -> [Prediction] {
        let size = modelSize(height: height, width: width)
        let (mh, mw) = size.resized, (ph, pw) = size.padded
        let inputs: [[Float]] = images.map { image in
            precondition(image.count == channels * height * width, "An image of \(channels)x\(height)x\(width) needs matching pixels")
            var x = resizedPlanes(image, planes: channels, height: height, width: width, toHeight: mh, toWidth: mw)
            normalization?.apply(to: &x, channels: channels)
            return topLeft(x, planes: channels, height: mh, width: mw, toHeight: ph, toWidth: pw)
        }
        let mirrorings: [(horizontal: Bool, vertical: Bool)] = flips ? [(false, false), (true, false), (false, true), (true, true)]
                                                                     : [(false, false)]
        let k = classes
        // the first pass's probabilities start the sums (the same as 0 + p: none is -0)
        var sums: [[Float]] = []
        for model in models {
            for m in mirrorings {
                let batch = inputs.map { mirrored($0, planes: channels, height: ph, width: pw, m.horizontal, m.vertical) }
                let outputs = try probabilities(model, batch, height: ph, width: pw)
                for i in outputs.indices {
                    let back = mirrored(outputs[i], planes: k, height: ph, width: pw, m.horizontal, m.vertical)
                    guard i < sums.count else { sums.append(back); continue }
                    sums[i].withUnsafeMutableBufferPointer { s in back.withUnsafeBufferPointer { b in
                        for j in 0..<s.count { s[j] += b[j] }
                    } }
                }
            }
        }
        let passes = models.count * mirrorings.count
        return sums.map { sum in
            var p = sum
            if passes > 1 { let scale = 1 / Float(passes); for j in p.indices { p[j] *= scale } }
            p = topLeft(p, planes: k, height: ph, width: pw, toHeight: mh, toWidth: mw)
            p = resizedPlanes(p, planes: k, height: mh, width: mw, toHeight: height, toWidth: width)
            return Prediction(probabilities: Tensor(shape: [k, height, width], storage: p), classes: decideClasses(p, classes: k))
        }
    }

    /// What one image of this size needs in memory: whole, or in windows.
    public func memory(height: Int, width: Int) -> (estimate: MemoryEstimate, plan: TilePlan?) {
        memoryAtModelSize(modelSize(height: height, width: width).padded)
    }

    /// `memory` for an input already at the model's size.
    private func memoryAtModelSize(_ size: (h: Int, w: Int)) -> (estimate: MemoryEstimate, plan: TilePlan?) {
        let (ph, pw) = size, unit = 1 << architecture.downsamplings
        let whole = wholeEstimate(ph, pw)
        let fits = whole.totalBytes <= min(MemoryEstimate.availableBytes ?? Int.max, 4 << 30)
        guard tile > 0 || !fits else { return (whole, nil) }
        let side = max(unit, (tile > 0 ? tile : defaultWindow) / unit * unit)
        let plan = TilePlan(height: ph, width: pw, tile: side, overlap: overlap ?? side / 4, batch: windowBatch)
        return (MemoryEstimate.tiledPrediction(model: models[0], architecture: architecture, height: ph, width: pw, plan: plan), plan)
    }

    private func wholeEstimate(_ h: Int, _ w: Int) -> MemoryEstimate {
        let key = ImageSize(height: h, width: w)
        if let known = estimates[key] { return known }
        let e = MemoryEstimate.prediction(model: models[0], architecture: architecture, height: h, width: w)
        estimates[key] = e
        return e
    }

    /// Probabilities (classes, h, w) of each input, on the model's backend: the inputs in as
    /// few whole passes as fit in memory, or each image in windows.
    private func probabilities(_ model: SegmentationModel, _ inputs: [[Float]], height h: Int, width w: Int) throws -> [[Float]] {
        let (estimate, plan) = memoryAtModelSize((h, w))
        if let available = MemoryEstimate.availableBytes, estimate.totalBytes > available {
            throw TrainingError(String(format: "predicting it needs %@ (%dx%d as the model sees it), but %.2f GB is available; use smaller windows (--tile, --batch) or downscale it", estimate.summary, w, h, Double(available) / 1e9))
        }
        let backend = model.store.backend
        if let plan {
            let out = inputs.map { x in
                Predictor.predictTiled(model: model, input: Tensor(shape: [1, channels, h, w], storage: x), activation: activation,
                                       plan: plan) { done, all in self.progress?(h, w, done, all) }.probabilities.storage
            }
            try backend.checkHealthy()   // a GPU failure ends the work here, never as a garbage mask
            return out
        }
        let limit = min(MemoryEstimate.availableBytes ?? Int.max, 4 << 30)
        let perPass = max(1, min(inputs.count, (limit - estimate.modelBytes) / max(1, estimate.activationBytes + estimate.scratchBytes)))
        var out: [[Float]] = []
        let n = h * w
        for first in stride(from: 0, to: inputs.count, by: perPass) {
            let group = inputs[first..<min(inputs.count, first + perPass)]
            let x = Tensor(shape: [group.count, channels, h, w], storage: group.count == 1 ? group.first! : Array(group.joined()))
            let logits = model.forward(backend.upload(x), .inference(backend: backend))
            let p = backend.download(backend.activate(logits, activation)).storage
            if group.count == 1 { out.append(p); continue }
            for b in 0..<group.count { out.append(Array(p[(b * classes * n)..<((b + 1) * classes * n)])) }
        }
        try backend.checkHealthy()
        return out
    }
}

/// The class of each pixel from (classes, H, W) probabilities — the one rule, whatever the loss:
/// with one channel, 1 where its probability is above 0.5; with several, the most probable
/// class (the first on ties).
public func decideClasses(_ p: [Float], classes k: Int) -> [Int32] {
    let n = p.count / max(k, 1)
    guard k > 1 else { return p.map { $0 > 0.5 ? 1 : 0 } }
    var out = [Int32](repeating: 0, count: n)
    p.withUnsafeBufferPointer { p in out.withUnsafeMutableBufferPointer { o in
        argmaxChannels(p.baseAddress!, o.baseAddress!, batch: 1, classes: k, pixels: n)
    } }
    return out
}

/// (planes, oh, ow) values whose top-left part is that of (planes, h, w) `x`, zeros elsewhere:
/// pads when the new size is larger, crops when it is smaller.
func topLeft(_ x: [Float], planes: Int, height h: Int, width w: Int, toHeight oh: Int, toWidth ow: Int) -> [Float] {
    guard oh != h || ow != w else { return x }
    var out = [Float](repeating: 0, count: planes * oh * ow)
    let (rows, cols) = (min(h, oh), min(w, ow))
    for c in 0..<planes { for y in 0..<rows {
        out.replaceSubrange(((c * oh + y) * ow)..<((c * oh + y) * ow + cols), with: x[((c * h + y) * w)..<((c * h + y) * w + cols)])
    } }
    return out
}

/// (planes, h, w) values mirrored left-right and/or upside down (its own inverse).
func mirrored(_ x: [Float], planes: Int, height h: Int, width w: Int, _ horizontal: Bool, _ vertical: Bool) -> [Float] {
    guard horizontal || vertical else { return x }
    var out = x
    x.withUnsafeBufferPointer { src in out.withUnsafeMutableBufferPointer { dst in
        for c in 0..<planes { for y in 0..<h {
            let sy = vertical ? h - 1 - y : y
            for xx in 0..<w { dst[(c * h + y) * w + xx] = src[(c * h + sy) * w + (horizontal ? w - 1 - xx : xx)] }
        } }
    } }
    return out
}
