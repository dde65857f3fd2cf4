import SegCore

/// What loading a state_dict into a model did.
public struct StateDictReport: Equatable, Sendable {
    /// Model tensors that received values.
    public var loaded: [String] = []
    /// Model tensors the file did not have (they keep their initial values).
    public var missing: [String] = []
    /// File tensors the model has no place for (ignored).
    public var unexpected: [String] = []

    public var summary: String {
        func list(_ names: [String]) -> String {
            names.isEmpty ? "none" : names.prefix(8).joined(separator: ", ") + (names.count > 8 ? ", ... (\(names.count))" : "")
        }
        return "loaded \(loaded.count) tensors; missing \(missing.count): \(list(missing)); unexpected \(unexpected.count): \(list(unexpected))"
    }
}

extension ParameterStore {
    /// Loads every tensor of `file` whose name, after `prefix` is put before it, is one of the
    /// model's (PyTorch `load_state_dict(strict=False)`): e.g. a torchvision ResNet's `layer1.0.conv1.weight`
    /// with prefix `backbone.`. Tensors under `optimizer.` (segdist checkpoints) are not model
    /// tensors and are skipped. Throws naming every tensor whose shape differs — before changing
    /// anything — and, when `strict`, every missing or unexpected one.
    @discardableResult
    public func loadStateDict(_ file: SafeTensorsFile, prefix: String = "", strict: Bool = false) throws -> StateDictReport {
        var report = StateDictReport()
        var shapes: [String: [Int]] = [:]
        for s in parameterSlots + bufferSlots { shapes[s.name] = s.shape }
        let counterIndex = Dictionary(uniqueKeysWithValues: counterNames.enumerated().map { ($1, $0) })
        var mismatched: [String] = []
        var floats: [(String, String)] = [], ints: [(String, Int)] = []
        for entry in file.entries where !entry.name.hasPrefix("optimizer.") {
            let name = prefix + entry.name
            if let shape = shapes[name] {
                if entry.shape != shape { mismatched.append("'\(entry.name)' is \(entry.shape) in the file, the model's '\(name)' is \(shape)") }
                else { floats.append((entry.name, name)) }
            } else if let i = counterIndex[name] {
                ints.append((entry.name, i))
            } else {
                report.unexpected.append(entry.name)
            }
        }
        guard mismatched.isEmpty else {
            throw ModelError("\(file.path): \(mismatched.count) tensor(s) have the wrong shape: \(mismatched.prefix(8).joined(separator: "; "))")
        }
        let present = Set(floats.map(\.1))
        report.missing = (parameterSlots + bufferSlots).map(\.name).filter { !present.contains($0) }
        if strict && (!report.missing.isEmpty || !report.unexpected.isEmpty) {
            throw ModelError("\(file.path) does not match the model exactly: \(report.summary)")
        }
        for (source, name) in floats {
            try load(name, try file.tensor(source))
            report.loaded.append(name)
        }
        for (source, i) in ints { counters[i] = try file.int64s(source).first ?? 0 }
        return report
    }
}
