/// The sliding-window geometry shared by convolution, transposed convolution and their
/// im2col / col2im lowering: an image of `channels x height x width` is read by a
/// `kernelH x kernelW` window with the given stride, zero padding and dilation, giving
/// `outH x outW` window positions.
public struct ConvGeometry: Equatable, Hashable, Sendable {
    public let channels: Int, height: Int, width: Int
    public let kernelH: Int, kernelW: Int
    public let stride: Int, padding: Int, dilation: Int
    public let outH: Int, outW: Int

    public init(channels: Int, height: Int, width: Int, kernelH: Int, kernelW: Int,
                stride: Int = 1, padding: Int = 0, dilation: Int = 1) {
        precondition(stride >= 1 && dilation >= 1 && padding >= 0 && kernelH >= 1 && kernelW >= 1,
                     "Convolution needs stride, dilation and kernel >= 1 and padding >= 0")
        self.channels = channels; self.height = height; self.width = width
        self.kernelH = kernelH; self.kernelW = kernelW
        self.stride = stride; self.padding = padding; self.dilation = dilation
        outH = (height + 2 * padding - dilation * (kernelH - 1) - 1) / stride + 1
        outW = (width + 2 * padding - dilation * (kernelW - 1) - 1) / stride + 1
        precondition(outH >= 1 && outW >= 1,
                     "Convolution window \(kernelH)x\(kernelW) does not fit a \(height)x\(width) input")
    }

    /// Rows of the column matrix: one per (channel, kernel row, kernel column).
    public var patchSize: Int { channels * kernelH * kernelW }
    public var outPixels: Int { outH * outW }
    public var inPixels: Int { height * width }

    /// A 1x1, stride-1, unpadded window reads the image as its own column matrix.
    public var isPointwise: Bool { kernelH == 1 && kernelW == 1 && stride == 1 && padding == 0 }

    /// The one tap of a larger window that reads the image, when every other tap reads only
    /// padding and that tap reads each output's own pixel (a dilated 3x3 whose dilation is at
    /// least the map's sides, as DeepLab's ASPP on small maps): the convolution is then exactly
    /// a 1x1 one with that tap's weights, k*k times less work than computing every tap.
    public var onlyTap: (kh: Int, kw: Int)? {
        guard kernelH * kernelW > 1, stride == 1, outH == height, outW == width else { return nil }
        var found: (kh: Int, kw: Int)?
        for kh in 0..<kernelH {
            let rows = validRange(offset: kh * dilation - padding, size: height, count: outH)
            for kw in 0..<kernelW where !rows.isEmpty {
                guard !validRange(offset: kw * dilation - padding, size: width, count: outW).isEmpty else { continue }
                guard found == nil, kh * dilation == padding, kw * dilation == padding else { return nil }
                found = (kh, kw)
            }
        }
        return found
    }

    /// The 1x1 window over the same image (for `onlyTap`).
    public var pointwise: ConvGeometry { ConvGeometry(channels: channels, height: height, width: width, kernelH: 1, kernelW: 1) }

    /// Output positions `o` whose input coordinate `o * stride + offset` lies in `0..<size`.
    @inline(__always)
    func validRange(offset: Int, size: Int, count: Int) -> Range<Int> {
        // ceil division that is right for negative numerators too
        func ceilDiv(_ a: Int, _ b: Int) -> Int { a >= 0 ? (a + b - 1) / b : -((-a) / b) }
        let lo = max(0, ceilDiv(-offset, stride))
        let hi = min(count, ceilDiv(size - offset, stride))
        return lo..<max(lo, hi)
    }
}

/// Unfolds one image `(channels, height, width)` into `col (patchSize, outH * outW)`.
public func im2col(_ image: UnsafePointer<Float>, _ col: UnsafeMutablePointer<Float>, _ g: ConvGeometry) {
    im2col(image, col, g, outputRows: 0..<g.outH)
}

/// The columns of output rows `outputRows` only: a (K, rows x outW) matrix, the same values as
/// those columns of the whole image's.
public func im2col(_ image: UnsafePointer<Float>, _ col: UnsafeMutablePointer<Float>, _ g: ConvGeometry, outputRows: Range<Int>) {
    let ow = g.outW, oh = g.outH, s = g.stride
    var row = col
    for c in 0..<g.channels {
        let plane = image + c * g.inPixels
        for ki in 0..<g.kernelH {
            let offH = ki * g.dilation - g.padding
            let rowsValid = g.validRange(offset: offH, size: g.height, count: oh)
            for kj in 0..<g.kernelW {
                let offW = kj * g.dilation - g.padding
                let colsValid = g.validRange(offset: offW, size: g.width, count: ow)
                for y in outputRows {
                    let dst = row + (y - outputRows.lowerBound) * ow
                    guard rowsValid.contains(y), !colsValid.isEmpty else {
                        dst.update(repeating: 0, count: ow); continue
                    }
                    let src = plane + (y * s + offH) * g.width
                    if colsValid.lowerBound > 0 { dst.update(repeating: 0, count: colsValid.lowerBound) }
                    if s == 1 {
                        (dst + colsValid.lowerBound).update(from: src + colsValid.lowerBound + offW,
                                                            count: colsValid.count)
                    } else {
                        for x in colsValid { dst[x] = src[x * s + offW] }
                    }
                    if colsValid.upperBound < ow {
                        (dst + colsValid.upperBound).update(repeating: 0, count: ow - colsValid.upperBound)
                    }
                }
                row += outputRows.count * ow
            }
        }
    }
}

/// Folds `col (patchSize, outH * outW)` back onto an image, adding every window's value to
/// the pixel it came from. The image must be zeroed (or hold values to add to) beforehand.
public func col2im(_ col: UnsafePointer<Float>, _ image: UnsafeMutablePointer<Float>, _ g: ConvGeometry) {
    let ow = g.outW, oh = g.outH, s = g.stride
    var row = col
    for c in 0..<g.channels {
        let plane = image + c * g.inPixels
        for ki in 0..<g.kernelH {
            let offH = ki * g.dilation - g.padding
            let rowsValid = g.validRange(offset: offH, size: g.height, count: oh)
            for kj in 0..<g.kernelW {
                let offW = kj * g.dilation - g.padding
                let colsValid = g.validRange(offset: offW, size: g.width, count: ow)
                if !colsValid.isEmpty {
                    for y in rowsValid {
                        let src = row + y * ow
                        let dst = plane + (y * s + offH) * g.width + offW
                        if s == 1 {
                            for x in colsValid { dst[x] += src[x] }
                        } else {
                            for x in colsValid { dst[x * s] += src[x] }
                        }
                    }
                }
                row += oh * ow
            }
        }
    }
}
