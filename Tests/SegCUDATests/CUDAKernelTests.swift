import XCTest
import Foundation
import SegCore
@testable import SegCUDA
import SegTestSupport

/// The GPU path's parts that need no GPU: the CUDA libraries are loaded with dlopen (a machine
/// without them gets a clear error, never a crash), and every kernel of `CUDAKernelSource`
/// compiles with NVRTC for the H100's and the A100's architectures. NVRTC needs no GPU: CI
/// installs PyPI's nvidia-cuda-nvrtc-cu12; where it is missing the check is skipped, saying why.
final class CUDAKernelTests: XCTestCase {
    func testEveryKernelCompilesWithNVRTC() throws {
        CUDATesting.locateNVRTC()
        let nvrtc: NVRTC
        switch NVRTC.shared {
        case let .success(loaded): nvrtc = loaded
        case let .failure(error):
            throw XCTSkip("CUDA kernel compile check did not run: \(error)")
        }
        for architecture in ["compute_90", "compute_80"] {
            let ptx = try nvrtc.compile(CUDAKernelSource.source, name: "segdist_kernels", architecture: architecture)
            for entry in CUDAKernelSource.entryPoints {
                XCTAssertTrue(ptx.contains(".entry \(entry)("), "\(entry) missing from the PTX for \(architecture)")
            }
            let entries = ptx.components(separatedBy: ".entry ").count - 1
            XCTAssertEqual(entries, CUDAKernelSource.entryPoints.count, "every kernel is listed in entryPoints")
        }
        print("CUDA kernels: \(CUDAKernelSource.entryPoints.count) entry points compiled by NVRTC \(nvrtc.version) for compute_90 and compute_80")
    }

    /// A compile error comes back with NVRTC's log, naming the line.
    func testACompileErrorCarriesNVRTCsLog() throws {
        CUDATesting.locateNVRTC()
        guard case let .success(nvrtc) = NVRTC.shared else {
            throw XCTSkip("NVRTC error-log check did not run: no NVRTC here")
        }
        XCTAssertThrowsError(try nvrtc.compile("extern \"C\" __global__ void k() { undeclared = 1; }", name: "broken",
                                               architecture: "compute_90")) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("broken") && text.contains("undeclared"), text)
        }
    }

    /// The cache returns what was compiled, keyed by source and architecture.
    func testCompiledKernelsAreCached() throws {
        CUDATesting.locateNVRTC()
        guard case let .success(nvrtc) = NVRTC.shared else {
            throw XCTSkip("NVRTC cache check did not run: no NVRTC here")
        }
        let dir = NSTemporaryDirectory() + "segdist-nvrtc-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let source = "extern \"C\" __global__ void twice(float *x) { x[threadIdx.x] *= 2; }"
        let first = try nvrtc.compileCached(source, name: "twice", architecture: "compute_90", directory: dir)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir)
        XCTAssertEqual(files.count, 1)
        XCTAssertTrue(files[0].hasPrefix("twice-compute_90-") && files[0].hasSuffix(".ptx"), files[0])
        XCTAssertEqual(try nvrtc.compileCached(source, name: "twice", architecture: "compute_90", directory: dir), first)
        _ = try nvrtc.compileCached(source, name: "twice", architecture: "compute_80", directory: dir)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).count, 2)
    }

    /// Without an NVIDIA driver the driver is an error that says so; with one, its GPUs are listed.
    func testTheDriverLoadsOrSaysWhyNot() throws {
        switch CUDADriver.shared {
        case let .failure(error):
            XCTAssertTrue("\(error)".contains("libcuda") || "\(error)".contains("cuInit"), "\(error)")
            throw XCTSkip("CUDA device check needs a GPU: \(error)")
        case let .success(driver):
            let gpus = try driver.devices()
            print("CUDA devices: \(gpus)")
            XCTAssertFalse(gpus.isEmpty)
        }
    }

    /// The self-check every new GPU backend must pass runs (CPU against itself here, which
    /// checks the harness), and on a GPU, against the GPU.
    /// The self-check passes a backend that computes what the CPU does (through device-labelled
    /// memory, so nothing is compared with itself) and refuses one whose convolution is off.
    func testTheSelfCheckPassesARightBackendAndRefusesAWrongOne() throws {
        let right = DeviceStandIn()
        try CUDASelfCheck.run(right)
        XCTAssertGreaterThan(right.calls, 20, "the ops ran on the stand-in")
        let wrong = DeviceStandIn()
        wrong.convolutionError = 0.05
        XCTAssertThrowsError(try CUDASelfCheck.run(wrong)) {
            XCTAssertTrue("\($0)".contains("self-check: conv2d forward differs from the CPU"), "\($0)")
        }
    }

    func testTheSelfCheckPassesOnTheGPU() throws {
        let gpu = try CUDATesting.backendOrSkip("GPU self-check")
        try CUDASelfCheck.run(gpu)
    }
}
