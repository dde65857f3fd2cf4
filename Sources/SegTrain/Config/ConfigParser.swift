import Foundation
import SegData
import SegNN

/// A config problem, reported as `FILE:LINE: key: problem`.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public let source: String
    public let line: Int?
    public let key: String?
    public let problem: String
    public var description: String {
        var s = source
        if let line { s += ":\(line)" }
        s += ": "
        if let key { s += "\(key): " }
        return s + problem
    }
}

extension TrainingConfig {
    /// Reads a YAML-lite file: `key: value` lines, `#` comments, blank lines.
    public static func load(path: String, checkingData: Bool = true) throws -> TrainingConfig {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ConfigError(source: path, line: nil, key: nil,
                              problem: FileManager.default.fileExists(atPath: path) ? "cannot be read as UTF-8 text" : "no such file")
        }
        var config = TrainingConfig()
        try config.apply(text: text, source: path, checkingData: checkingData)
        return config
    }

    /// A recipe's text on top of the built-in default, checked without its data.
    public static func parsed(_ text: String) throws -> TrainingConfig {
        var config = TrainingConfig()
        try config.apply(text: text, source: "checkpoint", checkingData: false)
        return config
    }

    /// A recipe by path, or, when no such file exists, a shipped recipe by name (`unet.cfg` or
    /// `unet`, as in configs/): the binary carries them, so they work from any directory.
    public static func load(recipe: String, checkingData: Bool = true) throws -> TrainingConfig {
        var config = TrainingConfig()
        try config.apply(recipe: recipe, checkingData: checkingData)
        return config
    }

    /// `load(recipe:)`'s keys applied on top of this config.
    public mutating func apply(recipe: String, checkingData: Bool = true) throws {
        if FileManager.default.fileExists(atPath: recipe) || recipe.contains("/") && !recipe.hasPrefix("configs/") {
            guard let text = try? String(contentsOfFile: recipe, encoding: .utf8) else {
                throw ConfigError(source: recipe, line: nil, key: nil,
                                  problem: FileManager.default.fileExists(atPath: recipe) ? "cannot be read as UTF-8 text" : "no such file")
            }
            return try apply(text: text, source: recipe, checkingData: checkingData)
        }
        let name = String(recipe.split(separator: "/").last ?? "")
        guard let text = shippedRecipes[name] ?? shippedRecipes[name + ".cfg"] else {
            throw ConfigError(source: recipe, line: nil, key: nil,
                              problem: "no such file, nor a shipped recipe (those are: \(shippedRecipes.keys.sorted().joined(separator: ", ")))")
        }
        try apply(text: text + "\n", source: "\(name.hasSuffix(".cfg") ? name : name + ".cfg") (shipped recipe)", checkingData: checkingData)
    }

    /// Applies every `key: value` line of `text` on top of this config, then checks the whole.
    public mutating func apply(text: String, source: String, checkingData: Bool = true) throws {
        var seen: [String: Int] = [:]
        guard text.contains(where: { !$0.isWhitespace }) else {
            throw ConfigError(source: source, line: nil, key: nil, problem: "is empty; write the keys to change (see `segdist config`), or leave out --config for the built-in recipe")
        }
        // lines end in \n, \r\n (one Character in Swift) or \r
        for (i, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: { $0.isNewline }).enumerated() {
            let line = i + 1
            var content = Substring(raw)
            if let hash = commentStart(content) { content = content[..<hash] }
            let trimmed = content.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            guard let colon = trimmed.firstIndex(of: ":") else {
                throw ConfigError(source: source, line: line, key: nil, problem: "expected 'key: value', got '\(abbreviated(trimmed))'")
            }
            let key = trimmed[..<colon].trimmingCharacters(in: .whitespaces)
            let value = trimmed[trimmed.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            if let first = seen[key] {
                throw ConfigError(source: source, line: line, key: key, problem: "set twice (first on line \(first))")
            }
            seen[key] = line
            try set(key, value, source: source, line: line)
        }
        try validate(source: source, checkingData: checkingData)
    }

    /// Applies one `key=value` override (from `--set`).
    public mutating func override(_ assignment: String) throws {
        guard let eq = assignment.firstIndex(of: "=") else {
            throw ConfigError(source: "--set", line: nil, key: nil, problem: "expected key=value, got '\(abbreviated(assignment))'")
        }
        try set(String(assignment[..<eq]).trimmingCharacters(in: .whitespaces),
                String(assignment[assignment.index(after: eq)...]).trimmingCharacters(in: .whitespaces),
                source: "--set", line: nil)
    }

    mutating func set(_ key: String, _ rawValue: String, source: String, line: Int?) throws {
        func fail(_ problem: String) -> ConfigError { ConfigError(source: source, line: line, key: key, problem: problem) }
        guard let spec = configKeys.first(where: { $0.name == key }) else {
            let suggestion = closestKey(to: key).map { " (did you mean '\($0)'?)" } ?? ""
            throw ConfigError(source: source, line: line, key: nil, problem: "unknown key '\(abbreviated(key))'\(suggestion)")
        }
        var value = rawValue
        if value.count >= 2, let f = value.first, f == "\"" || f == "'", value.last == f { value = String(value.dropFirst().dropLast()) }
        guard !value.isEmpty else { throw fail("has no value") }
        switch spec.kind {
        case let .int(range):
            guard let v = Int(value) else { throw fail("expected a whole number, got '\(abbreviated(value))'") }
            guard range.contains(v) else { throw fail("must be in \(range.lowerBound)...\(range.upperBound), got \(v)") }
        case let .intOr(word, range):
            if value != word {
                guard let v = Int(value) else { throw fail("expected a whole number or '\(word)', got '\(abbreviated(value))'") }
                guard range.contains(v) else { throw fail("must be in \(range.lowerBound)...\(range.upperBound), got \(v)") }
            }
        case let .floatOr(word, range):
            if value != word {
                guard let v = Float(value), v.isFinite else { throw fail("expected a number or '\(word)', got '\(abbreviated(value))'") }
                guard range.contains(v) else { throw fail("must be in \(formatFloat(range.lowerBound))...\(formatFloat(range.upperBound)), got \(value)") }
            }
        case let .float(range):
            guard let v = Float(value), v.isFinite else { throw fail("expected a number, got '\(abbreviated(value))'") }
            guard range.contains(v) else {
                throw fail(range.lowerBound > 0 && v <= 0 ? "must be positive, got \(value)"
                           : "must be in \(formatFloat(range.lowerBound))...\(formatFloat(range.upperBound)), got \(value)")
            }
        case let .choice(options):
            guard options.contains(value) else { throw fail("must be one of \(options.joined(separator: ", ")), got '\(abbreviated(value))'") }
        case let .floatList(range), let .floatListOrAuto(range):
            if case .floatListOrAuto = spec.kind, value == "auto" { break }
            if value != "none" {
                for item in value.split(separator: ",", omittingEmptySubsequences: false) {
                    let text = item.trimmingCharacters(in: .whitespaces)
                    guard let v = Float(text), v.isFinite else { throw fail("expected comma-separated numbers or none, got '\(text)'") }
                    guard range.contains(v) else { throw fail("must be in \(formatFloat(range.lowerBound))...\(formatFloat(range.upperBound)), got \(text)") }
                }
            }
        case let .colors(single):
            if value != "none" {
                let items = value.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
                if single && items.count != 1 { throw fail("expected one #RRGGBB colour or none, got '\(abbreviated(value))'") }
                for item in items where !(item.count == 7 && item.first == "#" && UInt32(item.dropFirst(), radix: 16) != nil) {
                    throw fail("expected #RRGGBB colours (comma-separated) or none, got '\(abbreviated(item))'")
                }
            }
        case .resize:
            guard ResizeRule(value) != nil else { throw fail("expected none, HxW (e.g. 128x128) or shorter:N, got '\(abbreviated(value))'") }
        case .bool:
            guard value == "true" || value == "false" else { throw fail("expected true or false, got '\(abbreviated(value))'") }
        case .string:
            break
        }
        spec.set(&self, value)
    }

    /// Checks that hold between keys. Without `checkingData` (predicting on your own images) the
    /// keys that tie the model to the training data (channels, classes, image size, arrays) are
    /// not held against the data.
    public func validate(source: String, checkingData: Bool = true) throws {
        func fail(_ key: String, _ problem: String) -> ConfigError { ConfigError(source: source, line: nil, key: key, problem: problem) }
        let factor = 1 << model.downsamplings
        for (key, values) in [("normalize_mean", normalizeMean), ("normalize_std", normalizeStd)] {
            if let values, values.count != inChannels {
                throw fail(key, "needs one value per input channel (\(inChannels)), got \(values.count)")
            }
        }
        if let std = normalizeStd, std.contains(where: { $0 <= 0 }) { throw fail("normalize_std", "must be positive") }
        if !checkingData {
        } else if data == .npy {
            try validateArrays(fail)
        } else if data == .folder {
            var isDirectory: ObjCBool = false
            if imagesDir.isEmpty != masksDir.isEmpty { throw fail(imagesDir.isEmpty ? "images_dir" : "masks_dir", "images_dir and masks_dir go together") }
            if dataDir.isEmpty && imagesDir.isEmpty {
                throw fail("data_dir", "data: folder needs data_dir, the directory holding images/ and masks/ (or images_dir and masks_dir)")
            }
            for (key, dir) in [("data_dir", dataDir), ("images_dir", imagesDir), ("masks_dir", masksDir)] where !dir.isEmpty {
                guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDirectory), isDirectory.boolValue else {
                    throw fail(key, "no such directory: \(dir)")
                }
            }
        } else {
            let needed = data == .rgb_shapes ? 3 : 1
            if inChannels != needed { throw fail("in_channels", "data \(data.rawValue) has \(needed) channel(s), but in_channels is \(inChannels)") }
            let labelled = squares ? 3 : 2
            if classes == 1 {
                if squares { throw fail("classes", "1 scores a single foreground class; with squares the data has 3 classes") }
            } else if classes != labelled {
                throw fail("classes", "the synthetic data has \(labelled) classes (background, discs\(squares ? ", squares" : "")), but classes is \(classes)")
            }
            if imageSize < factor {
                throw fail("image_size", "\(model.rawValue) halves the image \(model.downsamplings) times, so it needs at least \(factor) pixels, got \(imageSize)")
            }
        }
        if let colours = classColors {
            if colours.count != max(classes, 2) { throw fail("class_colors", "needs one colour per class (\(max(classes, 2))), got \(colours.count)") }
            if Set(colours.map { $0.map(String.init).joined(separator: ",") }).count != colours.count { throw fail("class_colors", "holds a colour twice") }
        }
        if let ignoreIndex, ignoreIndex < max(classes, 2) {
            throw fail("ignore_index", "\(ignoreIndex) is one of the \(max(classes, 2)) classes; pick a value above them (255) or none")
        }
        if let size = resize.fixedSize, min(size.height, size.width) < factor {
            throw fail("resize", "\(model.rawValue) halves the image \(model.downsamplings) times, so it needs at least \(factor) pixels, got \(resize.text)")
        }
        if case let .shorterSide(n) = resize, n < factor {
            throw fail("resize", "\(model.rawValue) halves the image \(model.downsamplings) times, so it needs at least \(factor) pixels, got \(resize.text)")
        }
        if let crop = augmentation.crop, crop < factor {
            throw fail("crop", "\(model.rawValue) halves the image \(model.downsamplings) times, so it needs at least \(factor) pixels, got \(crop)")
        }
        if augmentation.scaleMin > augmentation.scaleMax {
            throw fail("scale_min", "must not be above scale_max (\(formatFloat(augmentation.scaleMax))), got \(formatFloat(augmentation.scaleMin))")
        }
        if classWeightsAuto && loss != .ce { throw fail("class_weights", "weights the cross-entropy loss (loss: ce), not \(loss.rawValue)") }
        if radiusMin >= radiusMax { throw fail("radius_min", "must be below radius_max (\(radiusMax)), got \(radiusMin)") }
        if loss == .ce && classes < 2 { throw fail("loss", "ce needs at least 2 classes") }
        if checkpointDir.isEmpty { throw fail("checkpoint_dir", "must not be empty") }
        if let classWeights {
            if loss != .ce { throw fail("class_weights", "weights the cross-entropy loss (loss: ce), not \(loss.rawValue)") }
            if classWeights.count != classes { throw fail("class_weights", "needs one weight per class (\(classes)), got \(classWeights.count)") }
            if !classWeights.contains(where: { $0 > 0 }) { throw fail("class_weights", "needs at least one positive weight") }
        }
        if !initFrom.isEmpty && !FileManager.default.fileExists(atPath: initFrom) {
            throw fail("init_from", "no such file: \(initFrom)")
        }
        if model.defaultBackboneDepth == nil && backboneDepth != nil {
            throw fail("backbone_depth", "applies to the ResNet models (fcn_resnet*, deeplabv3_resnet*, pspnet, deeplabv3plus), not \(model.rawValue)")
        }
        if !model.takesAuxiliaryHead && auxLoss {
            throw fail("aux_loss", "applies to the models with an auxiliary head (fcn_*, deeplabv3_resnet*, deeplabv3_mobilenet_v3_large, pspnet), not \(model.rawValue)")
        }
    }

    /// `data: npy`: both arrays exist and agree with in_channels, classes and the model's
    /// smallest input (only their headers are read here).
    func validateArrays(_ fail: (String, String) -> ConfigError) throws {
        if imagesNPY.isEmpty { throw fail("images_npy", "data: npy needs the images array") }
        if masksNPY.isEmpty { throw fail("masks_npy", "data: npy needs the masks array") }
        let images: NPYArray, masks: NPYArray
        do { images = try NPYArray(path: imagesNPY) } catch { throw fail("images_npy", "\(error)") }
        do { masks = try NPYArray(path: masksNPY) } catch { throw fail("masks_npy", "\(error)") }
        let channels = images.shape.count == 4 ? images.shape[3] : 1
        if images.shape.count >= 3 && inChannels != channels {
            throw fail("in_channels", "\(imagesNPY) has \(channels) channel(s), but in_channels is \(inChannels)")
        }
        if masks.shape.count == 4 && masks.shape[3] != classes {
            throw fail("classes", "\(masksNPY) is one-hot over \(masks.shape[3]) classes, but classes is \(classes)")
        }
        let factor = 1 << model.downsamplings
        if images.shape.count >= 3 && min(images.shape[1], images.shape[2]) < factor {
            throw fail("images_npy", "\(model.rawValue) halves the image \(model.downsamplings) times, so it needs at least \(factor) pixels; the images are \(images.shape[1])x\(images.shape[2])")
        }
    }

    /// The `key: value` lines of `keys` only.
    public func rendered(keys: [String]) -> String {
        configKeys.filter { keys.contains($0.name) }.map { "\($0.name): \($0.get(self))" }.joined(separator: "\n")
    }

    /// The effective config as `key: value` lines, in a fixed order (also its identity).
    public func rendered() -> String {
        configKeys.map { "\($0.name): \($0.get(self))" }.joined(separator: "\n") + "\n"
    }
}

