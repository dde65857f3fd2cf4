import SegCore

/// Bilinear resize of each plane, by a scale factor or to an explicit size.
public final class Upsample {
    public enum Target: Equatable { case scale(Int), size(height: Int, width: Int) }
    public let target: Target, alignCorners: Bool
    private var inputShape: [Int] = []

    public init(_ target: Target, alignCorners: Bool) {
        self.target = target; self.alignCorners = alignCorners
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let (n, c, h, w) = x.nchw
        let (oh, ow): (Int, Int)
        switch target {
        case let .scale(s): (oh, ow) = (h * s, w * s)
        case let .size(th, tw): (oh, ow) = (th, tw)
        }
        var y = Tensor(uninitialized: [n, c, oh, ow])
        x.ptr { xp in y.mutPtr { yp in
            bilinearForward(x: xp, y: yp, planes: n * c, inH: h, inW: w, outH: oh, outW: ow, alignCorners: alignCorners)
        } }
        inputShape = x.shape
        return y
    }

    public func backward(_ dy: Tensor) -> Tensor {
        var dx = Tensor(uninitialized: inputShape)
        dy.ptr { dyp in dx.mutPtr { dxp in
            bilinearBackward(dy: dyp, dx: dxp, planes: inputShape[0] * inputShape[1], inH: inputShape[2], inW: inputShape[3],
                             outH: dy.shape[2], outW: dy.shape[3], alignCorners: alignCorners)
        } }
        return dx
    }
}
