import SegNN
import SegData

/// The config keys, their types, ranges and documentation, in the order they are printed.
struct ConfigKey {
    enum Kind {
        case int(ClosedRange<Int>)
        case float(ClosedRange<Float>)
        /// One of `options`.
        case choice([String])
        case bool
        case string
        /// A whole number in the range, or the word (`auto`, `none`).
        case intOr(String, ClosedRange<Int>)
        /// A number in the range, or the word.
        case floatOr(String, ClosedRange<Float>)
        /// Comma-separated numbers in the range, or `none`.
        case floatList(ClosedRange<Float>)
        /// As `floatList`, or `auto`.
        case floatListOrAuto(ClosedRange<Float>)
        /// `#RRGGBB` colours, comma-separated (one when `single`), or `none`.
        case colors(single: Bool)
        /// A `ResizeRule`: none, HxW or shorter:N.
        case resize
    }
    let name: String
    let kind: Kind
    let help: String
    let get: (TrainingConfig) -> String
    let set: (inout TrainingConfig, String) -> Void   // called with an already validated value
}

private func int(_ name: String, _ range: ClosedRange<Int>, _ help: String,
                 _ path: WritableKeyPath<TrainingConfig, Int>) -> ConfigKey {
    ConfigKey(name: name, kind: .int(range), help: help, get: { String($0[keyPath: path]) },
              set: { $0[keyPath: path] = Int($1)! })
}

private func float(_ name: String, _ range: ClosedRange<Float>, _ help: String,
                   _ path: WritableKeyPath<TrainingConfig, Float>) -> ConfigKey {
    ConfigKey(name: name, kind: .float(range), help: help, get: { formatFloat($0[keyPath: path]) },
              set: { $0[keyPath: path] = Float($1)! })
}

private func choice<E: RawRepresentable & CaseIterable>(_ name: String, _ help: String,
                                                          _ path: WritableKeyPath<TrainingConfig, E>) -> ConfigKey
where E.RawValue == String {
    let all = E.allCases.map(\.rawValue)
    return ConfigKey(name: name, kind: .choice(all), help: help, get: { $0[keyPath: path].rawValue },
              set: { $0[keyPath: path] = E(rawValue: $1)! })
}

/// A validated `floatList` value: nil for `none` (and `auto`).
private func floatList(_ text: String) -> [Float]? {
    text == "none" || text == "auto" ? nil : text.split(separator: ",").map { Float($0.trimmingCharacters(in: .whitespaces))! }
}

/// A validated `colors` value: nil for `none`.
func colorList(_ text: String) -> [[UInt8]]? {
    guard text != "none" else { return nil }
    return text.split(separator: ",").map { item in
        let hex = UInt32(item.trimmingCharacters(in: .whitespaces).dropFirst(), radix: 16)!
        return [UInt8(hex >> 16), UInt8(hex >> 8 & 0xFF), UInt8(hex & 0xFF)]
    }
}

private func hexColor(_ c: [UInt8]) -> String { "#" + c.map { String(format: "%02X", $0) }.joined() }

private func augmentation(_ name: String, _ range: ClosedRange<Float>, _ help: String,
                          _ path: WritableKeyPath<Augmentation, Float>) -> ConfigKey {
    ConfigKey(name: name, kind: .float(range), help: help, get: { formatFloat($0.augmentation[keyPath: path]) },
              set: { $0.augmentation[keyPath: path] = Float($1)! })
}

func formatFloat(_ v: Float) -> String {
    var s = "\(v)"
    if s.hasSuffix(".0") { s.removeLast(2) }
    return s
}

