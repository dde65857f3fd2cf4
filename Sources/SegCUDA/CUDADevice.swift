import CCUDA
import Foundation
import SegCore

/// One GPU made ready for work: its primary context, segdist's kernels loaded from PTX, a
/// cuBLAS handle, and a caching allocator.
///
/// Error policy: every launch, copy and library call is checked, and the first failure — the
/// call and the driver's words — is kept (as CUDA keeps a sticky error); after it the device
/// does no further work. Ops cannot throw mid-graph, so the caller decides what a failure
/// means where it can: `throwIfFailed` (`Backend.checkHealthy`) throws it. The training step,
/// the inference pipeline and `segdist verify` make it fatal (the run ends naming the call,
/// every checkpoint written before intact); the self-check makes it an answer (`device: auto`
/// falls back to the CPU).
public final class CUDADevice: @unchecked Sendable {
    public let info: GPUInfo
    let driver: CUDADriver
    let context: UnsafeMutableRawPointer
    private var functions: [String: UnsafeMutableRawPointer] = [:]
    let blas: segdist_cublas
    let blasHandle: UnsafeMutableRawPointer
    private let lock = NSLock()
    /// Freed blocks by size, reused before asking the driver (cuMemAlloc synchronises the GPU).
    private var cached: [Int: [UInt64]] = [:]
    private(set) var cachedBytes = 0

    /// Opens GPU `ordinal`: context, kernels (NVRTC, cached), cuBLAS.
    public init(ordinal: Int) throws {
        driver = try CUDADriver.shared.get()
        let gpus = try driver.devices()
        guard gpus.indices.contains(ordinal) else {
            throw CUDAError("GPU \(ordinal) does not exist: the driver sees \(gpus.count) (\(gpus.map(\.description).joined(separator: ", ")))")
        }
        info = gpus[ordinal]
        var device: Int32 = 0, ctx: UnsafeMutableRawPointer?
        try driver.check(driver.api.deviceGet(&device, Int32(ordinal)), "cuDeviceGet(\(ordinal))")
        try driver.check(driver.api.primaryCtxRetain(&ctx, device), "cuDevicePrimaryCtxRetain(\(ordinal))")
        guard let ctx else { throw CUDAError("cuDevicePrimaryCtxRetain returned no context") }
        context = ctx
        try driver.check(driver.api.ctxSetCurrent(ctx), "cuCtxSetCurrent")
        let ptx = try NVRTC.shared.get().compileCached(CUDAKernelSource.source, name: "segdist_kernels", architecture: info.architecture)
        var module: UnsafeMutableRawPointer?
        let driver = self.driver
        let loaded = ptx.withCString { driver.api.moduleLoadData(&module, $0) }
        try driver.check(loaded, "cuModuleLoadData(segdist_kernels)")
        var found: [String: UnsafeMutableRawPointer] = [:]
        for name in CUDAKernelSource.entryPoints {
            var f: UnsafeMutableRawPointer?
            try driver.check(driver.api.moduleGetFunction(&f, module, name), "cuModuleGetFunction(\(name))")
            found[name] = f
        }
        var api = segdist_cublas()
        let (blasLoaded, cublasPath) = loadLibrary(named: "SEGDIST_CUBLAS") { segdist_cublas_load(&api, $0) }
        guard blasLoaded else { throw CUDAError("no cuBLAS: \(cublasPath ?? "libcublas.so") could not be loaded") }
        blas = api
        var handle: UnsafeMutableRawPointer?
        let status = api.create(&handle)
        guard status == 0, let handle else {
            throw CUDAError("cublasCreate failed: " + (api.getStatusString(status).map { String(cString: $0) } ?? "status \(status)"))
        }
        blasHandle = handle
        functions = found
    }

    private let failureLock = NSLock()
    private var failure: CUDAError?

    /// The first failed call since the device was made (or since `forgetFailure`).
    var firstFailure: CUDAError? { failureLock.lock(); defer { failureLock.unlock() }; return failure }
    /// Whether work should go on: false once a call has failed.
    @inline(__always) var healthy: Bool { firstFailure == nil }

    /// Throws the first failure, if there was one.
    public func throwIfFailed() throws {
        if let failure = firstFailure { throw CUDAError("GPU \(info.ordinal) (\(info.name)): \(failure.description)") }
    }

