import Foundation

/// Training allocates the same large activation buffers every step. glibc's defaults hand
/// big blocks back to the kernel on free and fault them in again (zeroed) on the next step;
/// keeping them in the heap removes that cost.
public enum MemoryPolicy {
    public static func keepFreedMemoryForReuse() {
        #if os(Linux)
        // mallopt lives in <malloc.h>, which Glibc's Swift module does not export.
        typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return }
        let mallopt = unsafeBitCast(symbol, to: Mallopt.self)
        let trimThreshold: Int32 = -1, mmapThreshold: Int32 = -3   // M_TRIM_THRESHOLD, M_MMAP_THRESHOLD
        _ = mallopt(mmapThreshold, 512 << 20)
        _ = mallopt(trimThreshold, Int32.max)
        #endif
    }
}
