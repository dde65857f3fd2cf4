import Foundation
import SegCore
import SegCUDA

/// Where a rank computes: the config's `device` resolved against what this machine has.
///
/// `cpu` is the CPU. `cuda` is GPU `localRank % GPUs` — one GPU per rank of a node unless
/// `share_gpu` lets ranks share — and an error naming what is missing where no GPU is usable.
/// `auto` is the GPU when one is usable and passes the self-check, else the CPU with one line
/// saying why. A new GPU backend is checked against the CPU on small inputs before any
/// training (`CUDASelfCheck`): a GPU that disagrees is never trained on.
public enum DevicePlacement {
    public struct Choice {
        public let backend: Backend
        /// One line for the log: the GPU used, or why `auto` stayed on the CPU.
        public let note: String?
    }

    public static func choose(_ kind: TrainingConfig.DeviceKind, localRank: Int, ranksOnThisNode: Int, shareGPU: Bool) throws -> Choice {
        if kind == .cpu { return Choice(backend: CPUBackend.shared, note: nil) }
        // the common case, a machine without an NVIDIA driver, in a few words
        if kind == .auto, case .failure = CUDADriver.shared {
            return Choice(backend: CPUBackend.shared, note: "# device: auto -> CPU (no CUDA driver on this machine)")
        }
        do {
            let gpus = try CUDADriver.shared.get().devices()
            guard !gpus.isEmpty else { throw CUDAError("the CUDA driver sees no GPU") }
            if ranksOnThisNode > gpus.count && !shareGPU {
                throw CUDAError("\(ranksOnThisNode) ranks on this node but \(gpus.count) GPU(s); start at most \(gpus.count) rank(s) per node, or let ranks share GPUs with share_gpu: true (--share-gpu)")
            }
            let ordinal = localRank % gpus.count
            let backend = try CUDABackend(ordinal: ordinal)
            var fallback = ""
            do { try CUDASelfCheck.run(backend) } catch where backend.usesCuDNN {
                // cuDNN disagreeing with the CPU must not cost the GPU: convolve without it
                fallback = "; \(backend.convolutionPath) failed the self-check (\(error)), using im2col + cuBLAS"
                backend.disableCuDNN()
                try CUDASelfCheck.run(backend)
            }
            return Choice(backend: backend, note: "# device: \(backend.gpu.info), convolutions by \(backend.convolutionPath), for local rank \(localRank)" + fallback)
        } catch {
            if kind == .cuda { throw TrainingError("device: cuda, but no GPU is usable: \(error)") }
            return Choice(backend: CPUBackend.shared, note: "# device: auto -> CPU (\(error))")
        }
    }
}
