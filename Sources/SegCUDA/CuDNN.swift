import CCUDA
import Foundation
import SegCore

/// Convolutions through cuDNN when it is installed: one plan per shape (descriptors and the
/// fastest FMA-math algorithm of cuDNN's heuristics for the forward pass, the input gradient
/// and the weight gradient, with their workspace sizes), made at first use. FMA math keeps
/// full float32 (no TF32), as the CPU and PyTorch's fixtures. A shape cuDNN has no plan for
/// falls back to im2col + cuBLAS (`CUDABackend`).
final class CuDNNConvolutions {
    let api: segdist_cudnn
    let handle: UnsafeMutableRawPointer
    let device: CUDADevice
    var version: Int { api.getVersion() }

    struct Key: Hashable { let batch: Int, outChannels: Int, g: ConvGeometry }
    struct Plan {
        let x: UnsafeMutableRawPointer, w: UnsafeMutableRawPointer, y: UnsafeMutableRawPointer, conv: UnsafeMutableRawPointer
        let forward: segdist_cudnn_perf, backwardData: segdist_cudnn_perf, backwardFilter: segdist_cudnn_perf
    }
    private var plans: [Key: Plan] = [:]
    private var unplannable: Set<Key> = []

    /// cuDNN on `device`, or nil when it is not installed (`SEGDIST_CUDNN` names the library
    /// file; `SEGDIST_CUDNN=0` turns cuDNN off).
    init?(device: CUDADevice) {
        guard ProcessInfo.processInfo.environment["SEGDIST_CUDNN"] != "0" else { return nil }
        var api = segdist_cudnn()
        guard loadLibrary(named: "SEGDIST_CUDNN", { segdist_cudnn_load(&api, $0) }).loaded else { return nil }
        device.makeCurrent()
        var handle: UnsafeMutableRawPointer?
        guard api.create(&handle) == 0, let handle else { return nil }
        self.api = api; self.handle = handle; self.device = device
    }

    private func check(_ status: Int32, _ call: String) throws {
        guard status != 0 else { return }
        throw CUDAError("\(call) failed: " + (api.getErrorString(status).map { String(cString: $0) } ?? "status \(status)"))
    }

    /// The plan for a convolution of `batch` images with geometry `g` into `outChannels`, or
    /// nil when cuDNN offers no full-precision algorithm for it.
    func plan(batch: Int, outChannels: Int, _ g: ConvGeometry) -> Plan? {
        let key = Key(batch: batch, outChannels: outChannels, g: g)
        if let p = plans[key] { return p }
        if unplannable.contains(key) { return nil }
        do {
            let p = try makePlan(key)
            plans[key] = p
            return p
        } catch {
            unplannable.insert(key)
            return nil
        }
    }

