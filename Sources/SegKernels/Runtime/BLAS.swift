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
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// The CPU kernel OpenBLAS chose for this machine (e.g. "Haswell", "SkylakeX"; "Prescott" is its
/// slow generic fallback on CPUs it does not recognise).
public var blasKernelName: String {
    guard let name = openblas_get_corename() else { return "unknown" }
    return String(cString: name)
}

/// Choosing OpenBLAS's kernels from what the CPU can do.
///
/// OpenBLAS picks its kernels when it loads, from a table of CPU models or from
/// OPENBLAS_CORETYPE: a CPU newer than the library (Debian's 0.3.21 on Sapphire/Emerald Rapids)
/// gets the generic "Prescott" SSE3 kernels, 25 GFLOP/s where SkylakeX's do 146 (measured on a
/// 2-core Xeon), an AVX-512 AMD (Zen 4) gets the AVX2 Haswell ones, and environments set
/// OPENBLAS_CORETYPE=Haswell as a guard for old builds (segdist bench, UNet w=64 on a Zen 4/5:
/// 15-25% slower than SkylakeX's kernels). OpenBLAS reads its only switch at load, so `segdist`
/// sets it from CPUID and starts itself again before any work (`chooseKernelsForThisCPU`),
/// whatever the variable said — also when it named kernels this CPU cannot run.
/// SEGDIST_KEEP_OPENBLAS_CORETYPE=1 keeps the variable as it is.
public enum BLASKernels {
    static let reexecMarker = "SEGDIST_BLAS_CHOSEN"

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

    /// Restarts this process with OPENBLAS_CORETYPE set when OpenBLAS's kernels (its own choice
    /// or the variable's) are slower than the CPU supports or cannot run on it; returns when
    /// nothing is to be done (or the restart failed).
    public static func chooseKernelsForThisCPU() {
        let env = ProcessInfo.processInfo.environment
        if env["OPENBLAS_CORETYPE"] != nil && env["SEGDIST_KEEP_OPENBLAS_CORETYPE"] == "1" { return }
        // SEGDIST_BLAS_PRETEND (tests only) stands for OpenBLAS's choice
        let chosen = env["SEGDIST_BLAS_PRETEND"] ?? blasKernelName
        guard env[reexecMarker] == nil, let want = better(than: chosen, vectorLevel: Int(segdist_cpu_vector_level())) else { return }
        let before = env["OPENBLAS_CORETYPE"]
        setenv("OPENBLAS_CORETYPE", want, 1)
        setenv(reexecMarker, "\(chosen)->\(want)", 1)
        var argv: [UnsafeMutablePointer<CChar>?] = CommandLine.arguments.map { strdup($0) } + [nil]
        _ = argv.withUnsafeMutableBufferPointer { segdist_reexec($0.baseAddress!) }
        // still here: the restart failed; carry on with what was there
        if let before { setenv("OPENBLAS_CORETYPE", before, 1) } else { unsetenv("OPENBLAS_CORETYPE") }
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
