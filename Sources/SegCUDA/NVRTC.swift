import CCUDA
import Foundation
import SegCore

/// NVRTC, CUDA's run-time compiler, loaded with `dlopen`: segdist's kernels ship as CUDA C
/// source (`CUDAKernelSource`) and are compiled once per GPU architecture into PTX, which the
/// driver then loads. Nothing CUDA is needed to build segdist.
public final class NVRTC: @unchecked Sendable {
    let api: segdist_nvrtc

    /// The loaded compiler or why there is none. `SEGDIST_NVRTC` names the library file when it
    /// is not on the loader's path (e.g. PyPI's nvidia-cuda-nvrtc wheel).
    public static let shared: Result<NVRTC, CUDAError> = {
        var api = segdist_nvrtc()
        let (loaded, path) = loadLibrary(named: "SEGDIST_NVRTC") { segdist_nvrtc_load(&api, $0) }
        guard loaded else {
            return .failure(CUDAError("no NVRTC: libnvrtc.so could not be loaded" + (path.map { " (SEGDIST_NVRTC=\($0))" } ?? "")
                                      + "; it comes with the CUDA toolkit, or pip install nvidia-cuda-nvrtc-cu12 and set SEGDIST_NVRTC"))
        }
        return .success(NVRTC(api: api))
    }()

    init(api: segdist_nvrtc) { self.api = api }

    /// "major.minor" of the loaded NVRTC.
    public var version: String {
        var major: Int32 = 0, minor: Int32 = 0
        _ = api.version(&major, &minor)
        return "\(major).\(minor)"
    }

    func check(_ result: Int32, _ call: String) throws {
        guard result != 0 else { return }
        throw CUDAError("\(call) failed: " + (api.getErrorString(result).map { String(cString: $0) } ?? "error \(result)"))
    }

    /// PTX for `source` on `architecture` (e.g. "compute_90"); a compile error throws with
    /// NVRTC's log.
    public func compile(_ source: String, name: String, architecture: String) throws -> String {
        var program: UnsafeMutableRawPointer?
        try check(api.createProgram(&program, source, name, 0, nil, nil), "nvrtcCreateProgram")
        defer { _ = api.destroyProgram(&program) }
        let options = ["--gpu-architecture=\(architecture)", "--std=c++17", "--fmad=false"]
        let cOptions = options.map { strdup($0) }
        defer { cOptions.forEach { free($0) } }
        let compiled = cOptions.map { UnsafePointer($0) }.withUnsafeBufferPointer {
            api.compileProgram(program, Int32(options.count), $0.baseAddress)
        }
        if compiled != 0 {
            var size = 0
            _ = api.getProgramLogSize(program, &size)
            var log = [CChar](repeating: 0, count: max(size, 1))
            _ = api.getProgramLog(program, &log)
            let text = log.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            throw CUDAError("NVRTC could not compile \(name) for \(architecture):\n\(text)")
        }
        var size = 0
        try check(api.getPTXSize(program, &size), "nvrtcGetPTXSize")
        var ptx = [CChar](repeating: 0, count: size + 1)
        try check(api.getPTX(program, &ptx), "nvrtcGetPTX")
        return ptx.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    /// `compile`, cached in `directory` (default ~/.cache/segdist/cuda) under a hash of the
    /// source, the architecture and NVRTC's version: a process compiles only what changed.
    public func compileCached(_ source: String, name: String, architecture: String, directory: String? = nil) throws -> String {
        let dir = directory ?? NVRTC.cacheDirectory
        let key = fnv1a64(source + "\u{0}" + architecture + "\u{0}" + version)
        let path = "\(dir)/\(name)-\(architecture)-\(String(key, radix: 16)).ptx"
        if let data = FileManager.default.contents(atPath: path), let ptx = String(data: data, encoding: .utf8) { return ptx }
        let ptx = try compile(source, name: name, architecture: architecture)
        // a cache that cannot be written only costs the next process a compile
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try? writeFileAtomically(Data(ptx.utf8), to: path)
        return ptx
    }

    /// $XDG_CACHE_HOME/segdist/cuda, or ~/.cache/segdist/cuda.
    public static var cacheDirectory: String {
        let env = ProcessInfo.processInfo.environment
        let base = env["XDG_CACHE_HOME"] ?? ((env["HOME"] ?? NSTemporaryDirectory()) + "/.cache")
        return base + "/segdist/cuda"
    }
}

/// FNV-1a, 64 bits: a stable hash (Swift's `Hasher` is seeded per process).
func fnv1a64(_ text: String) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
    return hash
}