let configKeys: [ConfigKey] = [
    choice("model", "the network (see the README's model table)", \.model),
    int("width", 1...1024, "channels of the first level (the lab: 64; the ResNet stem: 64 in torchvision)", \.width),
    ConfigKey(name: "backbone_depth", kind: .choice(["auto", "18", "34", "50", "101"]),
              help: "ResNet depth of fcn_/deeplabv3_ models; auto = the depth in the model's name",
              get: { $0.backboneDepth.map(String.init) ?? "auto" }, set: { $0.backboneDepth = $1 == "auto" ? nil : Int($1)! }),
    ConfigKey(name: "init_from", kind: .string, help: "safetensors state_dict to start from (e.g. converted torchvision weights), or none",
              get: { $0.initFrom.isEmpty ? "none" : $0.initFrom }, set: { $0.initFrom = $1 == "none" ? "" : $1 }),
    ConfigKey(name: "init_prefix", kind: .string, help: "put before every name of init_from (e.g. backbone. for a plain ResNet checkpoint), or none",
              get: { $0.initPrefix.isEmpty ? "none" : $0.initPrefix }, set: { $0.initPrefix = $1 == "none" ? "" : $1 }),
    ConfigKey(name: "init_strict", kind: .bool, help: "refuse init_from unless it holds exactly the model's tensors",
              get: { String($0.initStrict) }, set: { $0.initStrict = $1 == "true" }),
    ConfigKey(name: "aux_loss", kind: .bool, help: "auxiliary head on layer3: loss weight 0.5 for fcn_/deeplabv3_ (torchvision's), 0.4 for pspnet (semseg's)",
              get: { String($0.auxLoss) }, set: { $0.auxLoss = $1 == "true" }),
    int("in_channels", 1...64, "image channels (1 for shapes, 3 for rgb_shapes)", \.inChannels),
    int("classes", 1...255, "output channels, background included (3 with squares); 1 = one sigmoid channel for the foreground (bce or dice)", \.classes),
    ConfigKey(name: "class_weights", kind: .floatListOrAuto(0...1_000_000),
              help: "cross-entropy weight per class, comma-separated (as F.cross_entropy(weight=)); auto = balanced from the training masks (total / (classes x pixels of the class)); or none",
              get: { $0.classWeightsAuto ? "auto" : $0.classWeights.map { $0.map(formatFloat).joined(separator: ", ") } ?? "none" },
              set: { $0.classWeightsAuto = $1 == "auto"; $0.classWeights = floatList($1) }),
    choice("loss", "bce (on one-hot channels, as the lab) | ce | dice | bce+dice", \.loss),
    choice("data", "shapes (synthetic grey discs) | rgb_shapes (tf_unet colour map) | npy (images_npy + masks_npy) | folder (data_dir)", \.data),
    ConfigKey(name: "data_dir", kind: .string, help: "data folder: a directory with images/ and masks/ (PNG, paired by name) and optionally val/, or none",
              get: { $0.dataDir.isEmpty ? "none" : $0.dataDir }, set: { $0.dataDir = $1 == "none" ? "" : $1 }),
    ConfigKey(name: "images_dir", kind: .string, help: "data folder: the images' directory, when not data_dir/images (give masks_dir too), or none",
              get: { $0.imagesDir.isEmpty ? "none" : $0.imagesDir }, set: { $0.imagesDir = $1 == "none" ? "" : $1 }),
    ConfigKey(name: "masks_dir", kind: .string, help: "data folder: the masks' directory, when not data_dir/masks, or none",
              get: { $0.masksDir.isEmpty ? "none" : $0.masksDir }, set: { $0.masksDir = $1 == "none" ? "" : $1 }),
    ConfigKey(name: "ignore_index", kind: .intOr("none", 0...65535),
              help: "data folder: the mask value of unlabelled pixels (PASCAL VOC: 255), left out of loss and metrics; none = every value is a class",
              get: { $0.ignoreIndex.map(String.init) ?? "none" }, set: { $0.ignoreIndex = $1 == "none" ? nil : Int($1)! }),
    ConfigKey(name: "class_colors", kind: .colors(single: false),
              help: "data folder: colour masks: the #RRGGBB colour of each class in order (also predict's mask.png colours), or none",
              get: { $0.classColors.map { $0.map(hexColor).joined(separator: ", ") } ?? "none" }, set: { $0.classColors = colorList($1) }),
    ConfigKey(name: "ignore_color", kind: .colors(single: true), help: "data folder: the #RRGGBB colour of unlabelled pixels in colour masks, or none",
              get: { $0.ignoreColor.map(hexColor) ?? "none" }, set: { $0.ignoreColor = colorList($1)?.first }),
    ConfigKey(name: "resize", kind: .resize,
              help: "how images are resized for the model: none (their own size, the default), HxW (e.g. 128x128) or shorter:N (shorter side N, aspect kept); evaluation and predict resize the probabilities back, so masks are scored and written at their own size",
              get: { $0.resize.text }, set: { $0.resize = ResizeRule($1)! }),
    ConfigKey(name: "input_scaling", kind: .choice(["auto"] + InputScaling.allCases.map(\.rawValue)),
              help: "how 8-bit pixels become inputs: min_max (each image stretched to 0..1) | divide_255 | auto (min_max for data: shapes, else divide_255)",
              get: { $0.inputScalingChoice?.rawValue ?? "auto" }, set: { $0.inputScalingChoice = InputScaling(rawValue: $1) }),
    ConfigKey(name: "tta", kind: .choice(["none", "flip"]),
              help: "test-time augmentation of validation, eval and predict: flip = the mean of the 4 mirrored predictions (nnU-Net's mirroring)",
              get: { $0.ttaFlip ? "flip" : "none" }, set: { $0.ttaFlip = $1 == "flip" }),
    ConfigKey(name: "mask_255", kind: .choice(["auto", "class_1", "ignore"]),
              help: "data folder: what 255 means in grey masks: auto = decided once from all masks (class_1 when every mask holds only 0 and 255 and classes <= 2, else ignore) and recorded in the run's config | class_1 | ignore (the ignore_index)",
              get: { $0.whiteIsForeground.map { $0 ? "class_1" : "ignore" } ?? "auto" },
              set: { $0.whiteIsForeground = $1 == "auto" ? nil : $1 == "class_1" }),
    ConfigKey(name: "flip_horizontal", kind: .bool, help: "augmentation: flip training samples left-right with probability 0.5",
              get: { String($0.augmentation.flipHorizontal) }, set: { $0.augmentation.flipHorizontal = $1 == "true" }),
    ConfigKey(name: "flip_vertical", kind: .bool, help: "augmentation: flip training samples upside down with probability 0.5",
              get: { String($0.augmentation.flipVertical) }, set: { $0.augmentation.flipVertical = $1 == "true" }),
    augmentation("scale_min", 0.1...10, "augmentation: smallest random zoom factor (1 = none)", \.scaleMin),
    augmentation("scale_max", 0.1...10, "augmentation: largest random zoom factor (1 = none)", \.scaleMax),
    augmentation("rotate", 0...180, "augmentation: largest random rotation either way, in degrees", \.rotation),
    augmentation("brightness", 0...1, "augmentation: largest brightness shift either way (images in 0..1)", \.brightness),
    augmentation("contrast", 0...1, "augmentation: largest contrast change either way (factor 1 ± contrast)", \.contrast),
    augmentation("gaussian_noise", 0...1, "augmentation: standard deviation of noise added to the images (in 0..1)", \.noise),
    ConfigKey(name: "crop", kind: .intOr("none", 1...8192),
              help: "training samples are random crops of this side (images smaller than it padded, the mask ignored there); needed when the images come in several sizes; validation always scores whole images; none = whole images",
              get: { $0.augmentation.crop.map(String.init) ?? "none" }, set: { $0.augmentation.crop = $1 == "none" ? nil : Int($1)! }),
    ConfigKey(name: "normalize_mean", kind: .floatListOrAuto(-1000...1000),
              help: "per-channel mean subtracted from [0, 1] inputs (torchvision: 0.485, 0.456, 0.406), or none",
              get: { $0.normalizeAuto ? "auto" : $0.normalizeMean.map { $0.map(formatFloat).joined(separator: ", ") } ?? "none" },
              set: { $0.normalizeAuto = $1 == "auto"; $0.normalizeMean = floatList($1) }),
    ConfigKey(name: "normalize_std", kind: .floatListOrAuto(0...1000),
              help: "per-channel std the inputs are divided by (torchvision: 0.229, 0.224, 0.225), or none",
              get: { $0.normalizeAuto ? "auto" : $0.normalizeStd.map { $0.map(formatFloat).joined(separator: ", ") } ?? "none" },
              set: { $0.normalizeAuto = $1 == "auto"; $0.normalizeStd = floatList($1) }),
    ConfigKey(name: "images_npy", kind: .string, help: "data npy: images (N, H, W) or (N, H, W, C), uint8 or float, or none",
              get: { $0.imagesNPY.isEmpty ? "none" : $0.imagesNPY }, set: { $0.imagesNPY = $1 == "none" ? "" : $1 }),
    ConfigKey(name: "masks_npy", kind: .string, help: "data npy: masks (N, H, W) class indices or (N, H, W, K) one-hot, or none",
              get: { $0.masksNPY.isEmpty ? "none" : $0.masksNPY }, set: { $0.masksNPY = $1 == "none" ? "" : $1 }),
    float("val_fraction", 0...0.9, "data npy: share of the samples held out for validation (seeded)", \.valFraction),
    choice("onehot_background", "data npy: the one-hot channel that is the background (class 0): last (M2NIST) | first", \.onehotBackground),
    int("image_size", 1...8192, "synthetic data (shapes, rgb_shapes): image side in pixels (file data keeps its own size; see resize)", \.imageSize),
    int("discs", 0...1000, "discs per image", \.discs),
    int("radius_min", 1...4096, "smallest disc radius (inclusive)", \.radiusMin),
    int("radius_max", 2...4096, "largest disc radius (exclusive)", \.radiusMax),
    ConfigKey(name: "border", kind: .intOr("auto", 0...4096), help: "disc centres kept this far from the edges; auto = image_size * 20 / 128",
              get: { $0.border.map(String.init) ?? "auto" }, set: { $0.border = $1 == "auto" ? nil : Int($1)! }),
    float("noise", 0...10_000, "standard deviation of the Gaussian noise (grey levels 1..255)", \.noise),
    ConfigKey(name: "squares", kind: .bool, help: "add squares as a third class",
              get: { String($0.squares) }, set: { $0.squares = $1 == "true" }),
    choice("optimizer", "sgd | adam | adamw", \.optimizer),
    float("lr", Float.leastNonzeroMagnitude...10, "learning rate", \.lr),
    float("momentum", 0...0.9999, "SGD momentum", \.momentum),
    float("weight_decay", 0...1, "weight decay (decoupled for adamw)", \.weightDecay),
    float("beta1", 0...0.9999, "Adam beta1", \.beta1),
    float("beta2", 0...0.99999, "Adam beta2", \.beta2),
    choice("schedule", "learning-rate schedule: constant | step | cosine", \.schedule),
    int("step_size", 1...10_000_000, "steps between decays of the step schedule", \.stepSize),
    float("gamma", 0...1, "decay factor of the step schedule", \.gamma),
    float("min_lr", 0...10, "final learning rate of the cosine schedule", \.minLR),
    int("warmup_steps", 0...10_000_000, "linear warm-up steps", \.warmupSteps),
    int("epochs", 1...1_000_000, "epochs", \.epochs),
    int("steps_per_epoch", 1...10_000_000, "optimizer steps per epoch", \.stepsPerEpoch),
    int("batch_size", 1...100_000, "images per step (the global batch)", \.batchSize),
    int("val_images", 1...1_000_000, "validation images (a fixed set, separate from training)", \.valImages),
    int("eval_every", 0...10_000_000, "evaluate every N steps; 0 = after each epoch", \.evalEvery),
    int("log_every", 1...10_000_000, "log the training loss every N steps", \.logEvery),
    int("seed", 0...Int(Int32.max), "seed of the weights and the data", \.seed),
    int("threads", 0...1024, "worker threads; 0 = all cores available", \.threads),
    choice("device", "where each rank computes: auto (its GPU when one is usable, else the CPU) | cpu | cuda", \.device),
    ConfigKey(name: "share_gpu", kind: .bool, help: "let ranks share a GPU when a node has more ranks than GPUs",
              get: { String($0.shareGPU) }, set: { $0.shareGPU = $1 == "true" }),
    ConfigKey(name: "checkpoint_dir", kind: .string, help: "run directory: config, metrics, pictures and checkpoints",
              get: { $0.checkpointDir }, set: { $0.checkpointDir = $1 }),
    int("checkpoint_every", 0...10_000_000, "checkpoint every N steps; 0 = after each epoch", \.checkpointEvery),
    int("keep_checkpoints", 1...1000, "how many recent checkpoints to keep (the best is kept too)", \.keepCheckpoints),
    ConfigKey(name: "tensorboard", kind: .bool, help: "also write TensorBoard event files (scalars and a prediction panel per evaluation) into checkpoint_dir",
              get: { String($0.tensorboard) }, set: { $0.tensorboard = $1 == "true" }),
    ConfigKey(name: "bn_momentum", kind: .floatOr("auto", 0.0001...1),
              help: "batch norm's running-statistics momentum in training; auto = each layer's own (PyTorch's 0.1, torchvision's MobileNetV3 0.01)",
              get: { $0.batchNormMomentum.map(formatFloat) ?? "auto" }, set: { $0.batchNormMomentum = $1 == "auto" ? nil : Float($1)! }),
    ConfigKey(name: "sync_bn", kind: .bool, help: "batch-norm statistics over the global batch (all ranks)",
              get: { String($0.syncBN) }, set: { $0.syncBN = $1 == "true" }),
    int("micro_batch", 0...100_000, "images per forward/backward on a rank (gradient accumulation); 0 = whole slice", \.microBatch),
    float("bucket_mb", 0.001...1024, "gradient all-reduce bucket size in MiB", \.bucketMB),
    float("collective_timeout", 1...86_400, "seconds to wait in a collective before declaring a rank dead", \.collectiveTimeout),
]

