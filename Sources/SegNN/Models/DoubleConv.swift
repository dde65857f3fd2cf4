import SegCore

/// (conv3x3 pad 1 -> BatchNorm -> ReLU) x 2, registered as `<name>.{0,1,3,4}` like the
/// reference `nn.Sequential` (indices 2 and 5 are the parameter-free ReLUs, fused into the BNs).
public final class DoubleConv {
    let conv1: Conv2d, bn1: BatchNorm2d, conv2: Conv2d, bn2: BatchNorm2d

    public init(store: ParameterStore, name: String, inputChannels: Int, outputChannels: Int,
                generator: inout SeededGenerator) {
        conv1 = Conv2d(store: store, name: "\(name).0", inputChannels: inputChannels, outputChannels: outputChannels,
                       kernelSize: 3, padding: 1, generator: &generator)
        bn1 = BatchNorm2d(store: store, name: "\(name).1", channels: outputChannels, fusedReLU: true)
        conv2 = Conv2d(store: store, name: "\(name).3", inputChannels: outputChannels, outputChannels: outputChannels,
                       kernelSize: 3, padding: 1, generator: &generator)
        bn2 = BatchNorm2d(store: store, name: "\(name).4", channels: outputChannels, fusedReLU: true)
    }

    public func callAsFunction(_ x: consuming Tensor, _ pass: Pass) -> Tensor { self(x, [], pass) }

    /// `parts`: further channel blocks of the input, read as cat([x] + parts) (a UNet's skip
    /// and upsampled maps; evaluation passes never build the concatenation). The inputs are
    /// the callee's: they are let go once the first convolution has read them (what a pass
    /// without a tape keeps of them is nothing), so the second runs without them in memory.
    public func callAsFunction(_ x: consuming Tensor, _ parts: consuming [Tensor], _ pass: Pass) -> Tensor {
        let middle = bn1(conv1, x, parts, pass)
        _ = consume x
        _ = consume parts
        return bn2(conv2, middle, pass)
    }

}
