import SegCore

/// torchvision's `FCNHead`: conv3x3 (in -> in/4, no bias) - BN - ReLU - Dropout(0.1) - conv1x1
/// to the classes, registered as `<name>.{0, 1, 4}`.
public final class FCNHead {
    let conv: Conv2d, bn: BatchNorm2d, classifier: Conv2d

    public init(store: ParameterStore, name: String, inputChannels: Int, classes: Int, generator: inout SeededGenerator) {
        let inter = inputChannels / 4
        conv = Conv2d(store: store, name: "\(name).0", inputChannels: inputChannels, outputChannels: inter, kernelSize: 3, padding: 1,
                      bias: false, generator: &generator)
        bn = BatchNorm2d(store: store, name: "\(name).1", channels: inter, fusedReLU: true)
        classifier = Conv2d(store: store, name: "\(name).4", inputChannels: inter, outputChannels: classes, kernelSize: 1,
                            generator: &generator)
    }

    public func callAsFunction(_ x: Tensor, _ pass: Pass) -> Tensor {
        classifier(pass.dropout(bn(conv, x, pass), p: 0.1), pass)
    }
}

/// A conv (no bias) followed by a fused BN + ReLU, registered as `<name>.<i>` / `<name>.<i+1>`.
final class ConvBNReLU {
    let conv: Conv2d, bn: BatchNorm2d
    init(store: ParameterStore, name: String, index: Int = 0, inputChannels: Int, outputChannels: Int, kernelSize: Int,
         padding: Int = 0, dilation: Int = 1, generator: inout SeededGenerator) {
        conv = Conv2d(store: store, name: "\(name).\(index)", inputChannels: inputChannels, outputChannels: outputChannels,
                      kernelSize: kernelSize, padding: padding, dilation: dilation, bias: false, generator: &generator)
        bn = BatchNorm2d(store: store, name: "\(name).\(index + 1)", channels: outputChannels, fusedReLU: true)
    }
    func callAsFunction(_ x: Tensor, _ pass: Pass) -> Tensor { bn(conv, x, pass) }
}

/// torchvision's `ASPP`: a 1x1 branch, three 3x3 branches dilated by `rates`, and image pooling
/// (global average, 1x1, BN, ReLU, broadcast back), concatenated and projected by a 1x1 + BN +
/// ReLU + Dropout(0.5). Names `<name>.convs.{0..4}.*` and `<name>.project.{0,1}.*`. With
/// `separable`, segmentation_models_pytorch's: each dilated branch a depthwise 3x3 + pointwise
/// 1x1 (`<name>.convs.i.0.{0,1}`) then BN (`<name>.convs.i.1`) and ReLU.
public final class ASPP {
    let first: ConvBNReLU
    let dilated: [(Tensor, Pass) -> Tensor]
    let pooling: ConvBNReLU
    let project: ConvBNReLU

    public init(store: ParameterStore, name: String, inputChannels: Int, rates: [Int], outputChannels: Int, separable: Bool = false,
                generator: inout SeededGenerator) {
        first = ConvBNReLU(store: store, name: "\(name).convs.0", inputChannels: inputChannels, outputChannels: outputChannels,
                           kernelSize: 1, generator: &generator)
        var dilated: [(Tensor, Pass) -> Tensor] = []
        for (i, rate) in rates.enumerated() {
            let branch = "\(name).convs.\(i + 1)"
            if separable {
                let conv = SeparableConv2d(store: store, name: "\(branch).0", inputChannels: inputChannels, outputChannels: outputChannels,
                                           kernelSize: 3, padding: rate, dilation: rate, generator: &generator)
                let bn = BatchNorm2d(store: store, name: "\(branch).1", channels: outputChannels, fusedReLU: true)
                dilated.append { x, pass in bn(conv(x, pass), pass) }
            } else {
                let conv = ConvBNReLU(store: store, name: branch, inputChannels: inputChannels, outputChannels: outputChannels,
                                      kernelSize: 3, padding: rate, dilation: rate, generator: &generator)
                dilated.append { x, pass in conv(x, pass) }
            }
        }
        self.dilated = dilated
        pooling = ConvBNReLU(store: store, name: "\(name).convs.\(rates.count + 1)", index: 1, inputChannels: inputChannels,
                             outputChannels: outputChannels, kernelSize: 1, generator: &generator)
        project = ConvBNReLU(store: store, name: "\(name).project", inputChannels: (rates.count + 2) * outputChannels,
                             outputChannels: outputChannels, kernelSize: 1, generator: &generator)
    }

    public func callAsFunction(_ x: Tensor, _ pass: Pass) -> Tensor {
        var joined = first(x, pass)
        for branch in dilated { joined = pass.concatChannels(joined, branch(x, pass)) }
        let pooled = pooling(pass.adaptiveAvgPool2d(x, height: 1, width: 1), pass)
        joined = pass.concatChannels(joined, pass.resizeBilinear(pooled, like: x, alignCorners: false))
        return pass.dropout(project(joined, pass), p: 0.5)
    }
}

/// torchvision's `DeepLabHead`: ASPP, conv3x3 (no bias) - BN - ReLU, conv1x1 to the classes;
/// names `<name>.0.*` (ASPP), `<name>.{1, 2, 4}`. `channels` is 256 in torchvision.
public final class DeepLabHead {
    let aspp: ASPP, conv: ConvBNReLU, classifier: Conv2d

    public init(store: ParameterStore, name: String, inputChannels: Int, classes: Int, channels: Int = 256,
                rates: [Int] = [12, 24, 36], generator: inout SeededGenerator) {
        aspp = ASPP(store: store, name: "\(name).0", inputChannels: inputChannels, rates: rates, outputChannels: channels,
                    generator: &generator)
        conv = ConvBNReLU(store: store, name: name, index: 1, inputChannels: channels, outputChannels: channels, kernelSize: 3,
                          padding: 1, generator: &generator)
        classifier = Conv2d(store: store, name: "\(name).4", inputChannels: channels, outputChannels: classes, kernelSize: 1,
                            generator: &generator)
    }

    public func callAsFunction(_ x: Tensor, _ pass: Pass) -> Tensor { classifier(conv(aspp(x, pass), pass), pass) }
}
