import Foundation
import SegCore

public struct TrainingError: Error, CustomStringConvertible {
    public let description: String
    public init(_ message: String) { description = message }
}

/// What is wrong with a path that could not be created or written, in words: a parent that is a
/// file, a missing permission, or the system's own message.
public func describeFileProblem(at path: String, _ error: Error) -> String {
    var url = URL(fileURLWithPath: "/")
    for component in URL(fileURLWithPath: path).pathComponents.dropFirst() {
        url.appendPathComponent(component)
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), !isDirectory.boolValue {
            return "\(url.path) is a file, not a directory"
        }
    }
    return systemMessage(error)
}
