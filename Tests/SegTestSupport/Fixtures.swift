import Foundation
import SegCore

/// The PyTorch reference fixtures in `../shared/fixtures`, found from the repository root
/// (or from `SEGDIST_SHARED` when set).
public enum Fixtures {
    public static var sharedDirectory: String {
        if let env = ProcessInfo.processInfo.environment["SEGDIST_SHARED"] { return env }
        // This file is <root>/Tests/SegTestSupport/Fixtures.swift
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return root.deletingLastPathComponent().appendingPathComponent("shared").path
    }

    public static var referencePath: String { sharedDirectory + "/fixtures/torch-reference.safetensors" }

    nonisolated(unsafe) private static var cached: SafeTensorsFile?

    public static func reference() throws -> SafeTensorsFile {
        if let cached { return cached }
        let file = try SafeTensorsFile(path: referencePath)
        cached = file
        return file
    }

    /// CASE -> its parameters, from the file's `__metadata__["cases"]`.
    public static func cases(_ file: SafeTensorsFile? = nil) throws -> [String: [String: Any]] {
        let file = try file ?? reference()
        guard let text = file.metadata["cases"], let data = text.data(using: .utf8),
              let obj = try JSONSerialization.jsonObject(with: data) as? [String: [String: Any]] else {
            throw SafeTensorsError(path: file.path, problem: "no cases metadata")
        }
        return obj
    }

    /// This repository's `Tests/Fixtures` (torchvision fixtures made by make_model_fixtures.py).
    public static var repositoryFixtures: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures").path
    }

    nonisolated(unsafe) private static var cachedTorchvision: SafeTensorsFile?
    nonisolated(unsafe) private static var cachedMobileNet: SafeTensorsFile?

    /// DeepLabV3+ in segmentation_models_pytorch's layout (make_deeplabv3plus_fixtures.py).
    public static func deepLabV3Plus() throws -> SafeTensorsFile {
        try SafeTensorsFile(path: repositoryFixtures + "/smp-deeplabv3plus.safetensors")
    }

    /// The MobileNetV3 models (make_mobilenet_fixtures.py).
    public static func mobileNet() throws -> SafeTensorsFile {
        if let cachedMobileNet { return cachedMobileNet }
        let file = try SafeTensorsFile(path: repositoryFixtures + "/torchvision-mobilenet.safetensors")
        cachedMobileNet = file
        return file
    }

    public static func torchvision() throws -> SafeTensorsFile {
        if let cachedTorchvision { return cachedTorchvision }
        let file = try SafeTensorsFile(path: repositoryFixtures + "/torchvision-models.safetensors")
        cachedTorchvision = file
        return file
    }
}

/// Collects the largest difference seen per group of cases and prints them, so a test run
/// states how close to PyTorch the core is.
public final class DifferenceReport {
    public private(set) var worst: [String: (Double, String)] = [:]
    public init() {}
    public func record(_ group: String, _ what: String, _ value: Double) {
        if value >= (worst[group]?.0 ?? -1) { worst[group] = (value, what) }
    }
    public func printSummary(title: String) {
        print("== \(title): largest relative difference per group ==")
        for (group, (value, what)) in worst.sorted(by: { $0.key < $1.key }) {
            print(String(format: "  %-26@ %.3e  (%@)", group as NSString, value, what as NSString))
        }
    }
}
