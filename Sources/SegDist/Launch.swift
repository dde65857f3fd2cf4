import Foundation
import SegCore

/// Where and how this process runs: rank layout, cores, threads per rank, self-launching
/// under mpirun.
public enum Launch {
    /// Cores this process may run on (its CPU affinity, which mpirun's binding narrows).
    public static var coresAllowed: Int { Parallel.availableCores }

    /// Cores of the machine.
    public static var coresOnNode: Int { ProcessInfo.processInfo.activeProcessorCount }

    /// Default worker threads: the cores of this process's affinity mask (what mpirun bound it
    /// to), or, when it is not bound, the node's cores shared among the ranks on it.
    public static func defaultThreads(localRanks: Int) -> Int {
        max(1, min(coresAllowed, coresOnNode / max(1, localRanks)))
    }

    /// mpirun's placement for `ranks` ranks on `cores` logical CPUs: each rank bound to its own
    /// cores/ranks of them (`--map-by slot:PE=k`, counting hardware threads, which is what the
    /// affinity mask and `nproc` count), so its thread pool is sized from its mask; more ranks
    /// than CPUs: oversubscribed, unbound.
    public static func placementArguments(ranks: Int, cores: Int) -> [String] {
        ranks > cores ? ["--oversubscribe", "--bind-to", "none"]
                      : ["--use-hwthread-cpus", "--map-by", "slot:PE=\(max(1, cores / ranks))"]
    }

    /// A warning when this rank's binding leaves most of the node idle (a user's own mpirun or
    /// srun binding each rank to one core, say); nil when the placement uses the node.
    public static func idleCoresWarning(rank: Int, localRanks: Int, threads: Int, allowed: Int = coresAllowed,
                                        node: Int = coresOnNode) -> String? {
        let used = threads * max(1, localRanks)
        guard used * 2 <= node else { return nil }
        return "segdist: warning: rank \(rank) runs \(threads) thread(s) (its affinity mask allows \(allowed) CPU(s)), so the \(localRanks) rank(s) on this node use \(used) of its \(node) CPUs; bind each rank to \(node / max(1, localRanks)) CPUs (`mpirun --map-by slot:PE=\(node / max(1, localRanks))`, `srun --cpus-per-task=\(node / max(1, localRanks))`) or let `segdist --ranks N` place them"
    }

    /// Runs this executable again under `mpirun -n ranks` with the same arguments and returns
    /// its exit code. Adds --oversubscribe when there are more ranks than cores.
    public static func relaunchUnderMPI(ranks: Int, arguments: [String]) throws -> Int32 {
        guard let mpirun = findExecutable("mpirun") else {
            throw LaunchError("--ranks \(ranks) needs mpirun, which is not on PATH (install openmpi-bin)")
        }
        var args = ["-n", String(ranks)] + placementArguments(ranks: ranks, cores: coresAllowed)
        let me = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL.path
        let selfPath = FileManager.default.isExecutableFile(atPath: me) ? me : (findExecutable(CommandLine.arguments[0]) ?? me)
        args += [selfPath] + arguments
        let p = Process()
        p.executableURL = URL(fileURLWithPath: mpirun)
        p.arguments = args
        var env = ProcessInfo.processInfo.environment
        // the ranks end when this process does, however it ends (`endWithTheLauncher`)
        env[launcherVariable] = String(getpid())
        if getuid() == 0 {
            // OpenMPI refuses to run as root unless told; containers and CI run as root.
            env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"; env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        }
        p.environment = env
        try p.run()
        // Pass Ctrl-C and preemption signals on to mpirun as signals it forwards to the ranks
        // without ending the job itself: SIGTERM and SIGHUP travel as SIGUSR1 (checkpoint, exit
        // 0), the first Ctrl-C as SIGUSR2 (checkpoint, exit 130); a second Ctrl-C is passed on as
        // SIGINT, which ends the job at once.
        for sig in [SIGINT, SIGTERM, SIGUSR1, SIGHUP] { signal(sig, SIG_IGN) }
        let interrupts = NSLock()
        var interrupted = false
        let sources = [SIGINT, SIGTERM, SIGUSR1, SIGHUP].map { sig -> DispatchSourceSignal in
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            s.setEventHandler {
                guard sig == SIGINT else { kill(p.processIdentifier, SIGUSR1); return }
                interrupts.lock(); let again = interrupted; interrupted = true; interrupts.unlock()
                kill(p.processIdentifier, again ? SIGINT : SIGUSR2)
            }
            s.resume()
            return s
        }
        p.waitUntilExit()
        sources.forEach { $0.cancel() }
        return p.terminationStatus
    }

    /// The environment variable holding the `--ranks N` launcher's pid, for its ranks.
    public static let launcherVariable = "SEGDIST_LAUNCHER_PID"

    /// Under the `--ranks N` launcher: ends this rank (with one line saying why) when the
    /// launcher is gone — killed with SIGKILL, it cannot pass anything on, and mpirun alone
    /// would let the ranks train on, writing files nobody waits for. Checked twice a second.
    public static func endWithTheLauncher(rank: Int) {
        guard let pid = ProcessInfo.processInfo.environment[launcherVariable].flatMap({ pid_t($0) }), pid > 1 else { return }
        let t = Thread {
            while true {
                Thread.sleep(forTimeInterval: 0.5)
                if kill(pid, 0) != 0 && errno == ESRCH {
                    FileHandle.standardError.write("segdist: error: rank \(rank): the segdist launcher (pid \(pid)) is gone; ending this rank\n".data(using: .utf8)!)
                    _exit(137)
                }
            }
        }
        t.name = "segdist-launcher-watch"
        t.start()
    }

    /// A stop signal's name as the user sent it: the launcher passes Ctrl-C on as SIGUSR2 and
    /// SIGTERM, SIGHUP and SIGUSR1 as SIGUSR1.
    public static func signalName(_ sig: Int32, underLauncher: Bool = ProcessInfo.processInfo.environment[launcherVariable] != nil) -> String {
        switch sig {
        case SIGINT, SIGUSR2: return "Ctrl-C (SIGINT)"
        case SIGTERM: return "SIGTERM"
        case SIGHUP: return "SIGHUP"
        case SIGUSR1: return underLauncher ? "SIGTERM, SIGHUP or SIGUSR1 (passed on by the launcher)" : "SIGUSR1"
        default: return "signal \(sig)"
        }
    }

    static func findExecutable(_ name: String) -> String? {
        if name.contains("/") { return FileManager.default.isExecutableFile(atPath: name) ? name : nil }
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let path = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }
}

/// This process's part in the job, set up in one place: the communicator (MPI under a
/// launcher, else this process alone), the ranks on this node and this one's place among them.
/// `communicator.finalize()` ends it.
public struct RankContext {
    public let communicator: Communicator
    public let localRanks: Int, localRank: Int