/// Where a line's comment starts: the first `#` outside quotes that is not a `#RRGGBB` colour
/// (so `class_colors: #000000, #800000` needs no quotes).
func commentStart(_ line: Substring) -> Substring.Index? {
    var quote: Character?
    var i = line.startIndex
    while i < line.endIndex {
        let c = line[i]
        if let q = quote {
            if c == q { quote = nil }
        } else if c == "\"" || c == "'" {
            quote = c
        } else if c == "#" {
            let hex = line[line.index(after: i)...].prefix { $0.isHexDigit }
            let after = line.index(i, offsetBy: 1 + hex.count)
            let isColour = hex.count == 6 && (after == line.endIndex || line[after] == "," || line[after].isWhitespace)
            if !isColour { return i }
        }
        i = line.index(after: i)
    }
    return nil
}

/// Names people bring from other tools, mapped to ours.
private let synonyms: [String: String] = [
    "learning_rate": "lr", "lr_schedule": "schedule", "scheduler": "schedule", "batch": "batch_size",
    "size": "image_size", "img_size": "image_size", "num_classes": "classes", "n_classes": "classes",
    "n_channels": "in_channels", "channels": "in_channels", "wd": "weight_decay", "optim": "optimizer",
    "arch": "model", "architecture": "model", "sigma": "noise", "cnt": "discs", "warmup": "warmup_steps",
    "output_dir": "checkpoint_dir", "run_dir": "checkpoint_dir", "save_every": "checkpoint_every",
]

func closestKey(to key: String) -> String? {
    // no key is longer than 20 characters: a long "key" is not a typo worth an edit distance
    guard key.count <= 64 else { return nil }
    if let known = synonyms[key.lowercased()] { return known }
    func distance(_ a: [Character], _ b: [Character]) -> Int {
        var prev = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var cur = [i] + Array(repeating: 0, count: b.count)
            for j in 1...max(b.count, 1) where !b.isEmpty {
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            prev = cur
        }
        return prev[b.count]
    }
    let k = Array(key.lowercased())
    // candidates: every key, and every synonym standing for its key
    let candidates = configKeys.map { ($0.name, $0.name) } + synonyms.map { ($0.key, $0.value) }
    let scored = candidates.map { ($0.1, distance(k, Array($0.0))) }.min { $0.1 < $1.1 }
    guard let (name, d) = scored, d <= max(2, key.count / 3) else {
        return configKeys.first { $0.name.contains(key.lowercased()) || key.lowercased().contains($0.name) }?.name
    }
    return name
}

/// A value or key as an error message shows it: whole when short, else its start and length.
func abbreviated(_ text: String) -> String {
    text.count > 64 ? "\(text.prefix(40))... (\(text.count) characters)" : text
}
