import Foundation
import SegCore
import SegCUDA

/// Builds `Tests/Fixtures/cuda-emulator`: segdist's CUDA kernels compiled as host C++ behind a
/// stand-in CUDA driver and cuBLAS (one library for SEGDIST_LIBCUDA and SEGDIST_CUBLAS), so the
/// whole GPU path of the `segdist` binary runs on a machine without a GPU.
public enum CUDAEmulator {
    /// The built library's path, or why it could not be built (no g++).
    public static func build(in directory: String) -> Result<String, Error> {
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/cuda-emulator/emulator.cpp").path
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try CUDAKernelSource.source.write(toFile: directory + "/kernels.inc", atomically: true, encoding: .utf8)
            try CUDAKernelSource.entryPoints.map { "EMULATE(\($0))" }.joined(separator: "\n")
                .write(toFile: directory + "/entries.inc", atomically: true, encoding: .utf8)
            let library = directory + "/libsegdist-emulated-cuda.so"
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = ["g++", "-std=c++17", "-O2", "-shared", "-fPIC", "-I", directory, "-o", library, source, "-ldl"]
            let err = Pipe()
            p.standardError = err; p.standardOutput = err
            try p.run()
            let said = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            guard p.terminationStatus == 0 else { throw CUDAError("g++ could not build the emulator: \(said.prefix(2000))") }
            return .success(library)
        } catch { return .failure(error) }
    }
}