    private func makePlan(_ key: Key) throws -> Plan {
        let g = key.g
        func descriptor(_ create: (UnsafeMutablePointer<UnsafeMutableRawPointer?>) -> Int32, _ what: String) throws -> UnsafeMutableRawPointer {
            var d: UnsafeMutableRawPointer?
            try check(create(&d), what)
            guard let d else { throw CUDAError("\(what) returned nothing") }
            return d
        }
        device.makeCurrent()
        let x = try descriptor({ api.createTensor($0) }, "cudnnCreateTensorDescriptor")
        try check(api.setTensor4d(x, Int32(SEGDIST_CUDNN_NCHW), Int32(SEGDIST_CUDNN_FLOAT), Int32(key.batch), Int32(g.channels),
                                  Int32(g.height), Int32(g.width)), "cudnnSetTensor4dDescriptor(x)")
        let y = try descriptor({ api.createTensor($0) }, "cudnnCreateTensorDescriptor")
        try check(api.setTensor4d(y, Int32(SEGDIST_CUDNN_NCHW), Int32(SEGDIST_CUDNN_FLOAT), Int32(key.batch), Int32(key.outChannels),
                                  Int32(g.outH), Int32(g.outW)), "cudnnSetTensor4dDescriptor(y)")
        let w = try descriptor({ api.createFilter($0) }, "cudnnCreateFilterDescriptor")
        try check(api.setFilter4d(w, Int32(SEGDIST_CUDNN_FLOAT), Int32(SEGDIST_CUDNN_NCHW), Int32(key.outChannels), Int32(g.channels),
                                  Int32(g.kernelH), Int32(g.kernelW)), "cudnnSetFilter4dDescriptor")
        let conv = try descriptor({ api.createConvolution($0) }, "cudnnCreateConvolutionDescriptor")
        try check(api.setConvolution2d(conv, Int32(g.padding), Int32(g.padding), Int32(g.stride), Int32(g.stride), Int32(g.dilation),
                                       Int32(g.dilation), Int32(SEGDIST_CUDNN_CROSS_CORRELATION), Int32(SEGDIST_CUDNN_FLOAT)),
                  "cudnnSetConvolution2dDescriptor")
        try check(api.setConvolutionMathType(conv, Int32(SEGDIST_CUDNN_FMA_MATH)), "cudnnSetConvolutionMathType")
        typealias Heuristic = (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?, UnsafeMutableRawPointer?, UnsafeMutableRawPointer?,
                               UnsafeMutableRawPointer?, Int32, UnsafeMutablePointer<Int32>?, UnsafeMutablePointer<segdist_cudnn_perf>?) -> Int32
        // the first working full-precision algorithm the heuristics rank
        func best(_ heuristic: Heuristic, _ a: UnsafeMutableRawPointer, _ b: UnsafeMutableRawPointer, _ c: UnsafeMutableRawPointer,
                  _ what: String) throws -> segdist_cudnn_perf {
            var results = [segdist_cudnn_perf](repeating: segdist_cudnn_perf(), count: 16)
            var returned: Int32 = 0
            try check(heuristic(handle, a, b, conv, c, Int32(results.count), &returned, &results), what)
            guard let choice = results.prefix(Int(returned)).first(where: { $0.status == 0 && $0.mathType == Int32(SEGDIST_CUDNN_FMA_MATH) }) else {
                throw CUDAError("\(what): no full-precision algorithm")
            }
            return choice
        }
        return Plan(x: x, w: w, y: y, conv: conv,
                    forward: try best(api.forwardAlgorithms, x, w, y, "cudnnGetConvolutionForwardAlgorithm_v7"),
                    backwardData: try best(api.backwardDataAlgorithms, w, y, x, "cudnnGetConvolutionBackwardDataAlgorithm_v7"),
                    backwardFilter: try best(api.backwardFilterAlgorithms, x, y, w, "cudnnGetConvolutionBackwardFilterAlgorithm_v7"))
    }

    /// y = conv(x, w) (overwrites y).
    func forward(_ p: Plan, x: UInt64, w: UInt64, y: UInt64) {
        run(p.forward, "cudnnConvolutionForward") { alpha, workspace, bytes, beta in
            api.forward(handle, alpha, p.x, pointer(x), p.w, pointer(w), p.conv, p.forward.algo, workspace, bytes, beta, p.y, pointer(y))
        }
    }

    /// dx = the input gradient (overwrites dx).
    func backwardData(_ p: Plan, w: UInt64, dy: UInt64, dx: UInt64) {
        run(p.backwardData, "cudnnConvolutionBackwardData") { alpha, workspace, bytes, beta in
            api.backwardData(handle, alpha, p.w, pointer(w), p.y, pointer(dy), p.conv, p.backwardData.algo, workspace, bytes, beta, p.x,
                             pointer(dx))
        }
    }

    /// dw += the weight gradient.
    func backwardFilter(_ p: Plan, x: UInt64, dy: UInt64, dw: UInt64) {
        run(p.backwardFilter, "cudnnConvolutionBackwardFilter", beta: 1) { alpha, workspace, bytes, beta in
            api.backwardFilter(handle, alpha, p.x, pointer(x), p.y, pointer(dy), p.conv, p.backwardFilter.algo, workspace, bytes, beta,
                               p.w, pointer(dw))
        }
    }

    private func pointer(_ address: UInt64) -> UnsafeMutableRawPointer? { UnsafeMutableRawPointer(bitPattern: UInt(address)) }

    private func run(_ algorithm: segdist_cudnn_perf, _ call: String, beta: Float = 0,
                     _ body: (UnsafeRawPointer, UnsafeMutableRawPointer?, Int, UnsafeRawPointer) -> Int32) {
        guard device.healthy else { return }
        let workspace = algorithm.memory > 0 ? DeviceScratch(device, bytes: algorithm.memory) : nil
        var one: Float = 1, b = beta
        device.makeCurrent()
        let status = withUnsafePointer(to: &one) { alpha in
            withUnsafePointer(to: &b) { betaPointer in
                body(UnsafeRawPointer(alpha), workspace.map { pointer($0.address) } ?? nil, algorithm.memory, UnsafeRawPointer(betaPointer))
            }
        }
        if status != 0 {
            device.report(CUDAError("\(call) (algorithm \(algorithm.algo)) failed: "
                                    + (api.getErrorString(status).map { String(cString: $0) } ?? "status \(status)")))
        }
    }
}