    /// Whether `--ranks N` asks this process to start the job under mpirun instead of being a rank.
    public static func shouldLaunch(ranks: Int?) -> Bool { (ranks ?? 1) > 1 && !MPICommunicator.launchedByMPI }

    /// The launcher's side of `--ranks N`: starts N ranks of this command under mpirun and
    /// returns their exit code.
    public static func launch(ranks: Int, arguments: [String]) throws -> Int32 {
        try Launch.relaunchUnderMPI(ranks: ranks, arguments: arguments)
    }

    /// Runs `body` (which returns the exit code) as this rank's part of the job and ends that
    /// part the one way a job must end, whatever the command:
    /// - done: MPI is finalized and the code returned;
    /// - an error every rank met at the same point (`AgreementError`, the start agreement and
    ///   every `agree`): every rank finalizes, rank 0 prints it once, code 2;
    /// - any other error: with other ranks, the whole job is aborted naming this rank (none is
    ///   left waiting in a collective); alone, it is rethrown for the command to report.
    public func run(_ body: () throws -> Int32) throws -> Int32 {
        do {
            let code = try body()
            communicator.finalize()
            return code
        } catch let agreed as AgreementError {
            if communicator.rank == 0 { FileHandle.standardError.write(Data("segdist: error: \(agreed)\n".utf8)) }
            communicator.finalize()
            return 2
        } catch where communicator.size > 1 {
            communicator.abort("segdist: error: rank \(communicator.rank): \(error)", code: 2)
        }
    }

    /// Joins the job when an MPI launcher started this process (and, under `--ranks N`'s
    /// launcher, ends with it), else runs alone.
    public static func join(collectiveTimeout: Double) throws -> RankContext {
        guard MPICommunicator.launchedByMPI else { return RankContext(communicator: LocalCommunicator(), localRanks: 1, localRank: 0) }
        let communicator = try MPICommunicator(collectiveTimeout: collectiveTimeout)
        Launch.endWithTheLauncher(rank: communicator.rank)
        return RankContext(communicator: communicator, localRanks: MPICommunicator.localSize, localRank: MPICommunicator.localRank)
    }
}

public struct LaunchError: Error, CustomStringConvertible {
    public let description: String
    public init(_ message: String) { description = message }
}

/// Remembers the signals that stop training at the next step boundary, with a checkpoint:
/// SIGTERM, SIGUSR1 (a Slurm preemption) and SIGHUP stop cleanly (exit 0); SIGINT (Ctrl-C) and
/// SIGUSR2 (Ctrl-C passed on by the `--ranks N` launcher) are an interruption (exit 130), and a
/// second one ends the process at once.
public final class StopSignal {
    public static let interrupts: Set<Int32> = [SIGINT, SIGUSR2]
    private let lock = NSLock()
    private var received: Int32 = 0
    private var sources: [DispatchSourceSignal] = []

    public init(signals: [Int32] = [SIGTERM, SIGUSR1, SIGHUP, SIGINT, SIGUSR2]) {
        for sig in signals {
            signal(sig, SIG_IGN)
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            s.setEventHandler { [weak self] in
                guard let self else { return }
                self.lock.lock(); defer { self.lock.unlock() }
                if Self.interrupts.contains(sig) && Self.interrupts.contains(self.received) {
                    FileHandle.standardError.write("segdist: interrupted again: stopping now, without a checkpoint\n".data(using: .utf8)!)
                    _exit(130)
                }
                if !Self.interrupts.contains(self.received) { self.received = sig }
            }
            s.resume()
            sources.append(s)
        }
    }

    /// The signal received, or 0.
    public var signalNumber: Int32 { lock.lock(); defer { lock.unlock() }; return received }

    /// The signal as the ranks agree on it (the largest wins): interruptions rank above stops.
    public var agreementCode: Double {
        let sig = signalNumber
        return Double(sig == 0 ? 0 : Self.interrupts.contains(sig) ? 1000 + Int(sig) : Int(sig))
    }
}
