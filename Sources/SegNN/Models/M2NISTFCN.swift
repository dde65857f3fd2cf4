import SegCore

/// The tiny FCN of the M2NIST notebook: conv5x5 (8) + ReLU, max-pool 2, conv3x3 (8) + ReLU,
/// max-pool 2 (the encoder, valid padding), 1x1 conv (32) + ReLU, 1x1 conv to the classes,
/// transposed conv k4 s2 then k6 s2 (valid) back up. On 64x84 input the output is exactly
/// 64x84; on other sizes it is padded or cropped to the input size. Names: `encoder.{0,3}`,
/// `classifier.{0,2}`, `upsample.{0,1}` (weights and biases).
public final class M2NISTFCN: SegmentationModel {
    public let store = ParameterStore()
    public let inputChannels: Int, classes: Int
    let conv1: Conv2d, conv2: Conv2d, fc1: Conv2d, fc2: Conv2d, up1: ConvTranspose2d, up2: ConvTranspose2d

    public init(inputChannels: Int, classes: Int, seed: UInt64) {
        self.inputChannels = inputChannels; self.classes = classes
        var rng = SeededGenerator(seed: seed)
        conv1 = Conv2d(store: store, name: "encoder.0", inputChannels: inputChannels, outputChannels: 8, kernelSize: 5, generator: &rng)
        conv2 = Conv2d(store: store, name: "encoder.3", inputChannels: 8, outputChannels: 8, kernelSize: 3, generator: &rng)
        fc1 = Conv2d(store: store, name: "classifier.0", inputChannels: 8, outputChannels: 32, kernelSize: 1, generator: &rng)
        fc2 = Conv2d(store: store, name: "classifier.2", inputChannels: 32, outputChannels: classes, kernelSize: 1, generator: &rng)
        up1 = ConvTranspose2d(store: store, name: "upsample.0", inputChannels: classes, outputChannels: classes, kernelSize: 4,
                              stride: 2, generator: &rng)
        up2 = ConvTranspose2d(store: store, name: "upsample.1", inputChannels: classes, outputChannels: classes, kernelSize: 6,
                              stride: 2, generator: &rng)
        store.seal()
    }

    public func forward(_ x: Tensor, _ pass: Pass) -> Tensor {
        var h = pass.maxPool2d(pass.relu(conv1(x, pass)))
        h = pass.maxPool2d(pass.relu(conv2(h, pass)))
        h = fc2(pass.relu(fc1(h, pass)), pass)
        let y = up2(up1(h, pass), pass)
        return pass.pad(y, centeredOn: x)
    }

}
