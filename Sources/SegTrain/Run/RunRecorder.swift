import Foundation
import SegCore
import SegData

/// Rank 0's record of a run in its directory: `metrics.jsonl` (one JSON line per logged step and
/// per evaluation), TensorBoard events when asked for, and `loss.png`. Records are worth less
/// than the run: a failed write warns once and training goes on.
final class RunRecorder {
    let directory: String
    let tensorboard: Bool
    private(set) var losses: [(step: Int, loss: Double)] = []
    private(set) var dice: [(step: Int, dice: Double)] = []
    private(set) var classDice: [(step: Int, dice: [Double])] = []
    private var events: TensorBoardWriter?
    private var eventsFailed = false
    private var warned: Set<String> = []

    init(directory: String, tensorboard: Bool) { self.directory = directory; self.tensorboard = tensorboard }

    var metricsPath: String { directory + "/metrics.jsonl" }

    /// A new run starts with no metrics; a resumed one keeps the lines up to its step (read from
    /// `source`, its parent's file for a branch) and the curves they hold.
    func restore(upTo step: Int, from source: String) throws {
        guard step > 0, let text = try? String(contentsOfFile: source, encoding: .utf8) else {
            if step == 0 { try? FileManager.default.removeItem(atPath: metricsPath) }
            return
        }
        var kept: [String] = []
        for line in text.split(separator: "\n") {
            guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let s = obj["step"] as? Int, s <= step else { continue }
            kept.append(String(line))
            if obj["kind"] as? String == "train", let l = obj["loss"] as? Double { losses.append((s, l)) }
            if obj["kind"] as? String == "eval", let d = obj["foreground_dice"] as? Double { dice.append((s, d)) }
            if obj["kind"] as? String == "eval", let d = obj["dice"] as? [Double] { classDice.append((s, d)) }
        }
        try writeFileAtomically(Data((kept.joined(separator: "\n") + (kept.isEmpty ? "" : "\n")).utf8), to: metricsPath)
    }

    /// Every step's loss goes into the curve; logged steps into the metrics and events too.
    func trainingStep(_ step: Int, loss: Double, logged: Bool, record: @autoclosure () -> [String: Any],
                      scalars: @autoclosure () -> [(String, Double)]) throws {
        losses.append((step, loss))
        guard logged else { return }
        try append(record())
        logEvents { try $0.scalars(scalars(), step: step) }
    }

    /// An evaluation: its metrics line, its scalars and prediction panel, and the curves.
    func evaluation(_ step: Int, scores: SegmentationScores, record: [String: Any], panel: () throws -> PNGImage,
                    totalSteps: Int) throws {
        dice.append((step, scores.foregroundDice))
        classDice.append((step, scores.dice))
        try append(record)
        logEvents { events in
            var values = [("val/dice", scores.foregroundDice), ("val/jaccard", scores.foregroundJaccard)]
            for k in 0..<scores.classes { values += [("val/dice_class_\(k)", scores.dice[k]), ("val/jaccard_class_\(k)", scores.jaccard[k])] }
            try events.scalars(values, step: step)
            try events.image("val/prediction", try panel(), step: step)
        }
    }

    /// `loss.png`: the training loss and the validation Dice (per class when there are several).
    func drawCurves(totalSteps: Int) {
        let path = directory + "/loss.png"
        do { try drawLossCurve(losses: losses, dice: dice, classDice: classDice, totalSteps: totalSteps).write(to: path) } catch {
            warnOnce(path, "cannot write \(path) (\(error)); training goes on")
        }
    }

    /// Appends one JSON line; a failed write (a full disk) takes back the partial line, warns
    /// once and training goes on.
    func append(_ record: [String: Any]) throws {
        var line = try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys])
        line.append(0x0A)
        do {
            if !FileManager.default.fileExists(atPath: metricsPath) {
                guard FileManager.default.createFile(atPath: metricsPath, contents: nil) else {
                    throw TrainingError(String(cString: strerror(errno)))
                }
            }
            guard let h = FileHandle(forWritingAtPath: metricsPath) else { throw TrainingError("it cannot be opened for writing") }
            defer { try? h.close() }
            let end = try h.seekToEnd()
            do { try h.write(contentsOf: line); try h.synchronize() } catch {
                try? h.truncate(atOffset: end)   // never leave half a line
                throw error
            }
        } catch {
            warnOnce("metrics", "cannot append to \(metricsPath) (\(systemMessage(error))); training goes on, these metrics are not recorded")
        }
    }

    /// TensorBoard, when asked for: a failure is a warning and stops the event file, not the run.
    func logEvents(_ body: (TensorBoardWriter) throws -> Void) {
        guard tensorboard, !eventsFailed else { return }
        do {
            if events == nil { events = try TensorBoardWriter(directory: directory) }
            try body(events!)
        } catch {
            warnOnce("tensorboard", "cannot write TensorBoard events into \(directory) (\(error)); training goes on")
            eventsFailed = true
        }
    }

    func warnOnce(_ key: String, _ message: String) {
        guard !warned.contains(key) else { return }
        warned.insert(key)
        FileHandle.standardError.write("segdist: warning: \(message)\n".data(using: .utf8)!)
    }
}
