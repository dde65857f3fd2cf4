/// What a plain state_dict's tensors say about the model that made it: input channels, classes,
/// width, ResNet depth, auxiliary head — read from the shapes of a few named tensors, so that
/// `--weights` needs only the model's name.
public struct TensorDeterminedSettings: Equatable, Sendable {
    public var inputChannels: Int?
    public var classes: Int?
    public var width: Int?
    public var backboneDepth: Int?
    public var auxiliary: Bool?

    /// As `key=value` config overrides, in the config's key names.
    public var overrides: [String] {
        var out: [String] = []
        if let width { out.append("width=\(width)") }
        if let inputChannels { out.append("in_channels=\(inputChannels)") }
        if let classes { out.append("classes=\(classes)") }
        if let backboneDepth { out.append("backbone_depth=\(backboneDepth)") }
        if let auxiliary { out.append("aux_loss=\(auxiliary)") }
        return out
    }
}

extension TensorDeterminedSettings {
    /// Width and input channels from the first convolution's weight (out, in, k, k).
    init(first key: String, _ shapes: [String: [Int]]) {
        self.init()
        if let shape = shapes[key], shape.count > 1 { width = shape[0]; inputChannels = shape[1] }
    }
}

/// The UNet family's names (milesial's).
func unetSettings(_ shapes: [String: [Int]]) -> TensorDeterminedSettings {
    var s = TensorDeterminedSettings(first: "inc.conv.conv.0.weight", shapes)
    s.classes = shapes["outc.conv.weight"]?.first
    return s
}

/// A ResNet-backbone model's: the classifier's output channels, an aux head when names under
/// `aux` are there (nil: the model has none), and the depth from layer3's block count and kind
/// (2 basic = 18, 6 basic = 34, 6 bottleneck = 50, 23 = 101), the trunk's names under `trunk`.
func resnetSettings(_ shapes: [String: [Int]], classifier: String, aux: String?, trunk: String = "backbone") -> TensorDeterminedSettings {
    var s = TensorDeterminedSettings(first: "\(trunk).conv1.weight", shapes)
    s.classes = shapes[classifier]?.first
    s.auxiliary = aux.map { prefix in shapes.keys.contains { $0.hasPrefix(prefix) } }
    let layer3 = "\(trunk).layer3."
    let blocks = Set(shapes.keys.compactMap { key -> Int? in
        guard key.hasPrefix(layer3) else { return nil }
        return Int(key.dropFirst(layer3.count).prefix { $0.isNumber })
    }).count
    let bottleneck = shapes["\(trunk).layer1.0.conv3.weight"] != nil
    switch (blocks, bottleneck) {
    case (2, false): s.backboneDepth = 18
    case (6, false): s.backboneDepth = 34
    case (6, true): s.backboneDepth = 50
    case (23, true): s.backboneDepth = 101
    default: break
    }
    return s
}

/// A MobileNetV3 model's: input channels from the stem, the width from the last conv (6 x 160
/// x width_mult channels, width = 16 x width_mult), classes from `classifier`, an aux head.
func mobileNetSettings(_ shapes: [String: [Int]], classifier: String) -> TensorDeterminedSettings {
    var s = TensorDeterminedSettings()
    if let stem = shapes["backbone.0.0.weight"], stem.count > 1 { s.inputChannels = stem[1] }
    if let last = shapes["backbone.16.0.weight"]?.first { s.width = Int((Double(last) * 16 / 960).rounded()) }
    s.classes = shapes[classifier]?.first
    s.auxiliary = shapes.keys.contains { $0.hasPrefix("aux_classifier.") }
    return s
}

extension ModelArchitecture {
    /// The settings `shapes` (a state_dict's names and shapes) determine for this architecture.
    public func settings(fromShapes shapes: [String: [Int]]) -> TensorDeterminedSettings { entry.settings(shapes) }

    /// The architecture a state_dict's names belong to, from a tensor only it has (nil: none
    /// known). ResNet depths 50/101 share their names (the depth is read by `settings`), and
    /// UNet_add shares UNet's.
    public static func guess(fromNames names: Set<String>) -> ModelArchitecture? {
        allCases.first { $0.entry.recognises?(names) ?? false }
    }
}
