import Foundation

/// Learning rate as a function of the optimizer step (0-based), with an optional linear warm-up
/// that ramps from lr / warmupSteps to lr over the first `warmupSteps` steps.
public struct LearningRateSchedule: Equatable, Sendable {
    public enum Kind: Equatable, Sendable {
        case constant
        /// lr * gamma ^ floor(step / stepSize), as torch's StepLR stepped every optimizer step.
        case step(stepSize: Int, gamma: Float)
        /// Cosine from lr to minLR over totalSteps (after warm-up), as CosineAnnealingLR.
        case cosine(totalSteps: Int, minLR: Float)
    }

    public var base: Float
    public var kind: Kind
    public var warmupSteps: Int

    public init(base: Float, kind: Kind = .constant, warmupSteps: Int = 0) {
        precondition(base >= 0, "Learning rate must be non-negative")
        self.base = base; self.kind = kind; self.warmupSteps = max(0, warmupSteps)
    }

    public func learningRate(at step: Int) -> Float {
        if step < warmupSteps { return base * Float(step + 1) / Float(warmupSteps) }
        let t = step - warmupSteps
        switch kind {
        case .constant:
            return base
        case let .step(stepSize, gamma):
            return base * pow(gamma, Float(t / max(1, stepSize)))
        case let .cosine(total, minLR):
            let progress = min(Double(t) / Double(max(1, total)), 1)
            return minLR + (base - minLR) * Float((1 + cos(Double.pi * progress)) / 2)
        }
    }
}
