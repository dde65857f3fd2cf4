import Foundation
import SegCore

/// Where and how this process runs: rank layout, cores, threads per rank, self-launching
/// under mpirun.
public enum Launch {
    /// Cores this process may run on (its CPU affinity, which mpirun's binding narrows).
    public static var coresAllowed: Int { Parallel.availableCores }

    /// Cores of the machine.
    public static var coresOnNode: Int { ProcessInfo.processInfo.activeProcessorCount }

    /// Default worker threads: the node's cores shared among the ranks on it, within what
    /// this process is allowed to run on.
    public static func defaultThreads(localRanks: Int) -> Int {
        max(1, min(coresAllowed, coresOnNode / max(1, localRanks)))
    }

    /// Runs this executable again under `mpirun -n ranks` with the same arguments and returns
    /// its exit code. Adds --oversubscribe when there are more ranks than cores.
    public static func relaunchUnderMPI(ranks: Int, arguments: [String]) throws -> Int32 {
        guard let mpirun = findExecutable("mpirun") else {
            throw LaunchError("--ranks \(ranks) needs mpirun, which is not on PATH (install openmpi-bin)")
        }
        var args = ["-n", String(ranks)]
        if ranks > coresOnNode { args += ["--oversubscribe"] }
        let me = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL.path
        let selfPath = FileManager.default.isExecutableFile(atPath: me) ? me : (findExecutable(CommandLine.arguments[0]) ?? me)
        args += [selfPath] + arguments
        let p = Process()
        p.executableURL = URL(fileURLWithPath: mpirun)
        p.arguments = args
        var env = ProcessInfo.processInfo.environment
        if getuid() == 0 {
            // OpenMPI refuses to run as root unless told; containers and CI run as root.
            env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"; env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        }
        p.environment = env
        try p.run()
        // Pass Ctrl-C and preemption signals on to mpirun. SIGTERM travels as SIGUSR1, which
        // mpirun forwards to the ranks without ending the job itself, so rank 0 can checkpoint
        // and every rank exit cleanly (the ranks treat both alike).
        for sig in [SIGINT, SIGTERM, SIGUSR1] { signal(sig, SIG_IGN) }
        let sources = [SIGINT, SIGTERM, SIGUSR1].map { sig -> DispatchSourceSignal in
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            s.setEventHandler { kill(p.processIdentifier, sig == SIGTERM ? SIGUSR1 : sig) }
            s.resume()
            return s
        }
        p.waitUntilExit()
        sources.forEach { $0.cancel() }
        return p.terminationStatus
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

public struct LaunchError: Error, CustomStringConvertible {
    public let description: String
    public init(_ message: String) { description = message }
}

/// Remembers SIGTERM / SIGUSR1 (a Slurm preemption) so training can checkpoint at the next
/// step boundary and stop cleanly.
public final class StopSignal {
    private let lock = NSLock()
    private var received: Int32 = 0
    private var sources: [DispatchSourceSignal] = []

    public init(signals: [Int32] = [SIGTERM, SIGUSR1]) {
        for sig in signals {
            signal(sig, SIG_IGN)
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            s.setEventHandler { [weak self] in self?.lock.lock(); self?.received = sig; self?.lock.unlock() }
            s.resume()
            sources.append(s)
        }
    }

    /// The signal received, or 0.
    public var signalNumber: Int32 { lock.lock(); defer { lock.unlock() }; return received }
}
