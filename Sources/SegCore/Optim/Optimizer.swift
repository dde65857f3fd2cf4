/// An optimizer updates one flat parameter buffer from the gradient buffer of the same layout;
/// its state buffers share that layout, so a step is a few flat loops and a checkpoint stores
/// each state buffer as one tensor.
public protocol Optimizer: AnyObject {
    /// Short name used in configs and checkpoints ("sgd", "adam", "adamw").
    var name: String { get }
    /// Steps taken so far.
    var stepCount: Int { get set }
    /// Named state buffers (e.g. "momentum", "exp_avg"), each the size of the parameter buffer.
    var stateBuffers: [String: [Float]] { get set }
    func step(parameters: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>, count: Int,
              learningRate: Float)
}

public struct OptimizerError: Error, CustomStringConvertible {
    public let description: String
    init(_ message: String) { description = message }
}

func requireHyperparameter(_ ok: Bool, _ message: @autoclosure () -> String) throws {
    if !ok { throw OptimizerError(message()) }
}
