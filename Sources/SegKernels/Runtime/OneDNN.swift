import COpenBLAS

/// oneDNN's sgemm, loaded on first use when libdnnl is installed (nil when it is not: OpenBLAS
/// then does every GEMM). The shim loads it with OpenMP held to one thread per call.
enum OneDNN {
    struct API {
        let sgemm: @convention(c) (CChar, CChar, Int64, Int64, Int64, Float, UnsafePointer<Float>?, Int64,
                                   UnsafePointer<Float>?, Int64, Float, UnsafeMutablePointer<Float>?, Int64) -> Int32
    }

    private static let loaded: (api: API?, status: Int32) = {
        var raw = segdist_onednn()
        let status = segdist_onednn_load(&raw)
        guard status == 0, let sgemm = raw.sgemm else { return (nil, status) }
        return (API(sgemm: sgemm), 0)
    }()

    static var api: API? { loaded.api }

    /// Why `api` is nil, for messages.
    static var unavailableReason: String {
        switch loaded.status {
        case -1: return "is not installed"
        case -2: return "lacks dnnl_sgemm"
        case -3: return "would run on more than one OpenMP thread per call (an OpenMP runtime was loaded before it)"
        default: return "loaded"
        }
    }
}
