// Thin shim: the few CUDA driver, NVRTC and cuBLAS entry points segdist calls, loaded with
// dlopen when a GPU is asked for — no CUDA header or library at build time, and a machine
// without them builds, tests and runs on the CPU as before. Declarations follow cuda.h,
// nvrtc.h and cublas_api.h (the _v2 driver entry points: stable since CUDA 4; the primary
// context instead of cuCtxCreate, whose signature changed in CUDA 13).
#ifndef SEGDIST_CCUDA_SHIM_H
#define SEGDIST_CCUDA_SHIM_H
#include <dlfcn.h>
#include <stddef.h>
#include <stdlib.h>

typedef unsigned long long segdist_cu_ptr;   // CUdeviceptr
enum {
    SEGDIST_CU_ATTR_COMPUTE_MAJOR = 75,      // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR
    SEGDIST_CU_ATTR_COMPUTE_MINOR = 76,
    SEGDIST_CU_ATTR_MULTIPROCESSORS = 16,
};

typedef struct {
    int (*initialize)(unsigned int);
    int (*driverGetVersion)(int *);
    int (*deviceGetCount)(int *);
    int (*deviceGet)(int *, int);
    int (*deviceGetName)(char *, int, int);
    int (*deviceGetAttribute)(int *, int, int);
    int (*deviceTotalMem)(size_t *, int);
    int (*primaryCtxRetain)(void **, int);
    int (*ctxSetCurrent)(void *);
    int (*ctxSynchronize)(void);
    int (*memAlloc)(segdist_cu_ptr *, size_t);
    int (*memFree)(segdist_cu_ptr);
    int (*memAllocHost)(void **, size_t);
    int (*memFreeHost)(void *);
    int (*memGetInfo)(size_t *, size_t *);
    int (*memcpyHtoD)(segdist_cu_ptr, const void *, size_t);
    int (*memcpyDtoH)(void *, segdist_cu_ptr, size_t);
    int (*memcpyDtoD)(segdist_cu_ptr, segdist_cu_ptr, size_t);
    int (*memsetD32)(segdist_cu_ptr, unsigned int, size_t);
    int (*moduleLoadData)(void **, const void *);
    int (*moduleGetFunction)(void **, void *, const char *);
    int (*launchKernel)(void *, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, void *, void **,
                        void **);
    int (*getErrorName)(int, const char **);
    int (*getErrorString)(int, const char **);
} segdist_cuda_driver;

typedef struct {
    int (*version)(int *, int *);
    int (*createProgram)(void **, const char *, const char *, int, const char *const *, const char *const *);
    int (*compileProgram)(void *, int, const char *const *);
    int (*getPTXSize)(void *, size_t *);
    int (*getPTX)(void *, char *);
    int (*getProgramLogSize)(void *, size_t *);
    int (*getProgramLog)(void *, char *);
    int (*destroyProgram)(void **);
    const char *(*getErrorString)(int);
} segdist_nvrtc;

enum { SEGDIST_CUBLAS_OP_N = 0, SEGDIST_CUBLAS_OP_T = 1 };
typedef struct {
    int (*create)(void **);
    int (*destroy)(void *);
    int (*sgemm)(void *, int, int, int, int, int, const float *, const float *, int, const float *, int, const float *,
                 float *, int);
    const char *(*getStatusString)(int);
} segdist_cublas;

// cuDNN's legacy convolution API (cudnn.h, stable from cuDNN 7 to 9): NCHW float tensors and
// filters, cross-correlation with FMA math (no TF32), algorithms from the v7 heuristics.
enum {
    SEGDIST_CUDNN_NCHW = 0, SEGDIST_CUDNN_FLOAT = 0, SEGDIST_CUDNN_CROSS_CORRELATION = 1, SEGDIST_CUDNN_FMA_MATH = 3,
};
typedef struct {   // cudnnConvolution{Fwd,BwdData,BwdFilter}AlgoPerf_t: the same layout for all three
    int algo;
    int status;
    float time;
    size_t memory;
    int determinism;
    int mathType;
    int reserved[3];
} segdist_cudnn_perf;

