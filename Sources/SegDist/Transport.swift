import SegCore

/// How a buffer of `backend`'s memory reaches MPI, decided once when a run starts (MPI reads
/// host memory unless it is CUDA-aware). The gradient all-reduce and the broadcast of the
/// parameters and running statistics both go this way.
public enum Transport {
    /// Host memory: MPI reads and writes it where it is (also one rank: nothing to send).
    case host
    /// Device memory handed to a CUDA-aware MPI (after the device has written it).
    case deviceDirect(HostStaging)
    /// Device memory copied through page-locked host memory of `staging.count` floats.
    case pinned(HostStaging, staging: Tensor)
    /// Device memory downloaded and uploaded through a plain host tensor of `staging.count` floats.
    case copied(staging: Tensor)

    /// The transport for buffers of up to `count` floats on `device`.
    public init(device: Device, backend: Backend, communicator: Communicator, count: Int) {
        if device == .host || communicator.size == 1 {
            self = .host
        } else if let staging = backend as? HostStaging {
            self = communicator.acceptsDeviceMemory ? .deviceDirect(staging)
                                                    : .pinned(staging, staging: staging.allocateStaging(count))
        } else {
            self = .copied(staging: Tensor(zeros: [count]))
        }
    }

    /// The address MPI is handed for `t`'s first element (only for `.host` and `.deviceDirect`).
    static func address(_ t: Tensor) -> UnsafeMutablePointer<Float> {
        UnsafeMutablePointer(bitPattern: UInt(bitPattern: t.buffer.address) + UInt(t.offset * 4))!
    }

    /// Rank `root`'s values of `t` in `t` on every rank.
    public func broadcast(_ t: Tensor, root: Int, over communicator: Communicator, backend: Backend) {
        switch self {
        case .host:
            communicator.broadcast(floats: t.hostPointer, count: t.count, root: root)
        case let .deviceDirect(device):
            device.synchronize()
            communicator.broadcast(floats: Self.address(t), count: t.count, root: root)
        case let .pinned(device, staging) where t.count <= staging.count:
            device.copy(t, toHost: staging.hostPointer)
            communicator.broadcast(floats: staging.hostPointer, count: t.count, root: root)
            device.copy(fromHost: staging.hostPointer, into: t)
        case .pinned, .copied:
            // a buffer larger than the staging: through a host copy of its own
            let host = backend.download(t)
            communicator.broadcast(floats: host.hostPointer, count: host.count, root: root)
            backend.copy(backend.upload(host), into: t)
        }
    }
}
