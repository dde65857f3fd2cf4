import SegCore

/// 2-D transposed convolution over NCHW input; weight (Cin, Cout, k, k), bias (Cout).
public final class ConvTranspose2d {
    public let inChannels: Int, outChannels: Int, kernelSize: Int
    public let stride: Int, padding: Int, outputPadding: Int
    public let weight: TensorSlot, bias: TensorSlot?
    private let store: ParameterStore
    private var input: Tensor?
    private var geometry: ConvGeometry?

    public init(store: ParameterStore, name: String, inputChannels: Int, outputChannels: Int, kernelSize: Int,
                stride: Int = 1, padding: Int = 0, outputPadding: Int = 0, bias: Bool = true,
                generator: inout SeededGenerator) {
        self.store = store
        inChannels = inputChannels; outChannels = outputChannels; self.kernelSize = kernelSize
        self.stride = stride; self.padding = padding; self.outputPadding = outputPadding
        // PyTorch computes fan_in from weight dim 1, which for a transposed conv is Cout.
        let fanIn = outputChannels * kernelSize * kernelSize
        let shape = [inputChannels, outputChannels, kernelSize, kernelSize]
        weight = store.registerParameter("\(name).weight", shape: shape,
                                         initialValues: kaimingUniformA5(count: shape.reduce(1, *), fanIn: fanIn, generator: &generator))
        self.bias = bias ? store.registerParameter("\(name).bias", shape: [outputChannels],
                                                   initialValues: kaimingUniformA5(count: outputChannels, fanIn: fanIn, generator: &generator)) : nil
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let (n, c, h, w) = x.nchw
        precondition(c == inChannels, "ConvTranspose2d expects \(inChannels) input channels, got \(c)")
        let g = ConvGeometry.transposed(outChannels: outChannels, inH: h, inW: w, kernelH: kernelSize, kernelW: kernelSize,
                                        stride: stride, padding: padding, outputPadding: outputPadding)
        var y = Tensor(uninitialized: [n, outChannels, g.height, g.width])
        x.ptr { xp in
            y.mutPtr { yp in
                convTranspose2dForward(x: xp, weight: store.pointer(weight), bias: bias.map { UnsafePointer(store.pointer($0)) },
                                       y: yp, batch: n, inChannels: c, geometry: g)
            }
        }
        input = x; geometry = g
        return y
    }

    @discardableResult
    public func backward(_ dy: Tensor, needsInputGradient: Bool = true) -> Tensor? {
        guard let x = input, let g = geometry else { preconditionFailure("ConvTranspose2d.backward called before forward") }
        precondition(dy.shape == [x.shape[0], outChannels, g.height, g.width], "ConvTranspose2d.backward: gradient shape \(dy.shape) differs from output")
        var dx = needsInputGradient ? Tensor(uninitialized: x.shape) : nil
        let w = store.pointer(weight), dw = store.gradient(weight), db = bias.map { store.gradient($0) }
        let inChannels = self.inChannels
        func run(_ dxp: UnsafeMutablePointer<Float>?) {
            x.ptr { xp in
                dy.ptr { dyp in
                    convTranspose2dBackward(x: xp, weight: w, dy: dyp, dx: dxp, dweight: dw, dbias: db,
                        batch: x.shape[0], inChannels: inChannels, geometry: g)
                }
            }
        }
        if dx != nil { dx!.mutPtr { run($0) } } else { run(nil) }
        store.gradientsReady(from: weight)
        input = nil
        return dx
    }
}
