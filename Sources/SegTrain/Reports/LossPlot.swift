import Foundation
import SegData

/// Round tick values for an axis from 0 to at least `maximum`: steps of 1, 2 or 5 x 10^k,
/// about `count` of them. Returns the step and the axis end (a multiple of the step).
func niceTicks(_ maximum: Double, count: Int = 5) -> (step: Double, end: Double) {
    let raw = max(maximum, 1e-12) / Double(count)
    let magnitude = pow(10, floor(log10(raw)))
    let norm = raw / magnitude
    let step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * magnitude
    return (step, ceil(maximum / step - 1e-9) * step)
}

/// A tick label without trailing noise: 0.25, 3, 1500.
func tickLabel(_ v: Double, step: Double) -> String {
    let decimals = max(0, Int(-floor(log10(step))))
    return String(format: "%.\(min(decimals, 6))f", v)
}

/// The palette of the per-class Dice lines (class 1, 2, ...).
private let classColors: [(UInt8, UInt8, UInt8)] = [(190, 40, 40), (30, 140, 60), (150, 60, 170), (220, 130, 0), (0, 140, 160), (120, 90, 40)]

/// Draws the training loss (blue, left axis) and the validation Dice (right axis, 0 to 1) against
/// the step, on round tick values with labelled axes: the foreground mean, and with more than
/// one foreground class each class's Dice as its own line.
public func drawLossCurve(losses: [(step: Int, loss: Double)], dice: [(step: Int, dice: Double)],
                          classDice: [(step: Int, dice: [Double])] = [], totalSteps: Int) -> PNGImage {
    let w = 760, h = 440, left = 80, right = 70, top = 50, bottom = 60
    var c = Canvas(width: w, height: h)
    let pw = w - left - right, ph = h - top - bottom
    let steps = niceTicks(Double(max(totalSteps, losses.last?.step ?? 1, 1)))
    let loss = niceTicks(max(losses.map(\.loss).filter(\.isFinite).max() ?? 1, 1e-6), count: 4)
    func px(_ step: Double) -> Int { left + Int(Double(pw) * step / steps.end) }
    func py(_ v: Double, _ end: Double) -> Int { top + ph - Int(Double(ph) * min(max(v / end, 0), 1)) }
    let blue: (UInt8, UInt8, UInt8) = (40, 70, 180), red: (UInt8, UInt8, UInt8) = (190, 40, 40)
    // horizontal grid on the loss ticks, labels on both axes
    var v = 0.0
    while v <= loss.end + loss.step / 2 {
        let y = py(v, loss.end)
        c.line(left, y, left + pw, y, color: (225, 225, 225))
        let label = tickLabel(v, step: loss.step)
        c.text(label, x: left - 10 - 8 * label.count, y: y - 5, color: blue)
        let d = v / loss.end
        c.text(String(format: "%.2f", d), x: left + pw + 8, y: y - 5, color: red)
        v += loss.step
    }
    var s = 0.0
    while s <= steps.end + steps.step / 2 {
        let x = px(s)
        c.line(x, top + ph, x, top + ph + 5, color: (0, 0, 0))
        let label = tickLabel(s, step: steps.step)
        c.text(label, x: x - 4 * label.count, y: top + ph + 10)
        s += steps.step
    }
    c.line(left, top, left, top + ph, color: (0, 0, 0), thickness: 2)
    c.line(left, top + ph, left + pw, top + ph, color: (0, 0, 0), thickness: 2)
    c.line(left + pw, top, left + pw, top + ph, color: (0, 0, 0), thickness: 1)
    c.text("OPTIMIZER STEP", x: left + pw / 2 - 56, y: h - 22)
    c.text("TRAINING LOSS", x: left - 60, y: 16, color: blue)
    c.text("VALIDATION DICE", x: left + pw - 60, y: 16, color: red)
    for (a, b) in zip(losses, losses.dropFirst()) where a.loss.isFinite && b.loss.isFinite {
        c.line(px(Double(a.step)), py(a.loss, loss.end), px(Double(b.step)), py(b.loss, loss.end), color: blue, thickness: 2)
    }
    // per-class Dice (thin, coloured by class) when there is more than one foreground class
    let perClass = (classDice.first?.dice.count ?? 0) > 2
    if perClass {
        let k = classDice[0].dice.count
        for cls in 1..<k {
            let color = classColors[(cls - 1) % classColors.count]
            for (a, b) in zip(classDice, classDice.dropFirst()) where a.dice.count == k && b.dice.count == k {
                c.line(px(Double(a.step)), py(a.dice[cls], 1), px(Double(b.step)), py(b.dice[cls], 1), color: color)
            }
            c.text("CLASS \(cls)", x: left + 10 + (cls - 1) * 90, y: top - 16, color: color)
        }
    }
    // the foreground mean: red, or black among the class lines
    let mean: (UInt8, UInt8, UInt8) = perClass ? (0, 0, 0) : red
    for (a, b) in zip(dice, dice.dropFirst()) {
        c.line(px(Double(a.step)), py(a.dice, 1), px(Double(b.step)), py(b.dice, 1), color: mean, thickness: 2)
    }
    for d in dice { c.fill(x: px(Double(d.step)) - 3, y: py(d.dice, 1) - 3, w: 7, h: 7, color: mean) }
    if perClass { c.text("MEAN", x: left + pw - 60, y: top - 16) }
    return c.image
}
