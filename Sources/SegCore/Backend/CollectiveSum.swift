/// Sums across a group of processes, as the core sees them: synchronized batch norm needs
/// its statistics summed over every rank. The core only knows this protocol; the MPI layer
/// (SegDist) implements it.
public protocol CollectiveSum: AnyObject {
    /// Replaces `values` on every process by their element-wise sum over the group.
    func sumInPlace(_ values: UnsafeMutablePointer<Double>, count: Int)
}
