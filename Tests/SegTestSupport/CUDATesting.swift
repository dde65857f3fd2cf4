import Foundation
#if canImport(XCTest)
import XCTest
#endif
import SegCore
import SegCUDA

/// The GPU for tests that run on one: GPU 0 with segdist's kernels, or why there is none (then
/// such a test is skipped, saying why). NVRTC from PyPI's wheel is found through python3
/// when it is not on the loader's path.
public enum CUDATesting {
    public static let backend: Result<CUDABackend, Error> = {
        locateNVRTC()
        do { return .success(try CUDABackend(ordinal: 0)) } catch { return .failure(error) }
    }()

    #if canImport(XCTest)
    /// The GPU backend, or XCTSkip saying why `what` cannot run here.
    public static func backendOrSkip(_ what: String) throws -> CUDABackend {
        switch backend {
        case let .success(b): return b
        case let .failure(error): throw XCTSkip("\(what) needs a usable GPU: \(error)")
        }
    }
    #endif

    /// Sets SEGDIST_NVRTC to PyPI's libnvrtc when that is where NVRTC is (asking python3 once).
    public static func locateNVRTC() { _ = located }

    private static let located: Bool = {
        guard ProcessInfo.processInfo.environment["SEGDIST_NVRTC"] == nil else { return true }
        let found = Python.run(code: """
            import glob, os, nvidia.cuda_nvrtc as m
            print(sorted(glob.glob(os.path.join(list(m.__path__)[0], 'lib', 'libnvrtc.so.*')))[0])
            """)
        let path = found.output.trimmingCharacters(in: .whitespacesAndNewlines)
        guard found.status == 0, FileManager.default.fileExists(atPath: path) else { return false }
        setenv("SEGDIST_NVRTC", path, 1)
        return true
    }()
}