typedef struct {
    size_t (*getVersion)(void);
    int (*create)(void **);
    const char *(*getErrorString)(int);
    int (*createTensor)(void **);
    int (*setTensor4d)(void *, int, int, int, int, int, int);
    int (*createFilter)(void **);
    int (*setFilter4d)(void *, int, int, int, int, int, int);
    int (*createConvolution)(void **);
    int (*setConvolution2d)(void *, int, int, int, int, int, int, int, int);
    int (*setConvolutionMathType)(void *, int);
    int (*forwardAlgorithms)(void *, void *, void *, void *, void *, int, int *, segdist_cudnn_perf *);
    int (*backwardDataAlgorithms)(void *, void *, void *, void *, void *, int, int *, segdist_cudnn_perf *);
    int (*backwardFilterAlgorithms)(void *, void *, void *, void *, void *, int, int *, segdist_cudnn_perf *);
    int (*forward)(void *, const void *, void *, const void *, void *, const void *, void *, int, void *, size_t,
                   const void *, void *, void *);
    int (*backwardData)(void *, const void *, void *, const void *, void *, const void *, void *, int, void *, size_t,
                        const void *, void *, void *);
    int (*backwardFilter)(void *, const void *, void *, const void *, void *, const void *, void *, int, void *, size_t,
                          const void *, void *, void *);
} segdist_cudnn;

// dlopen's the first of `names` (NULL-terminated) that loads; NULL when none does.
static inline void *segdist_cuda_open(const char *const *names) {
    for (; *names; names++) {
        void *lib = dlopen(*names, RTLD_NOW | RTLD_LOCAL);
        if (lib) return lib;
    }
    return NULL;
}

#define SEGDIST_SYM(lib, field, name) (*(void **)&(field) = dlsym((lib), (name)))

// Fills `api` from `path` when given (SEGDIST_LIBCUDA), else libcuda.so.1; 0 when the library
// or a symbol is missing.
static inline int segdist_cuda_driver_load(segdist_cuda_driver *api, const char *path) {
    const char *names[] = {path ? path : "libcuda.so.1", "libcuda.so.1", "libcuda.so", NULL};
    if (path) names[1] = NULL;
    void *lib = segdist_cuda_open(names);
    if (!lib) return 0;
    return SEGDIST_SYM(lib, api->initialize, "cuInit") && SEGDIST_SYM(lib, api->driverGetVersion, "cuDriverGetVersion")
        && SEGDIST_SYM(lib, api->deviceGetCount, "cuDeviceGetCount") && SEGDIST_SYM(lib, api->deviceGet, "cuDeviceGet")
        && SEGDIST_SYM(lib, api->deviceGetName, "cuDeviceGetName")
        && SEGDIST_SYM(lib, api->deviceGetAttribute, "cuDeviceGetAttribute")
        && SEGDIST_SYM(lib, api->deviceTotalMem, "cuDeviceTotalMem_v2")
        && SEGDIST_SYM(lib, api->primaryCtxRetain, "cuDevicePrimaryCtxRetain")
        && SEGDIST_SYM(lib, api->ctxSetCurrent, "cuCtxSetCurrent") && SEGDIST_SYM(lib, api->ctxSynchronize, "cuCtxSynchronize")
        && SEGDIST_SYM(lib, api->memAlloc, "cuMemAlloc_v2") && SEGDIST_SYM(lib, api->memFree, "cuMemFree_v2")
        && SEGDIST_SYM(lib, api->memAllocHost, "cuMemAllocHost_v2") && SEGDIST_SYM(lib, api->memFreeHost, "cuMemFreeHost")
        && SEGDIST_SYM(lib, api->memGetInfo, "cuMemGetInfo_v2") && SEGDIST_SYM(lib, api->memcpyHtoD, "cuMemcpyHtoD_v2")
        && SEGDIST_SYM(lib, api->memcpyDtoH, "cuMemcpyDtoH_v2") && SEGDIST_SYM(lib, api->memcpyDtoD, "cuMemcpyDtoD_v2")
        && SEGDIST_SYM(lib, api->memsetD32, "cuMemsetD32_v2") && SEGDIST_SYM(lib, api->moduleLoadData, "cuModuleLoadData")
        && SEGDIST_SYM(lib, api->moduleGetFunction, "cuModuleGetFunction")
        && SEGDIST_SYM(lib, api->launchKernel, "cuLaunchKernel") && SEGDIST_SYM(lib, api->getErrorName, "cuGetErrorName")
        && SEGDIST_SYM(lib, api->getErrorString, "cuGetErrorString");
}

