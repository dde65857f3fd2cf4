import SegCore

/// The lab's UNet (milesial Pytorch-UNet, 2018 layout) with a width knob, a depth knob
/// (4 = UNet, 2 = UNet_shallow) and add-skips (UNet_add). Channels per level are
/// w, 2w, 4w, 8w, 8w (capped at 8w, the deepest level repeating the one above).
/// Written forward-only; the tape derives backward. Parameter names match the reference state_dict: `inc.conv.conv.0.weight`,
/// `down1.mpconv.1.conv.4.running_var`, `up1.conv.conv.3.bias`, `outc.conv.weight`.
public final class UNet: SegmentationModel {
    public enum Skip: String, Sendable { case concat, add }

    public let store: ParameterStore
    public let inputChannels: Int, classes: Int, width: Int, depth: Int, skip: Skip
    private let inc: DoubleConv
    private let downs: [Down]
    private let ups: [Up]
    private let outc: Conv2d

    public init(inputChannels: Int, classes: Int, width: Int, depth: Int = 4, skip: Skip = .concat, seed: UInt64) {
        precondition(depth >= 1 && width >= 1 && inputChannels >= 1 && classes >= 1, "UNet needs positive sizes")
        self.inputChannels = inputChannels; self.classes = classes; self.width = width; self.depth = depth; self.skip = skip
        var rng = SeededGenerator(seed: seed)
        let store = ParameterStore()
        self.store = store
        var ch = (0...depth).map { width << min($0, 3) }
        ch[depth] = ch[depth - 1]
        inc = DoubleConv(store: store, name: "inc.conv.conv", inputChannels: inputChannels, outputChannels: ch[0], generator: &rng)
        var downs: [Down] = []
        for i in 0..<depth {
            downs.append(Down(conv: DoubleConv(store: store, name: "down\(i + 1).mpconv.1.conv", inputChannels: ch[i],
                                  outputChannels: ch[i + 1], generator: &rng)))
        }
        var ups: [Up] = []
        for (j, i) in (0..<depth).reversed().enumerated() {
            let inCh = skip == .add ? ch[i] : 2 * ch[i]
            ups.append(Up(skip: skip, conv: DoubleConv(store: store, name: "up\(j + 1).conv.conv", inputChannels: inCh,
                                                       outputChannels: i > 0 ? ch[i - 1] : ch[0], generator: &rng)))
        }
        self.downs = downs; self.ups = ups
        outc = Conv2d(store: store, name: "outc.conv", inputChannels: ch[0], outputChannels: classes, kernelSize: 1, generator: &rng)
        store.seal()
    }

    public func forward(_ x: Tensor, _ pass: Pass) -> Tensor {
        precondition(x.shape.count == 4 && x.shape[1] == inputChannels,
                     "UNet expects (N, \(inputChannels), H, W) input, got \(x.shape)")
        var levels = [inc(x, pass)]
        for down in downs { levels.append(down(levels.last!, pass)) }
        // each level is handed over (not copied): an evaluation pass frees it once read
        var h = levels.removeLast()
        for up in ups { h = up(consume h, skip: levels.removeLast(), pass) }
        return outc(h, pass)
    }

}

/// Max-pool 2 then a double convolution (`downN.mpconv.{0: pool, 1: double_conv}`).
final class Down {
    let conv: DoubleConv
    init(conv: DoubleConv) { self.conv = conv }

    func callAsFunction(_ x: Tensor, _ pass: Pass) -> Tensor { conv(pass.maxPool2d(x), pass) }
}

/// Bilinear x2 (align_corners), pad to the skip's size, join with the skip, double conv.
final class Up {
    let skip: UNet.Skip
    let conv: DoubleConv

    init(skip: UNet.Skip, conv: DoubleConv) { self.skip = skip; self.conv = conv }

    func callAsFunction(_ low: consuming Tensor, skip skipTensor: consuming Tensor, _ pass: Pass) -> Tensor {
        var up = pass.resizeBilinear(low, height: 2 * low.shape[2], width: 2 * low.shape[3], alignCorners: true)
        _ = consume low
        up = pass.pad(consume up, centeredOn: skipTensor)
        if skip == .add { return conv(pass.add(consume skipTensor, consume up), pass) }
        return conv(consume skipTensor, [consume up], pass)   // cat([skip, up]), built only where a pass needs it
    }
}
