import ArgumentParser
import CSystem
import Foundation
import SegCore
import SegTrain

@main
struct Segdist: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "segdist",
        abstract: "Data-parallel training of image-segmentation networks on CPUs.",
        version: "segdist \(segdistVersion)",
        subcommands: [TrainCommand.self, EvalCommand.self, PredictCommand.self, ExportCommand.self, GenerateCommand.self, BenchCommand.self, VerifyCommand.self,
                      ConfigCommand.self],
        defaultSubcommand: TrainCommand.self)

    /// Checks that this CPU runs the instructions the kernels were built for, picks OpenBLAS's
    /// kernels for it, and checks SEGDIST_GEMM before any work starts.
    static func main() {
        checkKernelsRunHere()
        BLASKernels.chooseKernelsForThisCPU()
        GEMMLibrary.checkEnvironment()
        main(nil)
    }
}

extension Segdist {
    /// Package.swift compiles the kernels for the vector instructions of the CPU that built
    /// them. On a CPU without those (a binary copied to an older node) they would die on an
    /// illegal instruction at the first convolution; say so instead, before any kernel runs.
    /// This file is compiled for any x86-64. SEGDIST_CPU_PRETEND (tests) stands for the CPU's level.
    static func checkKernelsRunHere() {
        #if SEGDIST_KERNELS_AVX512
        let needed = 2, name = "AVX-512 (F, BW, DQ, VL)"
        #elseif SEGDIST_KERNELS_AVX2
        let needed = 1, name = "AVX2 with FMA"
        #else
        let needed = 0, name = ""
        #endif
        let level = ProcessInfo.processInfo.environment["SEGDIST_CPU_PRETEND"].flatMap { Int($0) }
            ?? Int(segdist_cpu_vector_level())
        guard level < needed else { return }
        FileHandle.standardError.write(Data("""
            segdist: this binary's kernels were built for \(name) instructions (the CPU it was built on), \
            which this CPU does not have. Build it on this machine (swift build -c release), or build a binary \
            for any x86-64 CPU with: SEGDIST_KERNELS=generic swift build -c release

            """.utf8))
        Foundation.exit(2)
    }
}
