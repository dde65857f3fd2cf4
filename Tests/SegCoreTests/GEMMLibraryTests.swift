import XCTest
import COpenBLAS
@testable import SegKernels

/// The two GEMM libraries against a product written out in the test (in Double), on the shapes
/// segdist's convolutions make (both sides of the shape rule), all four transpose combinations,
/// leading dimensions wider than the matrices and beta 0 / 1 / 0.5; and the shape rule itself.
final class GEMMLibraryTests: XCTestCase {
    func testShapeRule() {
        XCTAssertTrue(GEMMLibrary.prefersOneDNN(m: 64, n: 64, k: 64))
        XCTAssertTrue(GEMMLibrary.prefersOneDNN(m: 16, n: 4096, k: 144))    // a thin layer's im2col GEMM
        XCTAssertFalse(GEMMLibrary.prefersOneDNN(m: 16, n: 4096, k: 16))    // too shallow
        XCTAssertFalse(GEMMLibrary.prefersOneDNN(m: 32, n: 256, k: 64))     // a Winograd product of a thin layer
        XCTAssertFalse(GEMMLibrary.prefersOneDNN(m: 2048, n: 64, k: 32))
    }

    func testBothLibrariesMatchAWrittenOutProduct() throws {
        guard let onednn = OneDNN.api else {
            throw XCTSkip("oneDNN (libdnnl.so.2/.so.3) \(OneDNN.unavailableReason): only OpenBLAS is checked; on Debian: apt-get install libdnnl2")
        }
        var rng = SeededGenerator(seed: 21)
        for (m, n, k) in [(16, 4096, 16), (32, 256, 64), (64, 64, 64), (70, 1030, 67), (3, 5, 7), (128, 33, 300)] {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                for beta: Float in [0, 1, 0.5] {
                    // leading dimensions 3 wider than the stored rows, as views into larger buffers are
                    let (ar, ac) = ta ? (k, m) : (m, k), (br, bc) = tb ? (n, k) : (k, n)
                    let lda = ac + 3, ldb = bc + 3, ldc = n + 3
                    let a = (0..<(ar * lda)).map { _ in rng.uniform(-1, 1) }
                    let b = (0..<(br * ldb)).map { _ in rng.uniform(-1, 1) }
                    let c0 = (0..<(m * ldc)).map { _ in rng.uniform(-1, 1) }
                    var want = c0
                    for i in 0..<m {
                        for j in 0..<n {
                            var s = 0.0
                            for p in 0..<k {
                                s += Double(ta ? a[p * lda + i] : a[i * lda + p]) * Double(tb ? b[j * ldb + p] : b[p * ldb + j])
                            }
                            want[i * ldc + j] = Float(0.75 * s + Double(beta) * Double(c0[i * ldc + j]))
                        }
                    }
                    var viaOpenBLAS = c0, viaOneDNN = c0, viaRule = c0
                    OpenBLAS.api.sgemm(Int32(SEGDIST_CBLAS_ROW_MAJOR), Int32(ta ? SEGDIST_CBLAS_TRANS : SEGDIST_CBLAS_NO_TRANS),
                                       Int32(tb ? SEGDIST_CBLAS_TRANS : SEGDIST_CBLAS_NO_TRANS), Int32(m), Int32(n), Int32(k), 0.75,
                                       a, Int32(lda), b, Int32(ldb), beta, &viaOpenBLAS, Int32(ldc))
                    let status = onednn.sgemm(ta ? 84 : 78, tb ? 84 : 78, Int64(m), Int64(n), Int64(k), 0.75, a, Int64(lda),
                                              b, Int64(ldb), beta, &viaOneDNN, Int64(ldc))
                    XCTAssertEqual(status, 0)
                    sgemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 0.75, a: a, lda: lda, b: b, ldb: ldb, beta: beta,
                          c: &viaRule, ldc: ldc)
                    let label = "m=\(m) n=\(n) k=\(k) transA=\(ta) transB=\(tb) beta=\(beta)"
                    let tolerance = Float(k) * 2e-7 + 1e-6
                    XCTAssertLessThan(worst(viaOpenBLAS, want), tolerance, "OpenBLAS " + label)
                    XCTAssertLessThan(worst(viaOneDNN, want), tolerance, "oneDNN " + label)
                    // the padding columns between rows of C are never written
                    for i in 0..<m { for j in n..<ldc { XCTAssertEqual(viaOneDNN[i * ldc + j], c0[i * ldc + j], "oneDNN wrote padding, " + label) } }
                    // segdist's sgemm is bit for bit the library its rule names
                    let chosen = GEMMLibrary.for(m: m, n: n, k: k) == .onednn ? viaOneDNN : viaOpenBLAS
                    XCTAssertEqual(viaRule, chosen, "sgemm did not use the library the rule names, " + label)
                }
            }
        }
    }

    private func worst(_ a: [Float], _ b: [Float]) -> Float {
        zip(a, b).map { abs($0 - $1) }.max() ?? 0
    }
}
