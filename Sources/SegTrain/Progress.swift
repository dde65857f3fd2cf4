import Foundation

/// Rank 0's progress report: a redrawn bar when stderr is a terminal, plain periodic lines when
/// it is not (logs, CI, Slurm output files).
public final class ProgressReporter {
    public let total: Int
    public let interactive: Bool
    private let every: Int
    private let start = Date()
    private var lastDraw = Date.distantPast

    public init(total: Int, every: Int, interactive: Bool = isatty(STDERR_FILENO) != 0) {
        self.total = total; self.every = every; self.interactive = interactive
    }

    /// `dataWaitShare`: the part of a step spent waiting for its data (0 when the prefetching
    /// keeps up).
    public func update(step: Int, loss: Float, imagesPerSecond: Double, secondsPerStep: Double, dataWaitShare: Double = 0) {
        let remaining = Double(total - step) * secondsPerStep
        let stats = String(format: "step %d/%d  loss %.4f  %.1f img/s  data wait %.0f%%  ETA %@", step, total, loss, imagesPerSecond,
                           100 * dataWaitShare, Self.duration(remaining))
        if interactive {
            guard Date().timeIntervalSince(lastDraw) > 0.1 || step == total else { return }
            lastDraw = Date()
            let width = 30, filled = total > 0 ? width * step / total : width
            let bar = String(repeating: "=", count: filled) + (filled < width ? ">" : "") +
                String(repeating: " ", count: max(0, width - filled - 1))
            write("\r[\(bar)] \(stats)\u{1B}[K" + (step == total ? "\n" : ""))
        } else if step % every == 0 || step == total {
            write(stats + "\n")
        }
    }

    /// A line that must not be overwritten by the bar (evaluation results, checkpoints).
    public func note(_ line: String) {
        write((interactive ? "\r\u{1B}[K" : "") + line + "\n")
    }

    public var elapsed: Double { Date().timeIntervalSince(start) }

    static func duration(_ s: Double) -> String {
        guard s.isFinite, s >= 0 else { return "--" }
        let t = Int(s.rounded())
        return t >= 3600 ? String(format: "%dh%02dm", t / 3600, t / 60 % 60) : t >= 60 ? String(format: "%dm%02ds", t / 60, t % 60) : "\(t)s"
    }

    private func write(_ s: String) { FileHandle.standardError.write(s.data(using: .utf8)!) }
}