    /// Forgets a failure of a library the caller then stops using (cuDNN); a failure of the
    /// context itself happens again on the next call and is kept again.
    func forgetFailure() { failureLock.lock(); failure = nil; failureLock.unlock() }

    func check(_ result: Int32, _ call: @autoclosure () -> String) {
        do { try driver.check(result, call()) } catch { report(error as? CUDAError ?? CUDAError("\(error)")) }
    }

    /// Keeps `error` when it is the first.
    func report(_ error: CUDAError) {
        failureLock.lock(); if failure == nil { failure = error }; failureLock.unlock()
    }

    /// Work from any thread runs in this GPU's context (a context is current per thread).
    @inline(__always) func makeCurrent() { check(driver.api.ctxSetCurrent(context), "cuCtxSetCurrent") }

    // MARK: Memory

    /// `bytes` of device memory (rounded up to 512), from the cache when a block of that size
    /// was freed. Out of memory: the cache is returned to the driver and the allocation tried
    /// once more, then the failure (how much was asked, how much is free) is kept and
    /// `unallocated` returned, an address no further work touches (the device is no longer
    /// healthy) and `release` ignores.
    func allocate(bytes: Int) -> UInt64 {
        let size = max(512, (bytes + 511) / 512 * 512)
        lock.lock()
        if var list = cached[size], let block = list.popLast() {
            cached[size] = list; cachedBytes -= size; lock.unlock()
            return block
        }
        lock.unlock()
        makeCurrent()
        var address: UInt64 = 0
        var result = driver.api.memAlloc(&address, size)
        if result != 0 {
            releaseCache()
            result = driver.api.memAlloc(&address, size)
        }
        if result != 0 {
            var free = 0, total = 0
            _ = driver.api.memGetInfo(&free, &total)
            func mib(_ bytes: Int) -> String { String(format: "%.1f MiB", Double(bytes) / 1_048_576) }
            report(CUDAError("out of GPU memory: asked for \(mib(size)) with \(mib(free)) free of \(mib(total)); "
                             + "set a smaller micro_batch (or batch_size, image_size, width)"))
            return Self.unallocated
        }
        return address
    }

    /// What `allocate` returns when the memory ran out: never a device address (nothing lives
    /// in the first page), never dereferenced, never cached.
    static let unallocated: UInt64 = 4096

    func release(_ address: UInt64, bytes: Int) {
        guard address != Self.unallocated else { return }
        let size = max(512, (bytes + 511) / 512 * 512)
        lock.lock(); cached[size, default: []].append(address); cachedBytes += size; lock.unlock()
    }

    func releaseCache() {
        lock.lock(); let blocks = cached; cached = [:]; cachedBytes = 0; lock.unlock()
        makeCurrent()
        for (_, list) in blocks { for block in list { _ = driver.api.memFree(block) } }
    }

    func upload(_ source: UnsafeRawPointer, to address: UInt64, bytes: Int) {
        guard bytes > 0, healthy else { return }
        makeCurrent(); check(driver.api.memcpyHtoD(address, source, bytes), "cuMemcpyHtoD(\(bytes) bytes)")
    }

    func download(_ address: UInt64, to destination: UnsafeMutableRawPointer, bytes: Int) {
        guard bytes > 0, healthy else { return }
        makeCurrent(); check(driver.api.memcpyDtoH(destination, address, bytes), "cuMemcpyDtoH(\(bytes) bytes)")
    }

    func copy(_ source: UInt64, to destination: UInt64, bytes: Int) {
        guard bytes > 0, healthy else { return }
        makeCurrent(); check(driver.api.memcpyDtoD(destination, source, bytes), "cuMemcpyDtoD(\(bytes) bytes)")
    }

    /// Sets `count` 32-bit words to `word` (0 for zeros of float, int32 and, in pairs, double).
    func fill32(_ address: UInt64, word: UInt32, count: Int) {
        guard count > 0, healthy else { return }
        makeCurrent(); check(driver.api.memsetD32(address, word, count), "cuMemsetD32(\(count) words)")
    }

    public func synchronize() { makeCurrent(); check(driver.api.ctxSynchronize(), "cuCtxSynchronize") }

    // MARK: Launches

