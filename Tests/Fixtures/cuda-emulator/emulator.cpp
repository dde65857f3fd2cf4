// A GPU that is the CPU, for tests of segdist's CUDA path on machines without one.
// (Driver, cuBLAS and cuDNN stand-ins: SEGDIST_LIBCUDA, SEGDIST_CUBLAS and SEGDIST_CUDNN all
// name the built library.)
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
#include <vector>

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

// MARK: cuDNN's legacy convolution API (NCHW float, cross-correlation), direct loops
struct emu_tensor { int n, c, h, w; };
struct emu_filter { int k, c, h, w; };
struct emu_conv { int ph, pw, sh, sw, dh, dw, math; };
struct emu_perf { int algo, status; float time; size_t memory; int determinism, mathType, reserved[3]; };
const int EMU_BAD_PARAM = 3;
// visits every (image, out channel, out pixel, in channel, tap) with the input pixel it reads
template <typename F>
static int emu_each(const emu_tensor &x, const emu_filter &w, const emu_conv &c, const emu_tensor &y, int algo, void *workspace,
                    size_t bytes, F f) {
    if (algo != 1 || c.math != 3 || !workspace || bytes < 4096) return EMU_BAD_PARAM;   // the FMA algorithm, with its workspace
    if (x.c != w.c || y.c != w.k || x.n != y.n) return EMU_BAD_PARAM;
    for (int n = 0; n < x.n; n++) for (int k = 0; k < w.k; k++) for (int oy = 0; oy < y.h; oy++) for (int ox = 0; ox < y.w; ox++)
        for (int ci = 0; ci < w.c; ci++) for (int a = 0; a < w.h; a++) for (int b = 0; b < w.w; b++) {
            int iy = oy * c.sh - c.ph + a * c.dh, ix = ox * c.sw - c.pw + b * c.dw;
            if (iy < 0 || iy >= x.h || ix < 0 || ix >= x.w) continue;
            f((((size_t)n * x.c + ci) * x.h + iy) * x.w + ix, (((size_t)k * w.c + ci) * w.h + a) * w.w + b,
              (((size_t)n * y.c + k) * y.h + oy) * y.w + ox);
        }
    return 0;
}
// out (count floats) = alpha * the sums `add(acc, x, w, y)` collects over every tap + beta * out
template <typename F>
static int emu_convolve(const emu_tensor &x, const emu_filter &w, void *conv, const emu_tensor &y, int algo, void *workspace,
                        size_t bytes, void *out, size_t count, const void *alpha, const void *beta, F add) {
    std::vector<double> acc(count, 0);
    int e = emu_each(x, w, *(emu_conv *)conv, y, algo, workspace, bytes, [&](size_t xi, size_t wi, size_t yi) { add(acc, xi, wi, yi); });
    if (e) return e;
    float *o = (float *)out, a = *(const float *)alpha, b = *(const float *)beta;
    for (size_t i = 0; i < count; i++) o[i] = a * (float)acc[i] + (b == 0 ? 0 : b * o[i]);
    return 0;
}

