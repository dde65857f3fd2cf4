import CMPI
import Foundation
import SegCore

/// OpenMPI's COMM_WORLD. Every MPI call goes through `check`, which turns an error code into a
/// message naming the call and the rank; collectives run under the watchdog, so a rank that
/// vanished ends the job instead of hanging it.
public final class MPICommunicator: Communicator {
    public let rank: Int
    public let size: Int
    let watchdog: Watchdog

    /// True when this process was started by an MPI launcher (mpirun, srun with PMIx).
    public static var launchedByMPI: Bool {
        let env = ProcessInfo.processInfo.environment
        return env["OMPI_COMM_WORLD_SIZE"] != nil || env["PMIX_RANK"] != nil || env["PMI_SIZE"] != nil
    }

    /// Whether this MPI library reads and writes CUDA device memory itself: OpenMPI's
    /// `MPIX_Query_cuda_support()`, looked up at run time (the library segdist was built
    /// against may not be the one it runs with). SEGDIST_CUDA_AWARE_MPI=0/1 overrides.
    public static let cudaAware: Bool = {
        if let forced = ProcessInfo.processInfo.environment["SEGDIST_CUDA_AWARE_MPI"] { return forced == "1" }
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "MPIX_Query_cuda_support") else { return false }
        typealias Query = @convention(c) () -> Int32
        return unsafeBitCast(symbol, to: Query.self)() == 1
    }()

    /// Ranks sharing this node, as the launcher reports them.
    public static var localSize: Int {
        let env = ProcessInfo.processInfo.environment
        return Int(env["OMPI_COMM_WORLD_LOCAL_SIZE"] ?? env["SLURM_NTASKS_PER_NODE"] ?? "") ?? 1
    }

    /// This process's place among the ranks of its node (OpenMPI's or Slurm's word), 0 alone.
    public static var localRank: Int {
        let env = ProcessInfo.processInfo.environment
        return Int(env["OMPI_COMM_WORLD_LOCAL_RANK"] ?? env["SLURM_LOCALID"] ?? env["MPI_LOCALRANKID"] ?? "") ?? 0
    }

    public init(collectiveTimeout: Double) throws {
        var provided: Int32 = 0
        // Only the main thread calls MPI; the watchdog thread just calls MPI_Abort.
        let initCode = MPI_Init_thread(nil, nil, Int32(MPI_THREAD_FUNNELED), &provided)
        guard initCode == segdist_success() else { throw MPIError(call: "MPI_Init_thread", rank: -1, code: initCode) }
        MPI_Comm_set_errhandler(segdist_comm_world(), segdist_errors_return())
        var r: Int32 = 0, s: Int32 = 0
        MPI_Comm_rank(segdist_comm_world(), &r)
        MPI_Comm_size(segdist_comm_world(), &s)
        rank = Int(r); size = Int(s)
        watchdog = Watchdog(rank: rank, timeout: collectiveTimeout)
        watchdog.onTimeout = { message in
            FileHandle.standardError.write((message + "\n").data(using: .utf8)!)
            // give mpirun time to forward the line before the abort tears the job down
            usleep(500_000)
            MPI_Abort(segdist_comm_world(), 3)
        }
    }

    private var finalized = false
    deinit { finalize() }

    public var acceptsDeviceMemory: Bool { Self.cudaAware }

    public func finalize() {
        guard !finalized else { return }
        finalized = true
        watchdog.stop()
        MPI_Finalize()
    }

    func check(_ code: Int32, _ call: String) {
        guard code != segdist_success() else { return }
        let message = MPIError(call: call, rank: rank, code: code).description
        abort("segdist: error: \(message) (another rank has probably failed; ending the job)", code: 3)
    }

    public func sumInPlace(_ values: UnsafeMutablePointer<Double>, count: Int) {
        watchdog.guarding("all-reduce of \(count) doubles") {
            check(MPI_Allreduce(segdist_in_place(), values, Int32(count), segdist_double(), segdist_op_sum(), segdist_comm_world()),
                  "MPI_Allreduce")
        }
    }

    public func sumInPlace(_ values: UnsafeMutablePointer<Float>, count: Int) {
        watchdog.guarding("all-reduce of \(count) floats") {
            check(MPI_Allreduce(segdist_in_place(), values, Int32(count), segdist_float(), segdist_op_sum(), segdist_comm_world()),
                  "MPI_Allreduce")
        }
    }

    public func startSum(_ values: UnsafeMutablePointer<Float>, count: Int, label: String) -> PendingCollective {
        var request = segdist_request_null()
        check(MPI_Iallreduce(segdist_in_place(), values, Int32(count), segdist_float(), segdist_op_sum(), segdist_comm_world(),
                             &request), "MPI_Iallreduce")
        return Pending(owner: self, request: request, label: label)
    }

    public func broadcast(_ bytes: UnsafeMutableRawPointer, count: Int, root: Int) {
        watchdog.guarding("broadcast of \(count) bytes from rank \(root)") {
            check(MPI_Bcast(bytes, Int32(count), segdist_byte(), Int32(root), segdist_comm_world()), "MPI_Bcast")
        }
    }

    public func barrier(label: String) {
        watchdog.guarding(label) { check(MPI_Barrier(segdist_comm_world()), "MPI_Barrier") }
    }

    public func abort(_ message: String, code: Int32) -> Never {
        FileHandle.standardError.write((message + "\n").data(using: .utf8)!)
        usleep(500_000)   // mpirun forwards the line before the abort ends the job
        MPI_Abort(segdist_comm_world(), code)
        exit(code)
    }

    final class Pending: PendingCollective {
        let owner: MPICommunicator
        var request: MPI_Request?
        let label: String
        var done = false
        init(owner: MPICommunicator, request: MPI_Request?, label: String) {
            self.owner = owner; self.request = request; self.label = label
        }
        func test() -> Bool {
            if done { return true }
            var flag: Int32 = 0
            owner.check(MPI_Test(&request, &flag, segdist_status_ignore()), "MPI_Test")
            done = flag != 0
            return done
        }
        func wait() {
            if done { return }
            owner.watchdog.guarding(label) { owner.check(MPI_Wait(&request, segdist_status_ignore()), "MPI_Wait") }
            done = true
        }
    }
}

public struct MPIError: Error, CustomStringConvertible {
    public let call: String, rank: Int, code: Int32
    public var description: String {
        var buffer = [CChar](repeating: 0, count: Int(segdist_max_error_string()) + 1)
        var length: Int32 = 0
        MPI_Error_string(code, &buffer, &length)
        let who = rank >= 0 ? "rank \(rank)" : "this process"
        return "\(call) failed on \(who): \(String(cString: buffer))"
    }
}
