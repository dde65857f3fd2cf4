import Foundation

/// A learnable tensor as ops see it: its value and its gradient, both views into a model's two
/// flat buffers (same layout), and its index among the model's parameters. Ops accumulate (+=)
/// straight into `gradient`; the tape tells when that gradient is final.
public struct Parameter {
    public let index: Int
    public let value: Tensor
    public let gradient: Tensor
    public init(index: Int, value: Tensor, gradient: Tensor) {
        self.index = index; self.value = value; self.gradient = gradient
    }
}

/// The record of one training forward pass, walked in reverse by `backward`.
///
/// Each recorded op appends a node: the tape indices of its tracked inputs, the parameters it
/// reads, and a closure that maps the output's gradient to its inputs' gradients. The closure
/// holds what backward needs (inputs, outputs, statistics); it is dropped as soon as backward
/// has passed it, and so are the gradients of values no longer needed. Gradients of values
/// used more than once are summed (`+=`), so branches and residuals need no care from models.
///
/// Parameter gradients: a parameter's gradient is final once backward has passed the first
/// node (in forward order) that used it — its last use in backward. `onParameterGradientReady`
/// is called with the parameter's index at that moment, whatever order the model registered
/// or used its parameters in; a data-parallel step starts the all-reduce from that signal.
public final class Tape {
    /// The serial of no tape: tensors that carry it are constants to every tape.
    public static let none: UInt64 = 0
    nonisolated(unsafe) private static var nextSerial: UInt64 = 1
    private static let serialLock = NSLock()

    public let backend: Backend
    public let serial: UInt64
    /// Called during backward with each parameter's index when its gradient is final.
    public var onParameterGradientReady: ((Int) -> Void)?

    private typealias Backward = (Tensor) -> [Tensor?]
    private var inputs: [[Int32]] = []
    private var closures: [Backward?] = []
    /// Parameters whose first use is node i: they are final once backward passes node i.
    private var finalAfter: [[Int]] = []
    private var firstUse: [Int: Int] = [:]
    private var spent = false
    /// Gradients of the inputs marked with `watch`, by node.
    private var watched: [Int: Tensor] = [:]
    /// How to rebuild node i's output, where its op offers that (`rebuildable`): consumers
    /// then keep this instead of the output. Dropped when backward passes node i, after every
    /// consumer's backward has run.
    private var rebuilders: [Int: () -> Tensor] = [:]

    public init(backend: Backend) {
        self.backend = backend
        Tape.serialLock.lock()
        serial = Tape.nextSerial
        Tape.nextSerial += 1
        Tape.serialLock.unlock()
    }

    /// Number of recorded ops.
    public var count: Int { closures.count }

    /// True when `t` was produced by an op recorded on this tape (its gradient is wanted).
    @inline(__always) public func tracks(_ t: Tensor) -> Bool { t.tapeSerial == serial && t.tapeIndex >= 0 }

    /// Records an op whose output is `output`: `backward` receives the output's gradient and
    /// returns one gradient per entry of `inputs` (nil where the input is not tracked). Returns
    /// `output` marked with its place on the tape; an op with no tracked input and no parameter
    /// is not recorded.
    public func record(_ output: Tensor, inputs: [Tensor], parameters: [Parameter?] = [],
                       backward: @escaping (Tensor) -> [Tensor?]) -> Tensor {
        precondition(!spent, "This tape's backward has run; record a new tape for the next pass")
        let ids = inputs.map { tracks($0) ? $0.tapeIndex : -1 }
        let used = parameters.compactMap { $0?.index }
        guard ids.contains(where: { $0 >= 0 }) || !used.isEmpty else { return output.detached }
        let node = closures.count
        var fresh: [Int] = []
        for p in used where firstUse[p] == nil { firstUse[p] = node; fresh.append(p) }
        self.inputs.append(ids)
        closures.append(backward)
        finalAfter.append(fresh)
        var y = output
        y.tapeSerial = serial
        y.tapeIndex = Int32(node)
        return y
    }

