import Foundation

/// Which library multiplies a GEMM of a given shape: OpenBLAS or oneDNN.
///
/// Measured single-threaded on a 2-core Xeon (Emerald Rapids) with Debian's OpenBLAS 0.3.21
/// (SkylakeX kernels) and oneDNN 2.6.3: oneDNN's sgemm is 10-60% faster on the convolution
/// GEMMs with k and m of 64 or more (150-174 against 90-156 GFLOP/s), but 1.1-2.1x slower on the
/// small ones (m of 16 or 32 with k up to 64, k = 16) that narrow UNets and the Winograd
/// products of thin layers make. Choosing by shape cut the summed GEMM time of 9 models' training
/// steps by 5.5% (per-shape timers, both libraries timed on every shape). The rule was measured
/// on that Xeon only; it is fixed, not timed at run time, so a shape always goes to the same
/// library and results repeat exactly.
///
/// oneDNN is optional: without libdnnl (Debian: libdnnl2) every GEMM is OpenBLAS's.
/// SEGDIST_GEMM=openblas or =onednn sends every GEMM to one library (to measure, or to rule one out).
public enum GEMMLibrary: String, Sendable {
    case openblas, onednn

    /// The library for an (m x k) * (k x n) product.
    @inline(__always)
    static func `for`(m: Int, n: Int, k: Int) -> GEMMLibrary {
        switch policy {
        case .byShape: return prefersOneDNN(m: m, n: n, k: k) ? .onednn : .openblas
        case .only(let library): return library
        }
    }

    /// The shape rule: oneDNN once the product is deep enough (k >= 64) and either tall (m >= 64)
    /// or wide (n >= 1024) for its blocking to pay.
    public static func prefersOneDNN(m: Int, n: Int, k: Int) -> Bool {
        k >= 64 && (m >= 64 || n >= 1024)
    }

    /// Whether oneDNN loaded (libdnnl installed and held to one OpenMP thread per call).
    public static var isOneDNNAvailable: Bool { OneDNN.api != nil }

    enum Policy: Equatable { case byShape, only(GEMMLibrary) }

    /// From SEGDIST_GEMM (unset or "auto": by shape); oneDNN only when it loads.
    static let policy: Policy = {
        let asked = ProcessInfo.processInfo.environment["SEGDIST_GEMM"]?.lowercased() ?? "auto"
        switch asked {
        case "openblas": return .only(.openblas)
        case "onednn":
            guard OneDNN.api != nil else {
                FileHandle.standardError.write("segdist: SEGDIST_GEMM=onednn, but oneDNN (libdnnl.so.2/.so.3) \(OneDNN.unavailableReason); on Debian: apt-get install libdnnl2\n".data(using: .utf8)!)
                exit(2)
            }
            return .only(.onednn)
        case "auto", "": return OneDNN.api == nil ? .only(.openblas) : .byShape
        default:
            FileHandle.standardError.write("segdist: SEGDIST_GEMM=\(asked) is not one of auto, openblas, onednn\n".data(using: .utf8)!)
            exit(2)
        }
    }()

    /// Ends the process with SEGDIST_GEMM's message now, at start, when the variable is set and
    /// wrong, rather than at the first GEMM (unset: nothing is loaded here).
    public static func checkEnvironment() {
        if ProcessInfo.processInfo.environment["SEGDIST_GEMM"] != nil { _ = policy }
    }

    /// How the bench names the GEMM libraries in use: "openblas-skylakex",
    /// "openblas-skylakex+onednn" (by shape) or "onednn".
    public static var description: String {
        let openblas = "openblas-" + blasKernelName.lowercased()
        switch policy {
        case .byShape: return openblas + "+onednn"
        case .only(.openblas): return openblas
        case .only(.onednn): return "onednn"
        }
    }
}
