// Thin shim: the three OpenBLAS entry points segdist calls, loaded with dlopen at first use.
// OpenBLAS picks its kernels once, when it loads, from OPENBLAS_CORETYPE or a CPU-model table;
// loading it after segdist has set that variable from CPUID (BLASKernels) gives the kernels the
// CPU's vector units call for without restarting the process. The declarations follow cblas.h
// (LP64 OpenBLAS: 32-bit integers, as Debian's libopenblas0).
#include <dlfcn.h>
#include <stddef.h>

enum { SEGDIST_CBLAS_ROW_MAJOR = 101, SEGDIST_CBLAS_NO_TRANS = 111, SEGDIST_CBLAS_TRANS = 112 };

typedef struct {
    void (*sgemm)(int order, int transA, int transB, int m, int n, int k, float alpha, const float *a, int lda,
                  const float *b, int ldb, float beta, float *c, int ldc);
    void (*setNumThreads)(int);
    char *(*coreName)(void);
} segdist_openblas;

// Fills `api` from libopenblas.so.0 (or libopenblas.so); returns 0 on success, -1 when no
// library loads, -2 when a symbol is missing.
static inline int segdist_openblas_load(segdist_openblas *api) {
    void *lib = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!lib) lib = dlopen("libopenblas.so", RTLD_NOW | RTLD_LOCAL);
    if (!lib) return -1;
    *(void **)&api->sgemm = dlsym(lib, "cblas_sgemm");
    *(void **)&api->setNumThreads = dlsym(lib, "openblas_set_num_threads");
    *(void **)&api->coreName = dlsym(lib, "openblas_get_corename");
    return api->sgemm && api->setNumThreads && api->coreName ? 0 : -2;
}

static inline const char *segdist_openblas_error(void) {
    const char *e = dlerror();
    return e ? e : "unknown error";
}