    /// Marks `x` (an input, not produced by a recorded op) as a value whose gradient the caller
    /// wants: ops then compute its gradient, and `gradient(of:)` returns it after backward.
    public func watch(_ x: Tensor) -> Tensor {
        precondition(!spent, "This tape's backward has run; record a new tape for the next pass")
        let node = closures.count
        inputs.append([])
        finalAfter.append([])
        closures.append { [unowned self] dy in
            self.watched[node] = dy
            return []
        }
        var y = x.detached
        y.tapeSerial = serial
        y.tapeIndex = Int32(node)
        return y
    }

    /// Offers consumers of `t` (an output recorded on this tape) a way to rebuild it in their
    /// backward instead of keeping it alive from forward to backward: `rebuild` must return
    /// exactly t's values from what the producing op keeps anyway (a batch norm's output from its
    /// input and statistics).
    public func rebuildable(_ t: Tensor, by rebuild: @escaping () -> Tensor) {
        guard tracks(t) else { return }
        rebuilders[Int(t.tapeIndex)] = rebuild
    }

    /// What an op's backward keeps of its input `x`: how to rebuild it when its producer
    /// offered that, else x itself.
    public func saved(_ x: Tensor) -> SavedInput {
        guard tracks(x), let rebuild = rebuilders[Int(x.tapeIndex)] else { return SavedInput(kept: x) }
        return SavedInput(rebuild: rebuild)
    }

    /// The gradient of a watched input (nil before backward, or if the loss does not depend on it).
    public func gradient(of x: Tensor) -> Tensor? {
        guard tracks(x) else { return nil }
        return watched[Int(x.tapeIndex)]
    }

    /// Back-propagates from `root` (a recorded value, usually the scalar loss) seeded with
    /// `seed` (a tensor of root's shape, on this tape's backend). Runs once per tape.
    public func backward(from root: Tensor, seed: Tensor) {
        precondition(!spent, "A tape runs backward once")
        precondition(tracks(root), "backward(from:) needs a value recorded on this tape")
        precondition(seed.shape == root.shape, "The seed \(seed.shape) must have the root's shape \(root.shape)")
        spent = true
        var grads = [Tensor?](repeating: nil, count: closures.count)
        grads[Int(root.tapeIndex)] = seed
        for node in stride(from: closures.count - 1, through: 0, by: -1) {
            let closure = closures[node]
            closures[node] = nil                     // frees what this op saved
            rebuilders[node] = nil
            if let dy = grads[node], let closure {
                grads[node] = nil
                let gs = closure(dy)
                precondition(gs.count == inputs[node].count, "An op returned \(gs.count) gradients for \(inputs[node].count) inputs")
                for (k, id) in inputs[node].enumerated() where id >= 0 {
                    guard let g = gs[k] else { continue }
                    accumulate(g, into: &grads[Int(id)])
                }
            }
            for p in finalAfter[node] { onParameterGradientReady?(p) }
        }
        inputs = []; finalAfter = []; rebuilders = [:]
    }

    /// Back-propagates from a scalar loss with d(objective)/d(loss) = `scale`.
    public func backward(from loss: Tensor, scale: Float = 1) {
        backward(from: loss, seed: backend.upload(Tensor(repeating: scale, shape: loss.shape)))
    }

    private func accumulate(_ g: Tensor, into slot: inout Tensor?) {
        guard var existing = slot else { slot = g.detached; return }
        slot = nil
        // Sum in place only into memory no other value shares (an add's backward hands the same
        // gradient to both of its inputs).
        if existing.isUniquelyOwned() {
            backend.addInPlace(existing, g)
            slot = existing
        } else {
            slot = backend.add(existing, g)
        }
    }
}

/// An op's input as its backward gets it back: kept from forward, or rebuilt on demand (see
/// `Tape.rebuildable`) so that it is not held in memory between forward and backward.
public struct SavedInput {
    private let kept: Tensor?
    private let rebuild: (() -> Tensor)?
    public init(kept: Tensor) { self.kept = kept; rebuild = nil }
    init(rebuild: @escaping () -> Tensor) { kept = nil; self.rebuild = rebuild }
    /// The input's values (rebuilt at each call when not kept).
    public var value: Tensor { kept ?? rebuild!() }
}
