// swift-tools-version:6.0
import Foundation
import PackageDescription

// Imports flow one way:
//   COpenBLAS, CSystem <- SegKernels (CPU kernels: convolution, batch norm, pooling, losses, optimizer loops)
//   <- SegCore (tensors and their storage, the Backend protocol and the CPU backend, the autograd tape, optimizers, safetensors)
//   <- SegCUDA (the GPU backend; CCUDA: driver, NVRTC, cuBLAS, cuDNN loaded with dlopen)
//   <- SegNN (parameter store, layers, models);  CPNG <- SegData (datasets, images);
//   CMPI <- SegDist (communicators, gradient buckets, watchdog, launching)
//   <- SegTrain (config, training loop, metrics, checkpoints, prediction, benchmark) <- SegCLI (the `segdist` command).
// Only the kernels are compiled with -Ounchecked: nothing in them parses outside input, and there
// it was measured (segdist bench, UNet w=16, 1 thread, AMD EPYC): 12.6-14.2 images/s against
// 12.5-13.7 with checks, 1-5% in every pair. Parsers (config, safetensors, PNG, command line)
// and everything else keep every check: a validation gap traps instead of becoming undefined.
//
// The kernels are also compiled for the widest vectors of the CPU that builds them (what
// `-march=native` does for C): AVX-512 (as skylake-avx512: F, CD, BW, DQ, VL) or AVX2 + FMA (as
// haswell); Swift's default is SSE2. Measured (UNet w=16, AMD EPYC Zen 4, interleaved):
// 37.3-53.5 -> 46.3-57.4 images/s (+7-10%). `segdist` refuses, with a message, to run on a
// CPU without the instructions its kernels were built for. SEGDIST_KERNELS=generic|avx2|avx512
// at build time overrides the choice (generic: a binary for any x86-64).
let kernelLevel: String = {
    if let chosen = ProcessInfo.processInfo.environment["SEGDIST_KERNELS"] { return chosen }
    #if os(Linux) && arch(x86_64)
    guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
          let line = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return "generic" }
    let flags = Set(line.split(separator: " ").map(String.init))
    if flags.isSuperset(of: ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl", "fma"]) { return "avx512" }
    if flags.isSuperset(of: ["avx2", "fma", "bmi2"]) { return "avx2" }
    #endif
    return "generic"
}()
let kernelCPU: [String: String] = ["avx512": "skylake-avx512", "avx2": "haswell"]
// The level is defined in the kernels (to report it) and in the command (to check the CPU first).
let levelDefine: [SwiftSetting] = kernelCPU[kernelLevel] == nil ? [] : [.define("SEGDIST_KERNELS_\(kernelLevel.uppercased())")]
let kernels: [SwiftSetting] = [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]
    + (kernelCPU[kernelLevel].map { [.unsafeFlags(["-target-cpu", $0])] } ?? []) + levelDefine

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
        .systemLibrary(name: "COpenBLAS"),   // OpenBLAS is dlopened at run time (libopenblas0)
        .systemLibrary(name: "CSystem"),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        // TurboJPEG, loaded with dlopen when a JPEG is read: no build-time dependency
        .systemLibrary(name: "CJPEG"),
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])]),
        // CUDA driver, NVRTC and cuBLAS, loaded with dlopen when a GPU is asked for: no build-time dependency
        .systemLibrary(name: "CCUDA"),
        .target(name: "SegKernels", dependencies: ["COpenBLAS", "CSystem"], swiftSettings: kernels),
        .target(name: "SegCore", dependencies: ["SegKernels"]),
        // the GPU backend: the only target that imports CCUDA
        .target(name: "SegCUDA", dependencies: ["SegCore", "CCUDA"]),
        .target(name: "SegNN", dependencies: ["SegCore"]),
        .target(name: "SegData", dependencies: ["SegCore", "CPNG", "CJPEG"]),
        .target(name: "SegDist", dependencies: ["SegCore", "CMPI"]),
        .target(name: "SegTrain", dependencies: ["SegCore", "SegCUDA", "SegNN", "SegData", "SegDist"]),
        .executableTarget(name: "SegCLI", dependencies: [
            "SegCore", "SegCUDA", "SegNN", "SegData", "SegDist", "SegTrain", "CSystem",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], swiftSettings: levelDefine),
        .target(name: "SegTestSupport", dependencies: ["SegCore", "SegCUDA", "SegNN", "CPNG"], path: "Tests/SegTestSupport"),
        .testTarget(name: "SegCoreTests", dependencies: ["SegCore", "SegTestSupport"]),
        .testTarget(name: "SegCUDATests", dependencies: ["SegCUDA", "SegCore", "SegTestSupport"]),
        .testTarget(name: "SegNNTests", dependencies: ["SegNN", "SegCore", "SegTestSupport"]),
        .testTarget(name: "SegDataTests", dependencies: ["SegData", "SegCore", "CPNG", "SegTestSupport"]),
        .testTarget(name: "SegDistTests", dependencies: ["SegDist", "SegTrain", "SegNN", "SegCore", "SegTestSupport"]),
        .testTarget(name: "SegTrainTests", dependencies: ["SegTrain", "SegNN", "SegCore", "SegCUDA", "SegData", "SegDist", "SegTestSupport", "CPNG"]),
    ],
    swiftLanguageModes: [.v5]
)