// Fills `api` from NVRTC: `path` when given (SEGDIST_NVRTC), else the CUDA 13/12 sonames.
static inline int segdist_nvrtc_load(segdist_nvrtc *api, const char *path) {
    const char *names[] = {path ? path : "libnvrtc.so", "libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12", NULL};
    if (path) names[1] = NULL;
    void *lib = segdist_cuda_open(names);
    if (!lib) return 0;
    return SEGDIST_SYM(lib, api->version, "nvrtcVersion") && SEGDIST_SYM(lib, api->createProgram, "nvrtcCreateProgram")
        && SEGDIST_SYM(lib, api->compileProgram, "nvrtcCompileProgram") && SEGDIST_SYM(lib, api->getPTXSize, "nvrtcGetPTXSize")
        && SEGDIST_SYM(lib, api->getPTX, "nvrtcGetPTX") && SEGDIST_SYM(lib, api->getProgramLogSize, "nvrtcGetProgramLogSize")
        && SEGDIST_SYM(lib, api->getProgramLog, "nvrtcGetProgramLog")
        && SEGDIST_SYM(lib, api->destroyProgram, "nvrtcDestroyProgram")
        && SEGDIST_SYM(lib, api->getErrorString, "nvrtcGetErrorString");
}

// Fills `api` from `path` when given (SEGDIST_CUBLAS), else cuBLAS of CUDA 13 or 12; 0 when it is missing.
static inline int segdist_cublas_load(segdist_cublas *api, const char *path) {
    const char *names[] = {path ? path : "libcublas.so", "libcublas.so", "libcublas.so.13", "libcublas.so.12", NULL};
    if (path) names[1] = NULL;
    void *lib = segdist_cuda_open(names);
    if (!lib) return 0;
    return SEGDIST_SYM(lib, api->create, "cublasCreate_v2") && SEGDIST_SYM(lib, api->destroy, "cublasDestroy_v2")
        && SEGDIST_SYM(lib, api->sgemm, "cublasSgemm_v2") && SEGDIST_SYM(lib, api->getStatusString, "cublasGetStatusString");
}
// Fills `api` from `path` when given (SEGDIST_CUDNN), else cuDNN 9 or 8; 0 when it is missing.
static inline int segdist_cudnn_load(segdist_cudnn *api, const char *path) {
    const char *names[] = {path ? path : "libcudnn.so.9", "libcudnn.so.9", "libcudnn.so.8", "libcudnn.so", NULL};
    if (path) names[1] = NULL;
    void *lib = segdist_cuda_open(names);
    if (!lib) return 0;
    return SEGDIST_SYM(lib, api->getVersion, "cudnnGetVersion") && SEGDIST_SYM(lib, api->create, "cudnnCreate")
        && SEGDIST_SYM(lib, api->getErrorString, "cudnnGetErrorString")
        && SEGDIST_SYM(lib, api->createTensor, "cudnnCreateTensorDescriptor")
        && SEGDIST_SYM(lib, api->setTensor4d, "cudnnSetTensor4dDescriptor")
        && SEGDIST_SYM(lib, api->createFilter, "cudnnCreateFilterDescriptor")
        && SEGDIST_SYM(lib, api->setFilter4d, "cudnnSetFilter4dDescriptor")
        && SEGDIST_SYM(lib, api->createConvolution, "cudnnCreateConvolutionDescriptor")
        && SEGDIST_SYM(lib, api->setConvolution2d, "cudnnSetConvolution2dDescriptor")
        && SEGDIST_SYM(lib, api->setConvolutionMathType, "cudnnSetConvolutionMathType")
        && SEGDIST_SYM(lib, api->forwardAlgorithms, "cudnnGetConvolutionForwardAlgorithm_v7")
        && SEGDIST_SYM(lib, api->backwardDataAlgorithms, "cudnnGetConvolutionBackwardDataAlgorithm_v7")
        && SEGDIST_SYM(lib, api->backwardFilterAlgorithms, "cudnnGetConvolutionBackwardFilterAlgorithm_v7")
        && SEGDIST_SYM(lib, api->forward, "cudnnConvolutionForward")
        && SEGDIST_SYM(lib, api->backwardData, "cudnnConvolutionBackwardData")
        && SEGDIST_SYM(lib, api->backwardFilter, "cudnnConvolutionBackwardFilter");
}
#undef SEGDIST_SYM
#endif
