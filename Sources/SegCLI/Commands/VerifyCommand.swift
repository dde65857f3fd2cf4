import ArgumentParser
import Foundation
import SegCore
import SegTrain

/// `segdist verify`: does this machine's backend give PyTorch's numbers? The GPU nodes have
/// no Swift toolchain to run `swift test`, so the release binary carries the same checks.
struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check a backend: the GPU against the CPU, and with --fixtures every op, loss, optimizer and model case of a PyTorch fixture file.")

    @Option(help: "Which backend: auto (a GPU when one is usable), cpu or cuda.") var device = "auto"
    @Option(help: "A PyTorch fixture file (shared/fixtures/torch-reference.safetensors).") var fixtures: String?

    func run() throws {
        try reportingErrors {
            guard let kind = TrainingConfig.DeviceKind(rawValue: device) else {
                throw ValidationError("--device must be one of auto, cpu, cuda, got '\(device)'")
            }
            // choosing a GPU runs the self-check against the CPU; a failure is the answer
            let placement = try DevicePlacement.choose(kind, localRank: 0, ranksOnThisNode: 1, shareGPU: false)
            let backend = placement.backend
            if let note = placement.note { print(note) }
            if backend.device != .host { print("self-check against the CPU: ok") }
            guard let fixtures else {
                if backend.device == .host {
                    throw ValidationError("nothing to verify on the CPU without --fixtures FILE (a PyTorch fixture file)")
                }
                return
            }
            let file = try SafeTensorsFile(path: fixtures)
            let findings = try Verification.ops(backend, file: file) + Verification.models(backend, file: file)
            let (text, passed) = Verification.summary(findings)
            print("\(backend.device) vs PyTorch, largest relative difference per group (\(findings.count) tensors):\n" + text)
            if !passed { throw ExitCode(1) }
        }
    }
}
