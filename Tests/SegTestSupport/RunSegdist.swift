#if canImport(XCTest)
import Foundation
import XCTest

/// The repository's root (where `.build/` is).
public let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// Runs the debug `segdist` binary with `args` in `dir`: exit code, stdout and stderr. Skips
/// (XCTSkip) when the binary is not built.
public func runSegdist(_ args: [String], in dir: String = NSTemporaryDirectory(), environment: [String: String]? = nil) throws
    -> (code: Int32, stdout: String, stderr: String) {
    let binary = repositoryRoot.appendingPathComponent(".build/debug/segdist").path
    guard FileManager.default.isExecutableFile(atPath: binary) else { throw XCTSkip("segdist is not built at \(binary)") }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: binary)
    p.arguments = args
    p.currentDirectoryURL = URL(fileURLWithPath: dir)
    if let environment { p.environment = environment }
    let out = Pipe(), err = Pipe()
    p.standardOutput = out; p.standardError = err
    try p.run()
    // read stderr alongside stdout: a full pipe would block the child
    final class Box: @unchecked Sendable { var data = Data() }
    let e = Box()
    let reader = DispatchGroup()
    DispatchQueue.global().async(group: reader) { e.data = err.fileHandleForReading.readDataToEndOfFile() }
    let o = out.fileHandleForReading.readDataToEndOfFile()
    reader.wait()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e.data, as: UTF8.self))
}
#endif
