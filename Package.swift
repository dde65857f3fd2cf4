// swift-tools-version:6.0
import PackageDescription

// Imports flow one way: COpenBLAS <- SegCore (tensors, kernels, losses, optimizers, safetensors)
// <- SegNN (parameters, layers, models) <- segdist (command line).
let release: [SwiftSetting] = [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]

let package = Package(
    name: "segdist",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "segdist", targets: ["segdist"]),
        .library(name: "SegCore", targets: ["SegCore"]),
        .library(name: "SegNN", targets: ["SegNN"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .target(name: "SegCore", dependencies: ["COpenBLAS"], swiftSettings: release),
        .target(name: "SegNN", dependencies: ["SegCore"], swiftSettings: release),
        .executableTarget(name: "segdist", dependencies: [
            "SegCore", "SegNN",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], swiftSettings: release),
        .target(name: "SegTestSupport", dependencies: ["SegCore"], path: "Tests/SegTestSupport"),
        .testTarget(name: "SegCoreTests", dependencies: ["SegCore", "SegTestSupport"]),
        .testTarget(name: "SegNNTests", dependencies: ["SegNN", "SegCore", "SegTestSupport"]),
    ],
    swiftLanguageModes: [.v5]
)
