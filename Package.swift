// swift-tools-version:6.0
import PackageDescription

// Imports flow one way: COpenBLAS <- SegCore (tensors, kernels, losses, optimizers, safetensors)
// <- SegNN (parameters, layers, models); CPNG <- SegData (synthetic data, images);
// CMPI <- SegDist (communicators, gradient buckets, watchdog)
// <- SegTrain (config, training loop, metrics, checkpoints, benchmark) <- segdist (command line).
let release: [SwiftSetting] = [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]

let package = Package(
    name: "segdist",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "segdist", targets: ["segdist"]),
        .library(name: "SegCore", targets: ["SegCore"]),
        .library(name: "SegNN", targets: ["SegNN"]),
        .library(name: "SegTrain", targets: ["SegTrain"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        .target(name: "SegCore", dependencies: ["COpenBLAS"], swiftSettings: release),
        .target(name: "SegData", dependencies: ["SegCore", "CPNG"], swiftSettings: release),
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])]),
        .target(name: "SegDist", dependencies: ["SegCore", "CMPI"], swiftSettings: release),
        .target(name: "SegNN", dependencies: ["SegCore"], swiftSettings: release),
        .target(name: "SegTrain", dependencies: ["SegCore", "SegNN", "SegData", "SegDist"], swiftSettings: release),
        .executableTarget(name: "segdist", dependencies: [
            "SegCore", "SegNN", "SegData", "SegDist", "SegTrain",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], swiftSettings: release),
        .target(name: "SegTestSupport", dependencies: ["SegCore"], path: "Tests/SegTestSupport"),
        .testTarget(name: "SegCoreTests", dependencies: ["SegCore", "SegTestSupport"]),
        .testTarget(name: "SegNNTests", dependencies: ["SegNN", "SegCore", "SegTestSupport"]),
        .testTarget(name: "SegDataTests", dependencies: ["SegData", "SegCore"]),
        .testTarget(name: "SegTrainTests", dependencies: ["SegTrain", "SegNN", "SegCore", "SegData", "SegDist"]),
    ],
    swiftLanguageModes: [.v5]
)
