import Foundation

/// Python 3 for the checks that use another project's own reader (TensorBoard, onnxruntime).
/// Those tests are skipped (XCTSkip, saying why) where the package is missing; they never need it.
public enum Python {
    /// Runs `python3 ARGUMENTS`; exit status and stdout + stderr together.
    public static func run(_ arguments: [String]) -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3"] + arguments
        let out = Pipe()
        p.standardOutput = out; p.standardError = out
        do { try p.run() } catch { return (-1, "\(error)") }
        let said = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return (p.terminationStatus, said)
    }

    public static func run(code: String) -> (status: Int32, output: String) { run(["-c", code]) }

    public static func canImport(_ module: String) -> Bool { run(code: "import \(module)").status == 0 }

    /// A script of Tests/Fixtures.
    public static func fixture(_ name: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures").appendingPathComponent(name).path
    }
}
