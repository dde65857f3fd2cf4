/// An optimizer updates one flat parameter buffer from the gradient buffer of the same layout;
/// its state buffers share that layout, so a step is one backend call over the whole model and
/// a checkpoint stores each state buffer as one tensor.
public protocol Optimizer: AnyObject {
    /// Short name used in configs and checkpoints ("sgd", "adam", "adamw").
    var name: String { get }
    /// Steps taken so far.
    var stepCount: Int { get set }
    /// Named state buffers (e.g. "momentum", "exp_avg"), each the size of the parameter buffer,
    /// on the device of the parameters.
    var stateBuffers: [String: Tensor] { get set }
    /// Updates `parameters`' memory in place (it is the model's flat parameter buffer) through
    /// `backend`, the backend of that memory, from `gradientScale` times `gradients` (a
    /// training step's 1 / loss denominator, applied as the update reads them).
    func step(parameters: Tensor, gradients: Tensor, gradientScale: Float, learningRate: Float, backend: Backend)
}

extension Optimizer {
    /// A step from the gradients as they are.
    public func step(parameters: Tensor, gradients: Tensor, learningRate: Float, backend: Backend) {
        step(parameters: parameters, gradients: gradients, gradientScale: 1, learningRate: learningRate, backend: backend)
    }

    /// A step on host memory.
    public func step(parameters: Tensor, gradients: Tensor, learningRate: Float) {
        step(parameters: parameters, gradients: gradients, learningRate: learningRate, backend: CPUBackend.shared)
    }

    /// The state buffer `name` for `count` parameters on `backend`, made (zeroed) on first use.
    func stateBuffer(_ name: String, count: Int, backend: Backend) -> Tensor {
        if let t = stateBuffers[name], t.count == count {
            if t.device == backend.device { return t }
            // state restored on the host before the parameters moved to a device follows them
            if t.device == .host {
                let moved = backend.upload(t)
                stateBuffers[name] = moved
                return moved
            }
        }
        let t = backend.zeros([count])
        stateBuffers[name] = t
        return t
    }
}

public struct OptimizerError: Error, CustomStringConvertible {
    public let description: String
    init(_ message: String) { description = message }
}

func requireHyperparameter(_ ok: Bool, _ message: @autoclosure () -> String) throws {
    if !ok { throw OptimizerError(message()) }
}
