// Thin shim: the three OpenBLAS entry points segdist calls and oneDNN's sgemm, loaded with dlopen at first use.
// OpenBLAS picks its kernels once, when it loads, from OPENBLAS_CORETYPE or a CPU-model table;
// loading it after segdist has set that variable from CPUID (BLASKernels) gives the kernels the
// CPU's vector units call for without restarting the process. The declarations follow cblas.h
// (LP64 OpenBLAS: 32-bit integers, as Debian's libopenblas0).
#include <dlfcn.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

enum { SEGDIST_CBLAS_ROW_MAJOR = 101, SEGDIST_CBLAS_NO_TRANS = 111, SEGDIST_CBLAS_TRANS = 112 };

typedef struct {
    void (*sgemm)(int order, int transA, int transB, int m, int n, int k, float alpha, const float *a, int lda,
                  const float *b, int ldb, float beta, float *c, int ldc);
    void (*setNumThreads)(int);
    char *(*coreName)(void);
} segdist_openblas;

// dlopen of `name`, else `fallback`, with the environment variable `variable` set to "1" while
// the library loads (a library that reads its thread count once, at load) and put back after.
static inline void *segdist_dlopen_single_threaded(const char *name, const char *fallback, const char *variable) {
    const char *old = getenv(variable);
    char saved[64] = {0};
    if (old) { strncpy(saved, old, sizeof saved - 1); }
    setenv(variable, "1", 1);
    void *lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (!lib) lib = dlopen(fallback, RTLD_NOW | RTLD_LOCAL);
    if (old) setenv(variable, saved, 1); else unsetenv(variable);
    return lib;
}

// Fills `api` from libopenblas.so.0 (or libopenblas.so); returns 0 on success, -1 when no
// library loads, -2 when a symbol is missing.
// OPENBLAS_NUM_THREADS=1 while it loads: segdist calls it from its own workers, one thread
// each, and OpenBLAS would otherwise start a thread per core at load that spins (sched_yield)
// before it sleeps. The caller's value is put back afterwards.
static inline int segdist_openblas_load(segdist_openblas *api) {
    void *lib = segdist_dlopen_single_threaded("libopenblas.so.0", "libopenblas.so", "OPENBLAS_NUM_THREADS");
    if (!lib) return -1;
    *(void **)&api->sgemm = dlsym(lib, "cblas_sgemm");
    *(void **)&api->setNumThreads = dlsym(lib, "openblas_set_num_threads");
    *(void **)&api->coreName = dlsym(lib, "openblas_get_corename");
    return api->sgemm && api->setNumThreads && api->coreName ? 0 : -2;
}

// oneDNN's row-major sgemm (dnnl.h: dnnl_sgemm; 64-bit dimensions, 'N'/'T'), the second GEMM
// library segdist calls where it is faster (GEMMLibrary.swift says where). oneDNN picks its kernels from
// CPUID when it runs, not from a CPU-model table. It parallelises with OpenMP: OMP_NUM_THREADS=1
// while it loads (libgomp reads the variable once, when it loads) keeps each call on the segdist
// worker that makes it, as OpenBLAS is; the caller's value is put back afterwards.
typedef struct {
    int (*sgemm)(char transA, char transB, long long m, long long n, long long k, float alpha, const float *a,
                 long long lda, const float *b, long long ldb, float beta, float *c, long long ldc);
    int (*ompMaxThreads)(void);
} segdist_onednn;

// Fills `api` from libdnnl.so.3 or libdnnl.so.2; returns 0 on success, -1 when no library loads,
// -2 when a symbol is missing, -3 when OpenMP would run more than one thread per call (an OpenMP
// runtime loaded earlier with another OMP_NUM_THREADS).
static inline int segdist_onednn_load(segdist_onednn *api) {
    void *lib = segdist_dlopen_single_threaded("libdnnl.so.3", "libdnnl.so.2", "OMP_NUM_THREADS");
    if (!lib) return -1;
    *(void **)&api->sgemm = dlsym(lib, "dnnl_sgemm");
    *(void **)&api->ompMaxThreads = dlsym(lib, "omp_get_max_threads");
    if (!api->sgemm) return -2;
    if (api->ompMaxThreads && api->ompMaxThreads() != 1) return -3;
    return 0;
}

static inline const char *segdist_openblas_error(void) {
    const char *e = dlerror();
    return e ? e : "unknown error";
}
