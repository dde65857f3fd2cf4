import SegCore

/// 2-D convolution over NCHW input; weight (Cout, Cin, k, k), optional bias (Cout).
public final class Conv2d {
    public let inChannels: Int, outChannels: Int, kernelSize: Int
    public let stride: Int, padding: Int, dilation: Int
    public let weight: TensorSlot, bias: TensorSlot?
    private let store: ParameterStore
    private var input: Tensor?
    private var geometry: ConvGeometry?

    public init(store: ParameterStore, name: String, inputChannels: Int, outputChannels: Int, kernelSize: Int,
                stride: Int = 1, padding: Int = 0, dilation: Int = 1, bias: Bool = true,
                generator: inout SeededGenerator) {
        self.store = store
        inChannels = inputChannels; outChannels = outputChannels; self.kernelSize = kernelSize
        self.stride = stride; self.padding = padding; self.dilation = dilation
        let fanIn = inputChannels * kernelSize * kernelSize
        let shape = [outputChannels, inputChannels, kernelSize, kernelSize]
        weight = store.registerParameter("\(name).weight", shape: shape,
                                         initialValues: kaimingUniformA5(count: shape.reduce(1, *), fanIn: fanIn, generator: &generator))
        self.bias = bias ? store.registerParameter("\(name).bias", shape: [outputChannels],
                                                   initialValues: kaimingUniformA5(count: outputChannels, fanIn: fanIn, generator: &generator)) : nil
    }

    /// Multiply-adds of one forward pass on an input of this size (for FLOP reporting).
    public func multiplyAdds(batch: Int, height: Int, width: Int) -> Int {
        let g = ConvGeometry(channels: inChannels, height: height, width: width, kernelH: kernelSize, kernelW: kernelSize,
                             stride: stride, padding: padding, dilation: dilation)
        return batch * outChannels * g.outPixels * g.patchSize
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let (n, c, h, w) = x.nchw
        precondition(c == inChannels, "Conv2d expects \(inChannels) input channels, got \(c)")
        let g = ConvGeometry(channels: c, height: h, width: w, kernelH: kernelSize, kernelW: kernelSize,
                             stride: stride, padding: padding, dilation: dilation)
        var y = Tensor(uninitialized: [n, outChannels, g.outH, g.outW])
        x.ptr { xp in
            y.mutPtr { yp in
                conv2dForward(x: xp, weight: store.pointer(weight), bias: bias.map { UnsafePointer(store.pointer($0)) },
                              y: yp, batch: n, outChannels: outChannels, geometry: g)
            }
        }
        input = x; geometry = g
        return y
    }

    /// Accumulates weight and bias gradients; returns the input gradient when asked for.
    @discardableResult
    public func backward(_ dy: Tensor, needsInputGradient: Bool = true) -> Tensor? {
        guard let x = input, let g = geometry else { preconditionFailure("Conv2d.backward called before forward") }
        precondition(dy.shape == [x.shape[0], outChannels, g.outH, g.outW], "Conv2d.backward: gradient shape \(dy.shape) differs from output")
        var dx = needsInputGradient ? Tensor(uninitialized: x.shape) : nil
        let w = store.pointer(weight), dw = store.gradient(weight), db = bias.map { store.gradient($0) }
        let outChannels = self.outChannels
        func run(_ dxp: UnsafeMutablePointer<Float>?) {
            x.ptr { xp in
                dy.ptr { dyp in
                    conv2dBackward(x: xp, weight: w, dy: dyp, dx: dxp, dweight: dw, dbias: db,
                        batch: x.shape[0], outChannels: outChannels, geometry: g)
                }
            }
        }
        if dx != nil { dx!.mutPtr { run($0) } } else { run(nil) }
        store.gradientsReady(from: weight)
        input = nil
        return dx
    }
}