extern "C" {
size_t cudnnGetVersion(void) { return 90100; }
int cudnnCreate(void **h) { static int handle; *h = &handle; return 0; }
const char *cudnnGetErrorString(int) { return "emulated cuDNN failure"; }
int cudnnCreateTensorDescriptor(void **d) { *d = new emu_tensor(); return 0; }
int cudnnSetTensor4dDescriptor(void *d, int format, int type, int n, int c, int h, int w) {
    if (format != 0 || type != 0) return EMU_BAD_PARAM;
    *(emu_tensor *)d = {n, c, h, w};
    return 0;
}
int cudnnCreateFilterDescriptor(void **d) { *d = new emu_filter(); return 0; }
int cudnnSetFilter4dDescriptor(void *d, int type, int format, int k, int c, int h, int w) {
    if (format != 0 || type != 0) return EMU_BAD_PARAM;
    *(emu_filter *)d = {k, c, h, w};
    return 0;
}
int cudnnCreateConvolutionDescriptor(void **d) { *d = new emu_conv(); return 0; }
int cudnnSetConvolution2dDescriptor(void *d, int ph, int pw, int sh, int sw, int dh, int dw, int mode, int type) {
    if (mode != 1 || type != 0) return EMU_BAD_PARAM;   // cross-correlation, float
    *(emu_conv *)d = {ph, pw, sh, sw, dh, dw, 0};
    return 0;
}
int cudnnSetConvolutionMathType(void *d, int math) { ((emu_conv *)d)->math = math; return 0; }
// a tensor-core (TF32) algorithm ranked first, which segdist must pass over, then an FMA one with a workspace
static int emu_heuristic(void *conv, int requested, int *returned, emu_perf *perf) {
    if (requested < 2) return EMU_BAD_PARAM;
    perf[0] = {6, 0, 0.f, 0, 1, 1, {0, 0, 0}};
    perf[1] = {1, 0, 0.f, 4096, 1, ((emu_conv *)conv)->math, {0, 0, 0}};
    *returned = 2;
    return 0;
}
int cudnnGetConvolutionForwardAlgorithm_v7(void *, void *, void *, void *conv, void *, int n, int *r, emu_perf *p) { return emu_heuristic(conv, n, r, p); }
int cudnnGetConvolutionBackwardDataAlgorithm_v7(void *, void *, void *, void *conv, void *, int n, int *r, emu_perf *p) { return emu_heuristic(conv, n, r, p); }
int cudnnGetConvolutionBackwardFilterAlgorithm_v7(void *, void *, void *, void *conv, void *, int n, int *r, emu_perf *p) { return emu_heuristic(conv, n, r, p); }
int cudnnConvolutionForward(void *, const void *alpha, void *xd, const void *x, void *wd, const void *w, void *cd, int algo, void *ws,
                            size_t bytes, const void *beta, void *yd, void *y) {
    auto &X = *(emu_tensor *)xd; auto &W = *(emu_filter *)wd; auto &Y = *(emu_tensor *)yd;
    const float *xs = (const float *)x, *ws_ = (const float *)w;
    int e = emu_convolve(X, W, cd, Y, algo, ws, bytes, y, (size_t)Y.n * Y.c * Y.h * Y.w, alpha, beta,
                         [&](std::vector<double> &acc, size_t xi, size_t wi, size_t yi) { acc[yi] += (double)xs[xi] * ws_[wi]; });
    if (!e && std::getenv("SEGDIST_EMULATED_CUDNN_WRONG")) ((float *)y)[0] += 1;   // a cuDNN that computes wrongly, for the self-check
    return e;
}
int cudnnConvolutionBackwardData(void *, const void *alpha, void *wd, const void *w, void *dyd, const void *dy, void *cd, int algo,
                                 void *ws, size_t bytes, const void *beta, void *dxd, void *dx) {
    auto &W = *(emu_filter *)wd; auto &DY = *(emu_tensor *)dyd; auto &DX = *(emu_tensor *)dxd;
    const float *g = (const float *)dy, *ws_ = (const float *)w;
    return emu_convolve(DX, W, cd, DY, algo, ws, bytes, dx, (size_t)DX.n * DX.c * DX.h * DX.w, alpha, beta,
                        [&](std::vector<double> &acc, size_t xi, size_t wi, size_t yi) { acc[xi] += (double)g[yi] * ws_[wi]; });
}
int cudnnConvolutionBackwardFilter(void *, const void *alpha, void *xd, const void *x, void *dyd, const void *dy, void *cd, int algo,
                                   void *ws, size_t bytes, const void *beta, void *dwd, void *dw) {
    auto &X = *(emu_tensor *)xd; auto &DY = *(emu_tensor *)dyd; auto &W = *(emu_filter *)dwd;
    const float *xs = (const float *)x, *g = (const float *)dy;
    return emu_convolve(X, W, cd, DY, algo, ws, bytes, dw, (size_t)W.k * W.c * W.h * W.w, alpha, beta,
                        [&](std::vector<double> &acc, size_t xi, size_t wi, size_t yi) { acc[wi] += (double)xs[xi] * g[yi]; });
}
}
