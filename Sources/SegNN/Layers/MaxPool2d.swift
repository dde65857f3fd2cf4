import SegCore

/// Max pooling with a square window (2x2, stride 2 by default; floor on odd sizes).
public final class MaxPool2d {
    public let kernel: Int, stride: Int
    private var argmax: [Int32] = []
    private var inputShape: [Int] = []
    private var outputShape: [Int] = []

    public init(kernel: Int = 2, stride: Int? = nil) {
        self.kernel = kernel; self.stride = stride ?? kernel
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let (n, c, h, w) = x.nchw
        let (oh, ow) = maxPool2dOutputSize(height: h, width: w, kernel: kernel, stride: stride)
        var y = Tensor(uninitialized: [n, c, oh, ow])
        argmax = [Int32](repeating: 0, count: y.count)
        x.ptr { xp in y.mutPtr { yp in argmax.withUnsafeMutableBufferPointer { ap in
            maxPool2dForward(x: xp, y: yp, argmax: ap.baseAddress!, planes: n * c, height: h, width: w,
                             kernel: kernel, stride: stride)
        } } }
        inputShape = x.shape; outputShape = y.shape
        return y
    }

    public func backward(_ dy: Tensor) -> Tensor {
        precondition(dy.shape == outputShape, "MaxPool2d.backward: gradient shape \(dy.shape) differs from output \(outputShape)")
        var dx = Tensor(uninitialized: inputShape)
        dy.ptr { dyp in dx.mutPtr { dxp in argmax.withUnsafeBufferPointer { ap in
            maxPool2dBackward(dy: dyp, argmax: ap.baseAddress!, dx: dxp, planes: inputShape[0] * inputShape[1],
                              height: inputShape[2], width: inputShape[3], outH: outputShape[2], outW: outputShape[3])
        } } }
        argmax = []
        return dx
    }
}
