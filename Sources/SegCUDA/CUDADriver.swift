import CCUDA
import Foundation
import SegCore

/// Runs a CCUDA loader with the library file the environment variable `variable` names, or
/// with nil (the usual sonames) when it is unset; returns whether it loaded, and that path.
func loadLibrary(named variable: String, _ load: (UnsafePointer<CChar>?) -> Int32) -> (loaded: Bool, path: String?) {
    let path = ProcessInfo.processInfo.environment[variable]
    return ((path.map { $0.withCString { load($0) } } ?? load(nil)) != 0, path)
}

/// A failed CUDA, NVRTC or cuBLAS call: which call, and the library's own words for the error.
public struct CUDAError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The CUDA driver API, loaded with `dlopen` (see CCUDA) the first time a GPU is asked for.
/// Every call goes through `check`, which names the call and the driver's error string.
public final class CUDADriver: @unchecked Sendable {
    let api: segdist_cuda_driver

    /// The loaded and initialised driver, or why there is none (no libcuda, no device, cuInit
    /// failed). `SEGDIST_LIBCUDA` names the driver library file when it is elsewhere.
    public static let shared: Result<CUDADriver, CUDAError> = {
        var api = segdist_cuda_driver()
        let (loaded, path) = loadLibrary(named: "SEGDIST_LIBCUDA") { segdist_cuda_driver_load(&api, $0) }
        guard loaded else {
            return .failure(CUDAError("no CUDA driver: " + (path.map { "\($0) (SEGDIST_LIBCUDA)" } ?? "libcuda.so.1")
                                      + " could not be loaded (is an NVIDIA driver installed?)"))
        }
        let driver = CUDADriver(api: api)
        do { try driver.check(api.initialize(0), "cuInit") } catch { return .failure(error as! CUDAError) }
        return .success(driver)
    }()

    init(api: segdist_cuda_driver) { self.api = api }

    /// Throws a `CUDAError` naming `call` unless `result` is CUDA_SUCCESS (0).
    public func check(_ result: Int32, _ call: @autoclosure () -> String) throws {
        guard result != 0 else { return }
        var name: UnsafePointer<CChar>?, text: UnsafePointer<CChar>?
        _ = api.getErrorName(result, &name)
        _ = api.getErrorString(result, &text)
        throw CUDAError("\(call()) failed: \(name.map { String(cString: $0) } ?? "error \(result)")"
                        + (text.map { " (\(String(cString: $0)))" } ?? ""))
    }

    /// The GPUs the driver sees.
    public func devices() throws -> [GPUInfo] {
        var count: Int32 = 0
        try check(api.deviceGetCount(&count), "cuDeviceGetCount")
        var found: [GPUInfo] = []
        for ordinal in 0..<Int(count) {
            var device: Int32 = 0
            try check(api.deviceGet(&device, Int32(ordinal)), "cuDeviceGet(\(ordinal))")
            var name = [CChar](repeating: 0, count: 256)
            try check(api.deviceGetName(&name, Int32(name.count), device), "cuDeviceGetName")
            func attribute(_ which: Int32) throws -> Int {
                var value: Int32 = 0
                try check(api.deviceGetAttribute(&value, which, device), "cuDeviceGetAttribute(\(which))")
                return Int(value)
            }
            var memory: Int = 0
            try check(api.deviceTotalMem(&memory, device), "cuDeviceTotalMem")
            let text: String = name.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            let major = try attribute(Int32(SEGDIST_CU_ATTR_COMPUTE_MAJOR)), minor = try attribute(Int32(SEGDIST_CU_ATTR_COMPUTE_MINOR))
            found.append(GPUInfo(ordinal: ordinal, name: text, computeCapability: (major, minor),
                                 multiprocessors: try attribute(Int32(SEGDIST_CU_ATTR_MULTIPROCESSORS)), memoryBytes: memory))
        }
        return found
    }
}

/// One GPU as the driver describes it.
public struct GPUInfo: Sendable, CustomStringConvertible {
    public let ordinal: Int
    public let name: String
    public let computeCapability: (major: Int, minor: Int)
    public let multiprocessors: Int
    public let memoryBytes: Int
    /// NVRTC's architecture flag for this GPU, e.g. "compute_90".
    public var architecture: String { "compute_\(computeCapability.major)\(computeCapability.minor)" }
    public var description: String {
        "cuda:\(ordinal) \(name) (compute \(computeCapability.major).\(computeCapability.minor), "
            + String(format: "%.1f GiB)", Double(memoryBytes) / 1_073_741_824)
    }
}
