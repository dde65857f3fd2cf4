import Foundation

/// What went wrong with a file, in the words of a command-line tool ("permission denied", "no
/// such file or directory"): the POSIX error under a Foundation error, a segdist error's own
/// text, never a raw `NSCocoaErrorDomain … Code=257` dump.
public func systemMessage(_ error: Error) -> String {
    let e = error as NSError
    if let posix = e.userInfo[NSUnderlyingErrorKey] as? NSError, posix.domain == NSPOSIXErrorDomain {
        return String(cString: strerror(Int32(posix.code))).lowercased()
    }
    if e.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(e.code))).lowercased() }
    if e.domain == NSCocoaErrorDomain {
        switch e.code {
        case NSFileReadNoPermissionError, NSFileWriteNoPermissionError: return "permission denied"
        case NSFileReadNoSuchFileError, NSFileNoSuchFileError: return "no such file or directory"
        case NSFileWriteOutOfSpaceError: return "no space left on device"
        case NSFileWriteVolumeReadOnlyError: return "read-only file system"
        default: break
        }
    }
    // segdist's own errors say what they are; Foundation's others have a localized text
    return type(of: error) == NSError.self ? e.localizedDescription : String(describing: error)
}