extension ConfigKey.Kind {
    /// The values a key takes, in words.
    var range: String {
        switch self {
        case let .int(r): return "\(r.lowerBound)...\(r.upperBound)"
        case let .float(r): return "\(formatFloat(r.lowerBound))...\(formatFloat(r.upperBound))"
        case let .choice(options): return options.joined(separator: " | ")
        case .bool: return "true | false"
        case .string: return "text"
        case let .intOr(word, r): return "\(word) | \(r.lowerBound)...\(r.upperBound)"
        case let .floatOr(word, r): return "\(word) | \(formatFloat(r.lowerBound))...\(formatFloat(r.upperBound))"
        case let .floatList(r): return "none | numbers in \(formatFloat(r.lowerBound))...\(formatFloat(r.upperBound)), comma-separated"
        case let .floatListOrAuto(r): return "none | auto | numbers in \(formatFloat(r.lowerBound))...\(formatFloat(r.upperBound)), comma-separated"
        case let .colors(single): return single ? "none | #RRGGBB" : "none | #RRGGBB colours, comma-separated"
        case .resize: return "none | HxW | shorter:N"
        }
    }
}

extension TrainingConfig {
    /// Every key as a recipe line with its value here, followed by its range and meaning.
    public static func documented(_ config: TrainingConfig) -> String {
        configKeys.map { "\($0.name): \($0.get(config))    # \($0.kind.range) — \($0.help)" }.joined(separator: "\n")
    }
}
