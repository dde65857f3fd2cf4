// SegCore is the tensor core (tensors, backends, the tape, optimizers, safetensors); the CPU
// kernels it runs live in SegKernels, re-exported so users of the core see one module.
@_exported import SegKernels
