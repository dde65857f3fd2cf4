// swift-tools-version:6.0
import PackageDescription

// Imports flow one way:
//   COpenBLAS, CSystem <- SegKernels (CPU kernels: convolution, batch norm, pooling, losses, optimizer loops)
//   <- SegCore (tensors and their storage, backends, the autograd tape, optimizers, safetensors)
//   <- SegNN (parameter store, layers, models);  CPNG <- SegData (datasets, images);
//   CMPI <- SegDist (communicators, gradient buckets, watchdog, launching)
//   <- SegTrain (config, training loop, metrics, checkpoints, prediction, benchmark) <- SegCLI (the `segdist` command).
// Only the kernels are compiled with -Ounchecked: nothing in them parses outside input, and there
// it was measured (segdist bench, UNet w=16, 1 thread, AMD EPYC): 12.6-14.2 images/s against
// 12.5-13.7 with checks, 1-5% in every pair. Parsers (config, safetensors, PNG, command line)
// and everything else keep every check: a validation gap traps instead of becoming undefined.
let kernels: [SwiftSetting] = [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]

let package = Package(
    name: "segdist",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "segdist", targets: ["SegCLI"]),
        .library(name: "SegCore", targets: ["SegCore"]),
        .library(name: "SegNN", targets: ["SegNN"]),
        .library(name: "SegTrain", targets: ["SegTrain"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CSystem"),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        // TurboJPEG, loaded with dlopen when a JPEG is read: no build-time dependency
        .systemLibrary(name: "CJPEG"),
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])]),
        .target(name: "SegKernels", dependencies: ["COpenBLAS", "CSystem"], swiftSettings: kernels),
        .target(name: "SegCore", dependencies: ["SegKernels"]),
        .target(name: "SegNN", dependencies: ["SegCore"]),
        .target(name: "SegData", dependencies: ["SegCore", "CPNG", "CJPEG"]),
        .target(name: "SegDist", dependencies: ["SegCore", "CMPI"]),
        .target(name: "SegTrain", dependencies: ["SegCore", "SegNN", "SegData", "SegDist"]),
        .executableTarget(name: "SegCLI", dependencies: [
            "SegCore", "SegNN", "SegData", "SegDist", "SegTrain",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .target(name: "SegTestSupport", dependencies: ["SegCore", "CPNG"], path: "Tests/SegTestSupport"),
        .testTarget(name: "SegCoreTests", dependencies: ["SegCore", "SegTestSupport"]),
        .testTarget(name: "SegNNTests", dependencies: ["SegNN", "SegCore", "SegTestSupport"]),
        .testTarget(name: "SegDataTests", dependencies: ["SegData", "SegCore", "CPNG", "SegTestSupport"]),
        .testTarget(name: "SegTrainTests", dependencies: ["SegTrain", "SegNN", "SegCore", "SegData", "SegDist", "SegTestSupport", "CPNG"]),
    ],
    swiftLanguageModes: [.v5]
)
