// A GPU that is the CPU, for tests of segdist's CUDA path on machines without one.
//
// segdist's CUDA C kernels (kernels.inc, written by the test from CUDAKernelSource) compile here
// as plain C++, and this file implements the few CUDA driver and cuBLAS entry points segdist
// loads (SEGDIST_LIBCUDA / SEGDIST_CUBLAS point at the built library). A launch runs its blocks
// one after another with ONE thread each: every segdist kernel is a grid-stride loop or a
// per-block loop over its data with a block reduction, so one thread per block computes the
// same result as many, in order. What this checks is everything but the GPU itself: the
// kernels' indexing and formulas, the argument lists, the GEMM orientation, memory handling,
// host staging for MPI and the backend's use of all of it. NVRTC checks separately that the
// same source compiles for real GPUs.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <string>
#include <utility>

struct emu_dim { unsigned x, y, z; };
static emu_dim blockIdx, threadIdx, blockDim, gridDim;

#define __global__
#define __device__ static inline
#define __shared__ static
#define __syncthreads() ((void)0)
using std::isnan;
using std::max;
using std::min;
static inline float __int_as_float(int bits) { float f; std::memcpy(&f, &bits, 4); return f; }
static inline double atomicAdd(double *a, double v) { double old = *a; *a += v; return old; }
static inline float atomicAdd(float *a, float v) { float old = *a; *a += v; return old; }
static inline unsigned long long atomicAdd(unsigned long long *a, unsigned long long v) { auto old = *a; *a += v; return old; }

#include "kernels.inc"

// Each kernel behind one entry point taking CUDA's argument array (pointers to the values).
template <typename... A, std::size_t... I>
static void emu_call(void (*f)(A...), void **p, std::index_sequence<I...>) { f(*static_cast<A *>(p[I])...); }
template <typename... A> static void emu_call(void (*f)(A...), void **p) { emu_call(f, p, std::index_sequence_for<A...>{}); }
#define EMULATE(name) extern "C" void emulated_##name(void **p) { emu_call(name, p); }
#include "entries.inc"

