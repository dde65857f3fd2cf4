import XCTest
import Foundation
import SegCore
import SegCUDA
import SegDist
import SegTestSupport

/// Multi-rank behaviour through the real executable under OpenMPI: sync-BN equivalence with one
/// rank, the initial broadcast, resuming on another rank count, a killed rank, a refused config,
/// and the preemption signal.
final class DistributedTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    var dir: String!

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "segdist-mpi-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    var binary: String { Self.root.appendingPathComponent(".build/debug/segdist").path }

    func requireMPI() throws {
        guard FileManager.default.isExecutableFile(atPath: binary) else { throw XCTSkip("segdist is not built") }
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/mpirun") else { throw XCTSkip("mpirun is not installed") }
    }

    /// Starts a process; returns it with its output pipes.
    func start(_ executable: String, _ args: [String]) throws -> (Process, Pipe, Pipe) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = args
        var env = ProcessInfo.processInfo.environment
        env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"; env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        p.environment = env
        p.currentDirectoryURL = URL(fileURLWithPath: dir)
        let out = Pipe(), err = Pipe()
        p.standardOutput = out; p.standardError = err
        try p.run()
        return (p, out, err)
    }

    func run(_ executable: String, _ args: [String]) throws -> (code: Int32, stdout: String, stderr: String) {
        let (p, out, err) = try start(executable, args)
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    func recipe(_ name: String, steps: Int = 5, extra: [String] = []) -> [String] {
        ["--set", "model=unet_shallow", "--set", "width=2", "--set", "image_size=16", "--set", "radius_min=2",
         "--set", "radius_max=6", "--set", "batch_size=8", "--set", "epochs=1", "--set", "steps_per_epoch=\(steps)",
         "--set", "val_images=6", "--set", "sync_bn=true", "--set", "threads=1", "--set", "lr=0.05", "--set", "device=cpu",
         "--set", "checkpoint_dir=\(dir!)/\(name)"] + extra
    }

    func train(ranks: Int, _ args: [String], file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let r = try run(binary, ["--ranks", String(ranks)] + args)
        XCTAssertEqual(r.code, 0, r.stderr, file: file, line: line)
        return r.stdout
    }

    /// Largest relative difference over every float tensor of two checkpoints.
    func difference(_ a: String, _ b: String) throws -> Double {
        let fa = try SafeTensorsFile(path: a), fb = try SafeTensorsFile(path: b)
        XCTAssertEqual(Set(fa.names), Set(fb.names))
        var worst = 0.0, worstName = ""
        defer { print("largest relative difference \(worst) in \(worstName)") }
        for e in fa.entries where e.dtype == .F32 && !e.name.hasPrefix("optimizer.") {
            let x = try fa.tensor(e.name).storage, y = try fb.tensor(e.name).storage
            let scale = max(y.map { abs(Double($0)) }.max() ?? 0, 1e-6)
            let d = (zip(x, y).map { abs(Double($0) - Double($1)) }.max() ?? 0) / scale
            if d > worst { worst = d; worstName = e.name }
        }
        return worst
    }

    func testSyncBatchNormOnFourRanksEqualsOneRank() throws {
        try requireMPI()
        _ = try train(ranks: 1, recipe("one"))
        let four = try train(ranks: 4, recipe("four"))
        XCTAssertTrue(four.contains("\"ranks\":4"), four)
        let d = try difference("\(dir!)/four/step-000005.safetensors", "\(dir!)/one/step-000005.safetensors")
        XCTAssertLessThan(d, 1e-5)
        // the sharded evaluation counts every validation image once
        let evals = try String(contentsOfFile: "\(dir!)/four/metrics.jsonl", encoding: .utf8).split(separator: "\n")
            .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }.filter { $0["kind"] as? String == "eval" }
        XCTAssertEqual(evals.last?["images"] as? Int, 6)
    }

    /// DeepLabV3 (ResNet-18 backbone, ASPP with image pooling, auxiliary head, dropout in both
    /// heads) with sync-BN on 2 ranks equals 1 rank: dropout masks follow the sample, not the
    /// rank. (A dilated ResNet-50 at width 4 is too ill-conditioned for this: PyTorch's own
    /// float32 and float64 gradients differ by ~10% there, and the ranks' different summation
    /// order grows the same way.)
    func testDeepLabV3WithDropoutOnTwoRanksEqualsOneRank() throws {
        try requireMPI()
        let extra = ["--set", "model=deeplabv3_resnet50", "--set", "backbone_depth=18", "--set", "width=4", "--set", "image_size=32", "--set", "in_channels=3",
                     "--set", "data=rgb_shapes", "--set", "loss=ce", "--set", "aux_loss=true", "--set", "radius_max=10",
                     "--set", "steps_per_epoch=3", "--set", "lr=0.01"]
        _ = try train(ranks: 1, recipe("deeplab-one", steps: 3, extra: extra))
        _ = try train(ranks: 2, recipe("deeplab-two", steps: 3, extra: extra))
        let d = try difference("\(dir!)/deeplab-two/step-000003.safetensors", "\(dir!)/deeplab-one/step-000003.safetensors")
        XCTAssertLessThan(d, 2e-4)
    }

    /// A global batch of 7 on 2 ranks (slices of 3 and 4, weighted by their share) gives the
    /// one-rank model.
    func testAnUnevenSplitIsWeightedExactly() throws {
        try requireMPI()
        _ = try train(ranks: 1, recipe("one7", extra: ["--set", "batch_size=7"]))
        _ = try train(ranks: 2, recipe("two7", extra: ["--set", "batch_size=7"]))
        XCTAssertLessThan(try difference("\(dir!)/two7/step-000005.safetensors", "\(dir!)/one7/step-000005.safetensors"), 1e-5)
        // and a batch smaller than the ranks is refused before any work
        let r = try run(binary, ["--ranks", "4"] + recipe("tiny", extra: ["--set", "batch_size=3"]))
        XCTAssertNotEqual(r.code, 0)
        XCTAssertTrue(r.stderr.contains("batch_size 3 cannot be split over 4 ranks"), r.stderr)
    }

    /// A rank that stops answering (SIGSTOP: alive but hung) is caught by the watchdog.
    func testAHungRankIsReportedByTheWatchdog() throws {
        try requireMPI()
        let (p, _, err) = try start(binary, ["--ranks", "2"] + recipe("hung", steps: 100_000, extra: ["--set", "collective_timeout=3"]))
        Thread.sleep(forTimeInterval: 4)
        let stop = try run("/usr/bin/pkill", ["-STOP", "-n", "-f", "\(binary) train .*hung"])
        XCTAssertEqual(stop.code, 0)
        let t0 = Date()
        let e = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertLessThan(Date().timeIntervalSince(t0), 60)
        XCTAssertNotEqual(p.terminationStatus, 0)
        XCTAssertTrue(e.contains("waited 3 s in"), e)
        _ = try? run("/usr/bin/pkill", ["-9", "-f", "\(binary) train .*hung"])
    }

    /// Per-rank batch norm on 4 ranks of 2 images computes what one process does in micro-batches
    /// of 2 (gradients accumulated and weighted by share): the parameters must agree.
    func testMicroBatchesOnOneRankMatchFourRanks() throws {
        try requireMPI()
        _ = try train(ranks: 1, recipe("micro", extra: ["--set", "sync_bn=false", "--set", "micro_batch=2"]))
        _ = try train(ranks: 4, recipe("ranks", extra: ["--set", "sync_bn=false", "--set", "micro_batch=0"]))
        let a = try SafeTensorsFile(path: "\(dir!)/micro/step-000005.safetensors")
        let b = try SafeTensorsFile(path: "\(dir!)/ranks/step-000005.safetensors")
        for e in a.entries where e.dtype == .F32 && !e.name.hasPrefix("optimizer.") && !e.name.contains("running") {
            let x = try a.tensor(e.name).storage, y = try b.tensor(e.name).storage
            let scale = max(y.map { abs(Double($0)) }.max() ?? 0, 1e-6)
            let d = (zip(x, y).map { abs(Double($0) - Double($1)) }.max() ?? 0) / scale
            XCTAssertLessThan(d, 1e-5, e.name)
        }
    }

    func testRanksStartingFromDifferentWeightsAreEqualAfterTheBroadcast() throws {
        try requireMPI()
        let r = try run(binary, ["--ranks", "2", "--debug-rank-init"] + recipe("bcast", steps: 1))
        XCTAssertEqual(r.code, 0, r.stderr)
        let lines = r.stderr.split(separator: "\n").filter { $0.contains("parameter checksum before broadcast") }
        XCTAssertEqual(lines.count, 2)
        let parsed = lines.map { l -> (Double, Double) in
            let words = l.split(separator: " ")
            return (Double(words[words.count - 3])!, Double(words[words.count - 1])!)
        }
        XCTAssertNotEqual(parsed[0].0, parsed[1].0, "ranks were initialised differently")
        XCTAssertEqual(parsed[0].1, parsed[1].1, "and hold the same weights after the broadcast")
    }

    /// Augmented samples are a pure function of (seed, epoch, index): 2 ranks train exactly as 1,
    /// and a run stopped on 2 ranks and resumed on 1 continues the same augmentation stream.
    func testAugmentationIsTheSameOnAnyRankCountAndAcrossAResume() throws {
        try requireMPI()
        let augment = ["--set", "flip_horizontal=true", "--set", "flip_vertical=true", "--set", "scale_min=0.75", "--set", "scale_max=1.5",
                       "--set", "rotate=15", "--set", "crop=12", "--set", "brightness=0.1", "--set", "contrast=0.2",
                       "--set", "gaussian_noise=0.05"]
        _ = try train(ranks: 1, recipe("one", extra: augment))
        _ = try train(ranks: 2, recipe("two", extra: augment))
        XCTAssertLessThan(try difference("\(dir!)/two/step-000005.safetensors", "\(dir!)/one/step-000005.safetensors"), 1e-5)
        _ = try train(ranks: 2, recipe("split", extra: augment) + ["--stop-after", "3"])
        _ = try train(ranks: 1, ["--resume", "\(dir!)/split"])
        XCTAssertLessThan(try difference("\(dir!)/split/step-000005.safetensors", "\(dir!)/one/step-000005.safetensors"), 1e-5)
        // and the augmentation did something: without it the weights differ
        _ = try train(ranks: 1, recipe("plain"))
        XCTAssertGreaterThan(try difference("\(dir!)/plain/step-000005.safetensors", "\(dir!)/one/step-000005.safetensors"), 1e-3)
    }

    /// `--ranks N` binds each rank to its own CPUs/N and sizes its thread pool from that mask:
    /// on this machine 1 rank runs all CPUs, 2 ranks half each (2 CPUs: 1 and 1).
    func testEachRankRunsAsManyThreadsAsItsAffinityMaskHasCPUs() throws {
        try requireMPI()
        let cpus = Parallel.availableCores
        func placement(_ ranks: Int) throws -> (threads: [Int], cpus: [Int]) {
            let r = try run(binary, ["bench", "--width", "2", "--size", "32", "--batch", "4", "--steps", "1", "--ranks", String(ranks)])
            XCTAssertEqual(r.code, 0, r.stderr)
            let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
            return (json["threads_per_rank"] as! [Int], json["cpus_per_rank"] as! [Int])
        }
        let one = try placement(1)
        XCTAssertEqual(one.threads, [cpus])
        XCTAssertEqual(one.cpus, [cpus])
        if cpus >= 2 {
            let two = try placement(2)
            XCTAssertEqual(two.cpus, [cpus / 2, cpus / 2], "each rank bound to its half")
            XCTAssertEqual(two.threads, two.cpus, "threads = CPUs of the mask")
        }
        XCTAssertEqual(Launch.placementArguments(ranks: 2, cores: 16), ["--use-hwthread-cpus", "--map-by", "slot:PE=8"])
        XCTAssertEqual(Launch.placementArguments(ranks: 4, cores: 2), ["--oversubscribe", "--bind-to", "none"])
        // a user's mpirun binding 2 ranks to one CPU each on 16 leaves 14 idle: said once, with the fix
        let warning = try XCTUnwrap(Launch.idleCoresWarning(rank: 0, localRanks: 2, threads: 1, allowed: 1, node: 16))
        XCTAssertTrue(warning.contains("use 2 of its 16 CPUs") && warning.contains("--map-by slot:PE=8"), warning)
        XCTAssertNil(Launch.idleCoresWarning(rank: 0, localRanks: 2, threads: 8, allowed: 8, node: 16))
    }

    /// Two "hosts" (network namespaces joined by a veth pair, OpenMPI over TCP between them,
    /// the remote rank started through `ip netns exec`) train exactly as one rank.
    func testTwoHostsOverTCPMatchOneRank() throws {
        try requireMPI()
        let script = Self.root.appendingPathComponent("launch/netns-two-hosts.sh").path
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") || FileManager.default.isExecutableFile(atPath: "/sbin/ip") else {
            throw XCTSkip("two-host check did not run: it needs root and iproute2 (`ip`) to make network namespaces")
        }
        let probe = try run("/usr/sbin/ip", ["netns", "add", "segdist-probe"])
        _ = try? run("/usr/sbin/ip", ["netns", "del", "segdist-probe"])
        guard probe.code == 0 else {
            throw XCTSkip("two-host check did not run: network namespaces cannot be made here (\(probe.stderr.trimmingCharacters(in: .whitespacesAndNewlines)))")
        }
        let r = try run("/usr/bin/env", ["SEGDIST=\(binary)", script, "check", dir + "/netns"])
        XCTAssertEqual(r.code, 0, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("netns: OK"), r.stdout + r.stderr)
        XCTAssertLessThan(try difference("\(dir!)/netns/two/step-000005.safetensors", "\(dir!)/netns/one/step-000005.safetensors"), 1e-5)
    }

    /// OpenBLAS's kernels follow the CPU, not its model table: when OpenBLAS falls back to its
    /// generic kernels on a CPU it does not know (pretended here), segdist loads it with the ones
    /// the CPU's vector units call for; a value the user set is kept.
    func testBLASKernelsAreChosenFromTheCPU() throws {
        try requireMPI()
        XCTAssertEqual(BLASKernels.better(than: "Prescott", vectorLevel: 2), "SkylakeX")
        XCTAssertEqual(BLASKernels.better(than: "Prescott", vectorLevel: 1), "Haswell")
        XCTAssertNil(BLASKernels.better(than: "Prescott", vectorLevel: 0))
        XCTAssertNil(BLASKernels.better(than: "Cooperlake", vectorLevel: 2))
        XCTAssertEqual(BLASKernels.better(than: "Haswell", vectorLevel: 2), "SkylakeX")
        func kernels(_ env: [String]) throws -> String {
            let r = try run("/usr/bin/env", ["-u", "OPENBLAS_CORETYPE", "SEGDIST_GEMM=openblas"] + env + [binary, "bench", "--width", "2", "--size", "32", "--batch", "2", "--steps", "1"])
            XCTAssertEqual(r.code, 0, r.stderr)
            let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
            return json["kernels"] as! String
        }
        let expected = BLASKernels.better(than: "Prescott", vectorLevel: BLASKernels.vectorLevel)?.lowercased()
        let isa = kernelInstructionSet + "+"
        XCTAssertEqual(try kernels(["SEGDIST_BLAS_PRETEND=Prescott"]), isa + "openblas-" + (expected ?? blasKernelName.lowercased()))
        // the variable does not decide (a guard for old builds), unless the user asks it to
        XCTAssertEqual(try kernels(["OPENBLAS_CORETYPE=Prescott"]), isa + "openblas-" + (expected ?? "prescott"), "chosen from CPUID")
        XCTAssertEqual(try kernels(["OPENBLAS_CORETYPE=Prescott", "SEGDIST_KEEP_OPENBLAS_CORETYPE=1"]), isa + "openblas-prescott",
                       "SEGDIST_KEEP_OPENBLAS_CORETYPE=1 keeps the user's choice")
        XCTAssertEqual(BLASKernels.better(than: "SkylakeX", vectorLevel: 1), "Haswell", "AVX-512 kernels on an AVX2 CPU would not run")
        XCTAssertNil(BLASKernels.better(than: "Haswell", vectorLevel: 1))
    }

    /// The bench names the GEMM libraries in use; SEGDIST_GEMM picks one library for every GEMM,
    /// and a value it does not know, or oneDNN where it is not installed, ends with a message.
    func testGEMMLibraryChoiceIsNamedAndChecked() throws {
        func bench(_ gemm: String) throws -> (code: Int32, kernels: String?, stderr: String) {
            let r = try run("/usr/bin/env", ["SEGDIST_GEMM=" + gemm, binary, "bench", "--width", "2", "--size", "32", "--batch", "2", "--steps", "1"])
            let json = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
            return (r.code, json?["kernels"] as? String, r.stderr)
        }
        let openblas = try bench("openblas")
        XCTAssertEqual(openblas.code, 0, openblas.stderr)
        XCTAssertTrue(openblas.kernels?.hasPrefix(kernelInstructionSet + "+openblas-") == true, "\(openblas.kernels ?? "none")")
        XCTAssertFalse(openblas.kernels?.contains("onednn") ?? true)
        let bogus = try bench("mkl")
        XCTAssertEqual(bogus.code, 2)
        XCTAssertEqual(bogus.stderr, "segdist: SEGDIST_GEMM=mkl is not one of auto, openblas, onednn\n")
        // checked at start, before any work: even a command that runs no GEMM stops
        let early = try run("/usr/bin/env", ["SEGDIST_GEMM=mkl", binary, "--version"])
        XCTAssertEqual(early.code, 2)
        XCTAssertEqual(early.stdout, "")
        let auto = try bench("auto"), onednn = try bench("onednn")
        if GEMMLibrary.isOneDNNAvailable {
            XCTAssertEqual(auto.kernels, openblas.kernels.map { $0 + "+onednn" }, auto.stderr)
            XCTAssertEqual(onednn.kernels, kernelInstructionSet + "+onednn", onednn.stderr)
        } else {
            XCTAssertEqual(auto.kernels, openblas.kernels, "without libdnnl every GEMM is OpenBLAS's")
            XCTAssertEqual(onednn.code, 2)
            XCTAssertTrue(onednn.stderr.contains("apt-get install libdnnl2"), onednn.stderr)
        }
    }

    /// Kernels built for this CPU's AVX-512/AVX2 (Package.swift) refuse, with a message and exit
    /// 2, to start on a CPU without them (pretended) instead of dying on an illegal instruction.
    func testKernelsBuiltForWiderVectorsRefuseAnOlderCPU() throws {
        if ProcessInfo.processInfo.environment["SEGDIST_KERNELS"] == nil {
            XCTAssertEqual(kernelInstructionSet, ["avx512", "avx2", "generic"][2 - min(BLASKernels.vectorLevel, 2)],
                           "the build picks the widest vectors of the CPU it runs on")
        }
        guard kernelInstructionSet != "generic" else {
            throw XCTSkip("older-CPU refusal check did not run: this build's kernels are generic (no AVX2/AVX-512 here)")
        }
        let below = kernelInstructionSet == "avx512" ? 1 : 0
        let r = try run("/usr/bin/env", ["SEGDIST_CPU_PRETEND=\(below)", binary, "--version"])
        XCTAssertEqual(r.code, 2)
        XCTAssertTrue(r.stderr.contains("SEGDIST_KERNELS=generic"), r.stderr)
        XCTAssertTrue(r.stderr.contains(kernelInstructionSet == "avx512" ? "AVX-512" : "AVX2"), r.stderr)
        XCTAssertEqual(try run("/usr/bin/env", ["SEGDIST_CPU_PRETEND=2", binary, "--version"]).code, 0)
    }

    /// On a GPU: 2 ranks sharing it (or one each) equal 1 rank with sync_bn to 1e-4 after 5
    /// steps, and the GPU run equals the CPU run to 1e-3.
    func testTwoGPURanksMatchOne() throws {
        try requireMPI()
        _ = try CUDATesting.backendOrSkip("2 GPU ranks = 1 GPU rank")
        let gpu = ["--set", "device=cuda", "--set", "share_gpu=true"]
        _ = try train(ranks: 1, recipe("gpu1") + gpu)
        _ = try train(ranks: 2, recipe("gpu2") + gpu)
        _ = try train(ranks: 1, recipe("cpu1"))
        let ranks = try difference("\(dir!)/gpu2/step-000005.safetensors", "\(dir!)/gpu1/step-000005.safetensors")
        let devices = try difference("\(dir!)/gpu1/step-000005.safetensors", "\(dir!)/cpu1/step-000005.safetensors")
        print("GPU: 2 ranks vs 1 rank \(ranks), GPU vs CPU \(devices)")
        XCTAssertLessThan(ranks, 1e-4)
        XCTAssertLessThan(devices, 1e-3)
    }

    /// The GPU path of the binary end to end on a machine without a GPU: the CUDA kernels built
    /// as host code behind a stand-in driver and cuBLAS (`CUDAEmulator`). `segdist verify`
    /// passes every PyTorch fixture through the CUDA backend; training on it equals training on
    /// the CPU; 2 ranks sharing it equal 1 (gradients staged through the host for MPI).
    func testTheCUDAPathOnAnEmulatedGPU() throws {
        try requireMPI()
        CUDATesting.locateNVRTC()
        guard case .success = NVRTC.shared else {
            throw XCTSkip("emulated-GPU check did not run: NVRTC is not installed here (pip install nvidia-cuda-nvrtc-cu12)")
        }
        let library: String
        switch CUDAEmulator.build(in: dir + "/emulator") {
        case let .success(path): library = path
        case let .failure(error):
            // no g++ is a reason not to run; g++ failing on the emulator or the kernels is a failure
            if (try? run("/usr/bin/env", ["g++", "--version"]))?.code == 0 { XCTFail("\(error)"); return }
            throw XCTSkip("emulated-GPU check needs g++: \(error)")
        }
        var env = ["SEGDIST_LIBCUDA=\(library)", "SEGDIST_CUBLAS=\(library)", "XDG_CACHE_HOME=\(dir!)/cache"]
        if let nvrtc = ProcessInfo.processInfo.environment["SEGDIST_NVRTC"] { env.append("SEGDIST_NVRTC=\(nvrtc)") }
        let verify = try run("/usr/bin/env", env + [binary, "verify", "--device", "cuda", "--fixtures", Fixtures.referencePath])
        XCTAssertEqual(verify.code, 0, verify.stdout + verify.stderr)
        XCTAssertTrue(verify.stdout.contains("self-check against the CPU: ok") && verify.stdout.contains("cuda:0 vs PyTorch"), verify.stdout)
        XCTAssertFalse(verify.stdout.contains("FAILED"), verify.stdout)
        XCTAssertTrue(verify.stdout.contains("convolutions by im2col + cuBLAS"), verify.stdout)
        print(verify.stdout)
        // the same with cuDNN's convolutions (the emulated cuDNN ranks a TF32 algorithm first, which must be passed over)
        let withCuDNN = try run("/usr/bin/env", env + ["SEGDIST_CUDNN=\(library)", binary, "verify", "--device", "cuda", "--fixtures",
                                                       Fixtures.referencePath])
        XCTAssertEqual(withCuDNN.code, 0, withCuDNN.stdout + withCuDNN.stderr)
        XCTAssertTrue(withCuDNN.stdout.contains("convolutions by cuDNN 9.1") && !withCuDNN.stdout.contains("FAILED"), withCuDNN.stdout)
        print(withCuDNN.stdout)
        // a cuDNN that disagrees with the CPU is dropped by the self-check; the GPU stays, with im2col + cuBLAS
        let wrongCuDNN = try run("/usr/bin/env", env + ["SEGDIST_CUDNN=\(library)", "SEGDIST_EMULATED_CUDNN_WRONG=1", binary, "verify",
                                                        "--device", "cuda", "--fixtures", Fixtures.referencePath])
        XCTAssertEqual(wrongCuDNN.code, 0, wrongCuDNN.stdout + wrongCuDNN.stderr)
        XCTAssertTrue(wrongCuDNN.stdout.contains("cuDNN 9.1 failed the self-check") && wrongCuDNN.stdout.contains("using im2col + cuBLAS"),
                      wrongCuDNN.stdout)
        func trainOn(_ ranks: Int, _ name: String, _ extra: [String]) throws {
            let r = try run("/usr/bin/env", env + [binary, "--ranks", String(ranks)] + recipe(name) + extra)
            XCTAssertEqual(r.code, 0, r.stderr)
        }
        // 64 px: enough values per channel for several blocks per channel in the reductions
        let size = ["--set", "image_size=64"], gpu = ["--set", "device=cuda", "--set", "share_gpu=true"] + size
        try trainOn(1, "emulated1", gpu)
        env.append("SEGDIST_CUDA_COLUMN_MB=0")   // convolutions one image at a time: the chunked path
        try trainOn(1, "emulated1-chunked", gpu)
        try trainOn(2, "emulated2", gpu)
        // a CUDA-aware MPI (forced: the emulated GPU's memory is host memory MPI can read) sums the device buffer itself
        env.append("SEGDIST_CUDA_AWARE_MPI=1")
        try trainOn(2, "emulated2-direct", gpu)
        env.removeLast()
        try trainOn(1, "cpu", size)
        env.append("SEGDIST_CUDNN=\(library)")
        try trainOn(1, "emulated1-cudnn", gpu)
        env.removeLast()
        // MobileNetV3's kernels (depthwise convolutions, hardswish, hardsigmoid, channel scaling)
        let mobileNet = ["--set", "model=lraspp_mobilenet_v3_large", "--set", "width=4", "--set", "image_size=32", "--set", "lr=0.01", "--set", "steps_per_epoch=1"]
        try trainOn(1, "emulated1-mobilenet", gpu + mobileNet)
        try trainOn(1, "cpu-mobilenet", size + mobileNet)
        // one step: parameters and running variances relative to each tensor's scale (at least 1e-3:
        // the projection BNs' shifts have an exactly-zero gradient and hold the step times rounding
        // noise); running means absolutely (0.01 x batch means of nearly zero-mean maps)
        let gpuRun = try SafeTensorsFile(path: "\(dir!)/emulated1-mobilenet/step-000001.safetensors")
        let cpuRun = try SafeTensorsFile(path: "\(dir!)/cpu-mobilenet/step-000001.safetensors")
        var mobile = 0.0, means = 0.0
        for e in cpuRun.entries where e.dtype == .F32 && !e.name.hasPrefix("optimizer.") {
            let x = try gpuRun.tensor(e.name).storage, y = try cpuRun.tensor(e.name).storage
            let d = zip(x, y).map { abs(Double($0) - Double($1)) }.max() ?? 0
            if e.name.hasSuffix("running_mean") { means = max(means, d); continue }
            mobile = max(mobile, d / max(y.map { abs(Double($0)) }.max() ?? 0, 1e-3))
        }
        XCTAssertLessThan(mobile, 1e-4, "LR-ASPP on MobileNetV3: emulated GPU vs CPU, parameters and running variances")
        XCTAssertLessThan(means, 1e-6, "LR-ASPP on MobileNetV3: emulated GPU vs CPU, running means")
        let cudnn = try difference("\(dir!)/emulated1-cudnn/step-000005.safetensors", "\(dir!)/cpu/step-000005.safetensors")
        XCTAssertLessThan(cudnn, 1e-4)
        let devices = try difference("\(dir!)/emulated1/step-000005.safetensors", "\(dir!)/cpu/step-000005.safetensors")
        let ranks = try difference("\(dir!)/emulated2/step-000005.safetensors", "\(dir!)/emulated1/step-000005.safetensors")
        let direct = try difference("\(dir!)/emulated2-direct/step-000005.safetensors", "\(dir!)/emulated1/step-000005.safetensors")
        XCTAssertLessThan(direct, 1e-4)
        let chunked = try difference("\(dir!)/emulated1-chunked/step-000005.safetensors", "\(dir!)/emulated1/step-000005.safetensors")
        print("emulated GPU: vs CPU \(devices) (with cuDNN: \(cudnn); LR-ASPP MobileNetV3 after a step: \(mobile), running means \(means) absolute), 2 ranks vs 1 \(ranks) (device memory to MPI directly: \(direct)), image by image vs whole batch \(chunked)")
        XCTAssertLessThan(chunked, 1e-5)
        XCTAssertLessThan(devices, 1e-4)
        XCTAssertLessThan(ranks, 1e-4)
        // a GPU too small for the step: one message with what was asked and what is free, and micro_batch
        let small = try run("/usr/bin/env", env + ["SEGDIST_EMULATED_GPU_MB=2", binary] + recipe("small") + gpu
                                 + ["--set", "image_size=128", "--set", "width=8"])
        XCTAssertNotEqual(small.code, 0)
        print("emulated 2 MB GPU: " + (small.stderr.split(separator: "\n").last.map(String.init) ?? ""))
        XCTAssertTrue(small.stderr.contains("out of GPU memory: asked for") && small.stderr.contains("MiB free")
                      && small.stderr.contains("micro_batch"), small.stderr)
    }

    func testACheckpointOfFourRanksResumesOnTwo() throws {
        try requireMPI()
        _ = try train(ranks: 1, recipe("straight"))
        _ = try train(ranks: 4, recipe("split") + ["--stop-after", "3"])
        _ = try train(ranks: 2, ["--resume", "\(dir!)/split/step-000003.safetensors"])
        let d = try difference("\(dir!)/split/step-000005.safetensors", "\(dir!)/straight/step-000005.safetensors")
        XCTAssertLessThan(d, 1e-5)
    }

    /// One rank resumed and one fresh (or resumed elsewhere) never train together: the start
    /// handshake compares step, optimizer step and the loaded parameters, before any step.
    func testAMixedResumeIsRefusedBeforeAnyStep() throws {
        try requireMPI()
        _ = try train(ranks: 1, recipe("mixed", steps: 5) + ["--stop-after", "3"])
        let before = try FileManager.default.contentsOfDirectory(atPath: "\(dir!)/mixed").sorted()
        let r = try run("/usr/bin/mpirun", ["--oversubscribe", "-n", "1", binary, "--resume", "\(dir!)/mixed", ":",
                                            "-n", "1", binary] + recipe("mixed", steps: 5))
        XCTAssertNotEqual(r.code, 0)
        XCTAssertTrue(r.stderr.contains("rank 1: starts at step 0") && r.stderr.contains("where rank 0 starts at step 3"), r.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: "\(dir!)/mixed").sorted(), before, "nothing was written")
    }

    func testAKilledRankEndsTheJob() throws {
        try requireMPI()
        let (p, _, err) = try start(binary, ["--ranks", "2"] + recipe("killed", steps: 100_000))
        Thread.sleep(forTimeInterval: 4)
        // kill -9 the rank processes' newest member (a rank, not the launcher)
        let pk = try run("/usr/bin/pkill", ["-9", "-n", "-f", "\(binary) train .*killed"])
        XCTAssertEqual(pk.code, 0, "found a rank to kill")
        let t0 = Date()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        XCTAssertLessThan(Date().timeIntervalSince(t0), 60)
        XCTAssertNotEqual(p.terminationStatus, 0)
        XCTAssertTrue(String(decoding: e, as: UTF8.self).contains("rank"), "the message names the rank")
    }

    func testAMismatchedConfigIsRefused() throws {
        try requireMPI()
        let base = recipe("mismatch")
        let r = try run("/usr/bin/mpirun", ["--oversubscribe", "-n", "1", binary] + base + ["--set", "lr=0.01", ":",
                                              "-n", "1", binary] + base + ["--set", "lr=0.02"])
        XCTAssertNotEqual(r.code, 0)
        XCTAssertTrue(r.stderr.contains("rank 1 runs a different config or version: 'lr: 0.02' where rank 0 has 'lr: 0.01'"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir!)/mismatch"), "nothing was written")
    }

    /// Ctrl-C checkpoints at the step boundary, says where, and exits 130 — in one process and
    /// through the --ranks launcher; a second Ctrl-C ends at once; SIGHUP stops like SIGTERM.
    func testCtrlCCheckpointsAndExitsNonZeroAndASecondOneStopsAtOnce() throws {
        try requireMPI()
        for (name, ranks) in [("int1", 1), ("int2", 2)] {
            let (p, _, err) = try start(binary, ["--ranks", String(ranks)] + recipe(name, steps: 100_000))
            Thread.sleep(forTimeInterval: ranks == 1 ? 3 : 5)
            kill(p.processIdentifier, SIGINT)
            let e = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            XCTAssertNotEqual(p.terminationStatus, 0, "\(name): an interrupted run does not report success")
            if ranks == 1 { XCTAssertEqual(p.terminationStatus, 130, name) }
            XCTAssertTrue(e.contains("stopped by Ctrl-C (SIGINT) after step") && e.contains("checkpoint \(dir!)/\(name)/step-"), "\(name): \(e)")
            let names = try FileManager.default.contentsOfDirectory(atPath: "\(dir!)/\(name)")
            XCTAssertTrue(names.contains { $0.hasPrefix("step-") }, "\(name): \(names)")
        }
        let (p, _, err) = try start(binary, recipe("twice", steps: 100_000))
        Thread.sleep(forTimeInterval: 3)
        kill(p.processIdentifier, SIGINT); kill(p.processIdentifier, SIGINT)
        let t0 = Date()
        let e = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 130)
        XCTAssertLessThan(Date().timeIntervalSince(t0), 10)
        XCTAssertTrue(e.contains("interrupted again") || e.contains("stopped by Ctrl-C"), e)
        let (h, out, _) = try start(binary, recipe("hup", steps: 100_000))
        Thread.sleep(forTimeInterval: 3)
        kill(h.processIdentifier, SIGHUP)
        let o = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        h.waitUntilExit()
        XCTAssertEqual(h.terminationStatus, 0)
        XCTAssertTrue(o.contains("\"stopped_by\":\"SIGHUP\"") && o.contains("\"stopped_by_signal\":1}"), o)
    }

    func testAPreemptionSignalCheckpointsAndExitsCleanly() throws {
        try requireMPI()
        let (p, out, _) = try start(binary, ["--ranks", "2"] + recipe("preempt", steps: 100_000))
        Thread.sleep(forTimeInterval: 5)
        kill(p.processIdentifier, SIGTERM)
        let o = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
        let summary = String(decoding: o, as: UTF8.self)
        XCTAssertTrue(summary.contains("\"stopped_by_signal\":10") && summary.contains("passed on by the launcher"), summary)
        let names = try FileManager.default.contentsOfDirectory(atPath: "\(dir!)/preempt")
        XCTAssertTrue(names.contains { $0.hasPrefix("step-") }, "\(names)")
    }
}
