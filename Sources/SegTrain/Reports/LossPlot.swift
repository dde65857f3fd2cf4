import Foundation
import SegData

/// Draws the training loss (blue, left scale) and the validation foreground Dice (red, 0 to 1
/// on the right scale) against the step.
public func drawLossCurve(losses: [(step: Int, loss: Double)], dice: [(step: Int, dice: Double)], totalSteps: Int) -> PNGImage {
    let w = 720, h = 420, left = 70, right = 60, top = 40, bottom = 50
    var c = Canvas(width: w, height: h)
    let pw = w - left - right, ph = h - top - bottom
    let maxStep = max(totalSteps, losses.last?.step ?? 1, 1)
    let maxLoss = max(losses.map(\.loss).filter(\.isFinite).max() ?? 1, 1e-6) * 1.05
    func px(_ step: Int) -> Int { left + Int(Double(pw) * Double(step) / Double(maxStep)) }
    func py(_ v: Double, _ top_: Double) -> Int { top + ph - Int(Double(ph) * min(max(v / top_, 0), 1)) }
    // grid and axes
    for i in 0...4 {
        let y = top + ph * i / 4
        c.line(left, y, left + pw, y, color: (225, 225, 225))
        c.text(String(format: "%.3f", maxLoss * Double(4 - i) / 4), x: 4, y: y - 5, color: (40, 70, 180))
        c.text(String(format: "%.2f", Double(4 - i) / 4), x: left + pw + 8, y: y - 5, color: (190, 40, 40))
    }
    c.line(left, top, left, top + ph, color: (0, 0, 0), thickness: 2)
    c.line(left, top + ph, left + pw, top + ph, color: (0, 0, 0), thickness: 2)
    for i in 0...4 {
        let s = maxStep * i / 4
        c.text("\(s)", x: px(s) - 8, y: top + ph + 10)
    }
    c.text("STEP", x: left + pw / 2 - 16, y: h - 18)
    c.text("LOSS", x: left, y: 12, color: (40, 70, 180))
    c.text("VAL DICE", x: left + pw - 64, y: 12, color: (190, 40, 40))
    for (a, b) in zip(losses, losses.dropFirst()) where a.loss.isFinite && b.loss.isFinite {
        c.line(px(a.step), py(a.loss, maxLoss), px(b.step), py(b.loss, maxLoss), color: (40, 70, 180), thickness: 2)
    }
    for (a, b) in zip(dice, dice.dropFirst()) { c.line(px(a.step), py(a.dice, 1), px(b.step), py(b.dice, 1), color: (190, 40, 40), thickness: 2) }
    for d in dice { c.fill(x: px(d.step) - 3, y: py(d.dice, 1) - 3, w: 7, h: 7, color: (190, 40, 40)) }
    return c.image
}