// MARK: the driver API
typedef unsigned long long CUdeviceptr;
extern "C" {
int cuInit(unsigned) { return 0; }
int cuDriverGetVersion(int *v) { *v = 13000; return 0; }
int cuDeviceGetCount(int *n) { *n = 1; return 0; }
int cuDeviceGet(int *d, int ordinal) { if (ordinal != 0) return 101; *d = 0; return 0; }
int cuDeviceGetName(char *name, int len, int) { std::strncpy(name, "segdist CPU-emulated GPU", len); return 0; }
int cuDeviceGetAttribute(int *v, int attribute, int) {
    *v = attribute == 75 ? 9 : attribute == 76 ? 0 : attribute == 16 ? 2 : 0;   // compute 9.0, 2 multiprocessors
    return 0;
}
int cuDeviceTotalMem_v2(size_t *bytes, int);
int cuDevicePrimaryCtxRetain(void **ctx, int) { static int context; *ctx = &context; return 0; }
int cuCtxSetCurrent(void *) { return 0; }
int cuCtxSynchronize(void) { return 0; }
// SEGDIST_EMULATED_GPU_MB: the emulated GPU's memory (default 4096), to meet its limit in tests
static size_t emu_capacity() {
    const char *mb = std::getenv("SEGDIST_EMULATED_GPU_MB");
    return (mb ? (size_t)std::atoll(mb) : 4096) << 20;
}
static size_t emu_used = 0;
int cuMemAlloc_v2(CUdeviceptr *p, size_t bytes) {
    if (emu_used + bytes > emu_capacity()) return 2;   // CUDA_ERROR_OUT_OF_MEMORY
    size_t *m = (size_t *)std::malloc(bytes + 16);
    if (!m) return 2;
    m[0] = bytes;
    emu_used += bytes;
    std::memset(m + 2, 0xA5, bytes);   // garbage, as fresh device memory may be
    *p = (CUdeviceptr)(uintptr_t)(m + 2);
    return 0;
}
int cuMemFree_v2(CUdeviceptr p) {
    size_t *m = (size_t *)(uintptr_t)p - 2;
    emu_used -= m[0];
    std::free(m);
    return 0;
}
int cuDeviceTotalMem_v2(size_t *bytes, int) { *bytes = emu_capacity(); return 0; }
int cuMemAllocHost_v2(void **p, size_t bytes) { *p = std::malloc(bytes); return *p ? 0 : 2; }
int cuMemFreeHost(void *p) { std::free(p); return 0; }
int cuMemGetInfo_v2(size_t *free, size_t *total) { *total = emu_capacity(); *free = *total - emu_used; return 0; }
int cuMemcpyHtoD_v2(CUdeviceptr d, const void *s, size_t n) { std::memcpy((void *)(uintptr_t)d, s, n); return 0; }
int cuMemcpyDtoH_v2(void *d, CUdeviceptr s, size_t n) { std::memcpy(d, (void *)(uintptr_t)s, n); return 0; }
int cuMemcpyDtoD_v2(CUdeviceptr d, CUdeviceptr s, size_t n) { std::memmove((void *)(uintptr_t)d, (void *)(uintptr_t)s, n); return 0; }
int cuMemsetD32_v2(CUdeviceptr d, unsigned word, size_t n) {
    unsigned *p = (unsigned *)(uintptr_t)d;
    for (size_t i = 0; i < n; i++) p[i] = word;
    return 0;
}
int cuModuleLoadData(void **module, const void *ptx) {
    // the PTX must at least be PTX (NVRTC made it); the emulator runs the C++ build of its source
    if (!ptx || std::strstr((const char *)ptx, ".entry") == nullptr) return 218;   // CUDA_ERROR_INVALID_PTX
    static int m;
    *module = &m;
    return 0;
}
int cuModuleGetFunction(void **f, void *, const char *name) {
    *f = dlsym(RTLD_DEFAULT, ("emulated_" + std::string(name)).c_str());
    if (!*f) {
        Dl_info info;
        if (dladdr((void *)&cuModuleGetFunction, &info)) {
            void *self = dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD);
            if (self) *f = dlsym(self, ("emulated_" + std::string(name)).c_str());
        }
    }
    return *f ? 0 : 500;   // CUDA_ERROR_NOT_FOUND
}
int cuLaunchKernel(void *f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned, void *,
                   void **params, void **) {
    if (gx == 0 || bx == 0 || bx > 1024 || gy != 1 || gz != 1 || by != 1 || bz != 1) return 1;   // CUDA_ERROR_INVALID_VALUE
    gridDim = {gx, 1, 1};
    blockDim = {1, 1, 1};
    threadIdx = {0, 0, 0};
    for (unsigned b = 0; b < gx; b++) {
        blockIdx = {b, 0, 0};
        ((void (*)(void **))f)(params);
    }
    return 0;
}
int cuGetErrorName(int e, const char **s) { static std::string t; t = "CUDA_ERROR_" + std::to_string(e); *s = t.c_str(); return 0; }
int cuGetErrorString(int, const char **s) { *s = "emulated failure"; return 0; }

// MARK: cuBLAS: column-major C = alpha op(A) op(B) + beta C
int cublasCreate_v2(void **handle) { static int h; *handle = &h; return 0; }
int cublasDestroy_v2(void *) { return 0; }
int cublasSgemm_v2(void *, int transa, int transb, int m, int n, int k, const float *alpha, const float *A, int lda,
                   const float *B, int ldb, const float *beta, float *C, int ldc) {
    for (int j = 0; j < n; j++) {
        for (int i = 0; i < m; i++) {
            double s = 0;
            for (int l = 0; l < k; l++) {
                float a = transa ? A[l + (size_t)i * lda] : A[i + (size_t)l * lda];
                float b = transb ? B[j + (size_t)l * ldb] : B[l + (size_t)j * ldb];
                s += (double)a * b;
            }
            float &c = C[i + (size_t)j * ldc];
            c = *alpha * (float)s + (*beta == 0 ? 0 : *beta * c);
        }
    }
    return 0;
}
const char *cublasGetStatusString(int) { return "emulated cuBLAS failure"; }
}
