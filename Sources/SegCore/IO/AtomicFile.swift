import Foundation

/// A file that could not be written: which file, and what went wrong.
public struct FileWriteError: Error, CustomStringConvertible, Equatable {
    public let path: String
    public let problem: String
    public init(path: String, problem: String) { self.path = path; self.problem = problem }
    public var description: String { "\(path): \(problem)" }
}

// The one way segdist writes a file (checkpoints, configs, pictures, JSON, .npy): readers
// never see a half-written file, and a failed write leaves the old one intact.

/// Writes `data` to a temporary file beside `path`, fsyncs it, renames it over `path`, and fsyncs
/// the directory, so readers see either the old file or the complete new one.
public func writeFileAtomically(_ data: Data, to path: String) throws {
    let url = URL(fileURLWithPath: path)
    let dir = url.deletingLastPathComponent().path
    let tmp = dir + "/." + url.lastPathComponent + ".tmp-\(getpid())"
    func failure(_ what: String) -> FileWriteError {
        FileWriteError(path: path, problem: "\(what) failed: \(String(cString: strerror(errno)))")
    }
    var isDirectory: ObjCBool = false
    if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
        throw FileWriteError(path: path, problem: "is a directory; give a file name")
    }
    let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else {
        throw FileWriteError(path: path, problem: "cannot be written: \(String(cString: strerror(errno)).lowercased()) (in \(dir.isEmpty ? "." : dir))")
    }
    var ok = true
    data.withUnsafeBytes { raw in
        var done = 0
        while done < raw.count {
            let n = Foundation.write(fd, raw.baseAddress! + done, raw.count - done)
            if n <= 0 { ok = false; break }
            done += n
        }
    }
    if !ok { let e = failure("writing"); close(fd); unlink(tmp); throw e }
    if fsync(fd) != 0 { let e = failure("fsync"); close(fd); unlink(tmp); throw e }
    close(fd)
    if rename(tmp, path) != 0 { let e = failure("rename"); unlink(tmp); throw e }
    let dfd = open(dir.isEmpty ? "." : dir, O_RDONLY)
    if dfd >= 0 { fsync(dfd); close(dfd) }
}
