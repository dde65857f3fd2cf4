import COpenBLAS
import CSystem
import Foundation

/// Row-major single-precision GEMM: C = alpha * op(A) * op(B) + beta * C,
/// where op(A) is (m x k) and op(B) is (k x n).
@inline(__always)
public func sgemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                  alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                  b: UnsafePointer<Float>, ldb: Int,
                  beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
    guard m > 0, n > 0 else { return }
    if k == 0 {
        // BLAS would leave C untouched for k = 0 only when beta = 1; be explicit.
        for i in 0..<m { for j in 0..<n { c[i * ldc + j] *= beta } }
        return
    }
    if GEMMLibrary.for(m: m, n: n, k: k) == .onednn, let onednn = OneDNN.api {
        let status = onednn.sgemm(transA ? 84 : 78, transB ? 84 : 78, Int64(m), Int64(n), Int64(k), alpha, a, Int64(lda),
                                  b, Int64(ldb), beta, c, Int64(ldc))   // 84 'T', 78 'N'
        precondition(status == 0, "oneDNN's sgemm refused m=\(m) n=\(n) k=\(k) lda=\(lda) ldb=\(ldb) ldc=\(ldc): status \(status)")
        return
    }
    let trans = Int32(SEGDIST_CBLAS_TRANS), noTrans = Int32(SEGDIST_CBLAS_NO_TRANS)
    OpenBLAS.api.sgemm(Int32(SEGDIST_CBLAS_ROW_MAJOR), transA ? trans : noTrans, transB ? trans : noTrans,
                       Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// OpenBLAS, loaded on first use: after `BLASKernels.chooseKernelsForThisCPU` has set
/// OPENBLAS_CORETYPE (segdist's entry point calls it first; tests load it as the environment is).
enum OpenBLAS {
    struct API {
        let sgemm: @convention(c) (Int32, Int32, Int32, Int32, Int32, Int32, Float, UnsafePointer<Float>?, Int32,
                                   UnsafePointer<Float>?, Int32, Float, UnsafeMutablePointer<Float>?, Int32) -> Void
        let setNumThreads: @convention(c) (Int32) -> Void
        let coreName: @convention(c) () -> UnsafeMutablePointer<CChar>?
    }

    static let api: API = {
        var raw = segdist_openblas()
        let status = segdist_openblas_load(&raw)
        guard status == 0, let sgemm = raw.sgemm, let threads = raw.setNumThreads, let name = raw.coreName else {
            let why = status == -1 ? String(cString: segdist_openblas_error()) : "it lacks cblas_sgemm or openblas_get_corename"
            FileHandle.standardError.write("segdist: OpenBLAS (libopenblas.so.0) could not be loaded: \(why); on Debian: apt-get install libopenblas0\n".data(using: .utf8)!)
            exit(2)
        }
        return API(sgemm: sgemm, setNumThreads: threads, coreName: name)
    }()
}

/// The CPU kernel OpenBLAS chose for this machine (e.g. "Haswell", "SkylakeX"; "Prescott" is its
/// slow generic fallback on CPUs it does not recognise).
public var blasKernelName: String {
    guard let name = OpenBLAS.api.coreName() else { return "unknown" }
    return String(cString: name)
}

/// Choosing OpenBLAS's kernels from what the CPU can do.
///
/// OpenBLAS picks its kernels when it loads, from a table of CPU models or from
/// OPENBLAS_CORETYPE: a CPU newer than the library (Debian's 0.3.21 on Sapphire/Emerald Rapids)
/// gets the generic "Prescott" SSE3 kernels, 25 GFLOP/s where SkylakeX's do 146 (measured on a
/// 2-core Xeon), an AVX-512 AMD (Zen 4) gets the AVX2 Haswell ones, and environments set
/// OPENBLAS_CORETYPE=Haswell as a guard for old builds (segdist bench, UNet w=64 on a Zen 4/5:
/// 15-25% slower than SkylakeX's kernels). segdist loads OpenBLAS itself (`OpenBLAS`, dlopen), so
/// `chooseKernelsForThisCPU` sets the variable from CPUID before that — whatever it said, also
/// when it named kernels this CPU cannot run. (It used to start the process again instead: 55 ms
/// of every command.) SEGDIST_KEEP_OPENBLAS_CORETYPE=1 keeps the variable as it is.
public enum BLASKernels {
    /// The kernels the CPU's vector units call for, or nil when `current` is as good (and runs).
    public static func better(than current: String, vectorLevel: Int) -> String? {
        let name = current.lowercased()
        let avx512 = ["skylakex", "cooperlake", "sapphirerapids"], avx2 = ["haswell", "zen"]
        switch vectorLevel {
        case 2 where !avx512.contains(name): return "SkylakeX"
        case 1 where !(avx512 + avx2).contains(name): return "Haswell"
        case 1 where avx512.contains(name): return "Haswell"       // AVX-512 kernels would not run
        case 0 where (avx512 + avx2).contains(name): return "Prescott"
        default: return nil
        }
    }

    /// Sets OPENBLAS_CORETYPE for OpenBLAS to load with: the kernels the CPU's vector units call
    /// for unless the variable already names kernels as good (that run here). Call it before
    /// the first GEMM; once OpenBLAS is loaded the variable no longer matters.
    public static func chooseKernelsForThisCPU() {
        let env = ProcessInfo.processInfo.environment
        if env["OPENBLAS_CORETYPE"] != nil && env["SEGDIST_KEEP_OPENBLAS_CORETYPE"] == "1" { return }
        // SEGDIST_BLAS_PRETEND (tests only) stands for what OpenBLAS would choose by itself;
        // unset, its model table may be wrong, so only a named choice can be kept
        let current = env["SEGDIST_BLAS_PRETEND"] ?? env["OPENBLAS_CORETYPE"] ?? "Prescott"
        guard let want = better(than: current, vectorLevel: Int(segdist_cpu_vector_level())) else { return }
        setenv("OPENBLAS_CORETYPE", want, 1)
    }
}

extension BLASKernels {
    /// The CPU's vector level (2: AVX-512, 1: AVX2 + FMA, 0: neither).
    public static var vectorLevel: Int { Int(segdist_cpu_vector_level()) }
}

/// The vector instructions these kernels were compiled for (Package.swift picks them from the
/// CPU that builds segdist): "avx512", "avx2" or "generic" (SSE2).
public let kernelInstructionSet: String = {
    #if SEGDIST_KERNELS_AVX512
    return "avx512"
    #elseif SEGDIST_KERNELS_AVX2
    return "avx2"
    #else
    return "generic"
    #endif
}()
