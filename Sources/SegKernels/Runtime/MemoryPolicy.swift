import CSystem

/// Training allocates the same large activation buffers every step. glibc's defaults hand
/// big blocks back to the kernel on free and fault them in again (zeroed) on the next step;
/// keeping them in the heap removes that cost.
public enum MemoryPolicy {
    public static func keepFreedMemoryForReuse() {
        _ = segdist_keep_freed_memory()
    }
}
