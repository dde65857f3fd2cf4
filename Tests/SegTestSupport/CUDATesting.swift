import Foundation
import SegCore

/// The GPU for tests that run on one: GPU 0 with segdist's kernels, or why there is none (then
/// such a test prints that it did not run). NVRTC from PyPI's wheel is found through python3
/// when it is not on the loader's path.
public enum CUDATesting {
    public static let backend: Result<CUDABackend, Error> = {
        locateNVRTC()
        do { return .success(try CUDABackend(ordinal: 0)) } catch { return .failure(error) }
    }()

    /// The GPU backend, or nil after printing "`what` did not run: why".
    public static func backendOrSkip(_ what: String) -> CUDABackend? {
        switch backend {
        case let .success(b): return b
        case let .failure(error):
            print("\(what) did not run: no usable GPU here (\(error))")
            return nil
        }
    }

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
