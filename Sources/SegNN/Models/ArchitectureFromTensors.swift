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

extension ModelArchitecture {
    /// The settings `shapes` (a state_dict's names and shapes) determine for this architecture.
    public func settings(fromShapes shapes: [String: [Int]]) -> TensorDeterminedSettings {
        var s = TensorDeterminedSettings()
        func read(_ key: String, _ dim: Int) -> Int? {
            guard let shape = shapes[key], shape.count > dim else { return nil }
            return shape[dim]
        }
        func first(_ key: String) { s.width = read(key, 0); s.inputChannels = read(key, 1) }
        switch self {
        case .unet, .unet_add, .unet_shallow:
            first("inc.conv.conv.0.weight"); s.classes = read("outc.conv.weight", 0)
        case .unet_tconv:
            first("encoder1.enc1conv1.weight"); s.classes = read("conv.weight", 0)
        case .fcn_m2nist:
            s.inputChannels = read("encoder.0.weight", 1); s.classes = read("classifier.2.weight", 0)
        case .fcn8s:
            first("features.0.weight"); s.classes = read("score_fr.weight", 0)
        case .fcn_resnet50, .fcn_resnet101, .deeplabv3_resnet50, .deeplabv3_resnet101, .pspnet:
            first("backbone.conv1.weight")
            let pspnet = self == .pspnet
            s.classes = read(pspnet ? "cls.4.weight" : "classifier.4.weight", 0)
            s.auxiliary = shapes.keys.contains { $0.hasPrefix(pspnet ? "aux." : "aux_classifier.") }
            // blocks in layer3 and the block kind: 2 basic = 18, 6 basic = 34, 6 bottleneck = 50, 23 = 101
            let blocks = Set(shapes.keys.compactMap { key -> Int? in
                guard key.hasPrefix("backbone.layer3.") else { return nil }
                return Int(key.dropFirst("backbone.layer3.".count).prefix { $0.isNumber })
            }).count
            let bottleneck = shapes["backbone.layer1.0.conv3.weight"] != nil
            switch (blocks, bottleneck) {
            case (2, false): s.backboneDepth = 18
            case (6, false): s.backboneDepth = 34
            case (6, true): s.backboneDepth = 50
            case (23, true): s.backboneDepth = 101
            default: break
            }
        case .probe_reversed, .probe_tied:
            break
        }
        return s
    }

    /// The architecture a state_dict's names belong to, from a tensor only it has (nil: none
    /// known). ResNet depths 50/101 share their names; the depth is read by `settings`.
    public static func guess(fromNames names: Set<String>) -> ModelArchitecture? {
        if names.contains("inc.conv.conv.0.weight") {
            return names.contains("down3.mpconv.1.conv.0.weight") ? .unet : .unet_shallow
        }
        if names.contains("encoder1.enc1conv1.weight") { return .unet_tconv }
        if names.contains("encoder.0.weight") && names.contains("upsample.0.weight") { return .fcn_m2nist }
        if names.contains("score_fr.weight") { return .fcn8s }
        if names.contains("cls.4.weight") { return .pspnet }
        if names.contains("classifier.0.convs.0.0.weight") { return .deeplabv3_resnet50 }
        if names.contains("classifier.0.weight") && names.contains("backbone.conv1.weight") { return .fcn_resnet50 }
        return nil
    }
}
