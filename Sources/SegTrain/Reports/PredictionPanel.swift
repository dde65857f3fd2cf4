import SegData

/// Input, ground truth (when given), heat map of the foreground probability, predicted
/// foreground — side by side with titles, as the lab draws them.
/// `predicted` is 1 where mask.png has a foreground class, so the two agree pixel for pixel.
public func drawPredictionPanel(input: PNGImage, truth: PNGImage?, foreground: [Float], predicted: [Int32]) -> PNGImage {
    let w = input.width, h = input.height, n = w * h, gap = 10, title = 24
    var tiles: [(String, PNGImage)] = [("INPUT", input)]
    if let truth { tiles.append(("TRUTH", truth)) }
    var heat = [UInt8](repeating: 0, count: n * 3), thresholded = [UInt8](repeating: 0, count: n)
    for p in 0..<n {
        let fg = foreground[p]
        let c = heatColor(fg)
        heat[p * 3] = c.0; heat[p * 3 + 1] = c.1; heat[p * 3 + 2] = c.2
        thresholded[p] = predicted[p] != 0 ? 255 : 0
    }
    tiles.append(("PROBABILITY", PNGImage(width: w, height: h, channels: 3, pixels: heat)))
    tiles.append(("PREDICTION", PNGImage(width: w, height: h, channels: 1, pixels: thresholded)))
    let column = max(w, 96)   // room for the longest title
    let scale = 64             // the heat map's colour scale, at the right
    let height = max(h, 60) + title + gap
    var canvas = Canvas(width: tiles.count * (column + gap) + gap + scale, height: height)
    for (i, (name, tile)) in tiles.enumerated() {
        let x = gap + i * (column + gap)
        canvas.text(name, x: x, y: 6)
        canvas.blit(tile, x: x, y: title)
    }
    // colour scale: probability 1 at the top, 0 at the bottom, labelled
    let barX = tiles.count * (column + gap) + gap, barHeight = max(h, 60)
    for y in 0..<barHeight {
        canvas.fill(x: barX, y: title + y, w: 14, h: 1, color: heatColor(1 - Float(y) / Float(max(barHeight - 1, 1))))
    }
    canvas.text("1", x: barX + 20, y: title)
    canvas.text("0.5", x: barX + 20, y: title + barHeight / 2 - 5)
    canvas.text("0", x: barX + 20, y: title + barHeight - 10)
    canvas.text("P", x: barX + 2, y: 6)
    return canvas.image
}
