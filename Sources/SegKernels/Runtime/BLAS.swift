import COpenBLAS

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