    /// Every kernel's arguments go through these 8-byte slots (and pointers to them), made once.
    static let maximumArguments = 16
    private let argumentSlots = UnsafeMutableRawPointer.allocate(byteCount: 8 * CUDADevice.maximumArguments, alignment: 8)
    private lazy var argumentPointers: UnsafeMutablePointer<UnsafeMutableRawPointer?> = {
        let p = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: Self.maximumArguments)
        for i in 0..<Self.maximumArguments { p[i] = argumentSlots + 8 * i }
        return p
    }()
    private let launchLock = NSLock()

    /// One kernel argument, passed by value (CUDA reads each from the pointer it is given).
    enum Argument {
        case pointer(UInt64), int(Int32), long(Int64), float(Float), double(Double)
    }

    /// Launches `name` with `blocks` x `threads`; by default enough blocks for `count`
    /// grid-stride iterations, capped at 32 blocks per multiprocessor.
    func launch(_ name: String, count: Int, blocks: Int? = nil, threads: Int = 256, _ arguments: [Argument]) {
        guard healthy else { return }
        guard let function = functions[name] else { return report(CUDAError("no kernel named \(name)")) }
        let grid = blocks ?? max(1, min((count + threads - 1) / threads, 32 * max(info.multiprocessors, 1)))
        guard count > 0 || blocks != nil else { return }
        precondition(arguments.count <= Self.maximumArguments, "\(name): more than \(Self.maximumArguments) arguments")
        // the argument slots are reused: cuLaunchKernel has copied the values when it returns
        launchLock.lock()
        defer { launchLock.unlock() }
        for (i, argument) in arguments.enumerated() {
            let slot = argumentSlots + 8 * i
            switch argument {
            case let .pointer(v): slot.storeBytes(of: v, as: UInt64.self)
            case let .int(v): slot.storeBytes(of: v, as: Int32.self)
            case let .long(v): slot.storeBytes(of: v, as: Int64.self)
            case let .float(v): slot.storeBytes(of: v, as: Float.self)
            case let .double(v): slot.storeBytes(of: v, as: Double.self)
            }
        }
        makeCurrent()
        let result = driver.api.launchKernel(function, UInt32(grid), 1, 1, UInt32(threads), 1, 1, 0, nil, argumentPointers, nil)
        check(result, "cuLaunchKernel(\(name), \(grid) x \(threads))")
    }

    /// Row-major C (m x n) = op(A) op(B) + beta C through cuBLAS (column-major: C^T = op(B)^T op(A)^T).
    func gemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, a: UInt64, lda: Int, b: UInt64, ldb: Int,
              beta: Float, c: UInt64, ldc: Int) {
        guard m > 0, n > 0, k > 0, healthy else { return }
        var alpha: Float = 1, betaValue = beta
        makeCurrent()
        let status = blas.sgemm(blasHandle, Int32(transB ? SEGDIST_CUBLAS_OP_T : SEGDIST_CUBLAS_OP_N),
                                Int32(transA ? SEGDIST_CUBLAS_OP_T : SEGDIST_CUBLAS_OP_N), Int32(n), Int32(m), Int32(k), &alpha,
                                UnsafePointer(bitPattern: UInt(b)), Int32(ldb), UnsafePointer(bitPattern: UInt(a)), Int32(lda),
                                &betaValue, UnsafeMutablePointer(bitPattern: UInt(c)), Int32(ldc))
        if status != 0 {
            report(CUDAError("cublasSgemm(\(m)x\(n)x\(k)) failed: " + (blas.getStatusString(status).map { String(cString: $0) } ?? "status \(status)")))
        }
    }
}

/// Device scratch that returns to the cache when dropped (im2col columns, double sums).
final class DeviceScratch {
    let device: CUDADevice
    let address: UInt64
    let bytes: Int
    init(_ device: CUDADevice, bytes: Int) { self.device = device; self.bytes = bytes; address = device.allocate(bytes: bytes) }
    deinit { device.release(address, bytes: bytes) }

    /// Zeroed scratch for `count` doubles.
    static func zeroDoubles(_ device: CUDADevice, _ count: Int) -> DeviceScratch {
        let s = DeviceScratch(device, bytes: 8 * count)
        device.fill32(s.address, word: 0, count: 2 * count)
        return s
    }

    func doubles(_ count: Int) -> [Double] {
        var out = [Double](repeating: 0, count: count)
        out.withUnsafeMutableBytes { device.download(address, to: $0.baseAddress!, bytes: 8 * count) }
        return out
    }

    func setDoubles(_ values: [Double]) {
        values.withUnsafeBytes { device.upload($0.baseAddress!, to: address, bytes: 8 * values.count) }
    }
}
