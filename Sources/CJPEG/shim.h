// Thin shim: the few TurboJPEG (libjpeg-turbo) entry points segdist calls, loaded with dlopen
// at first use — no JPEG headers or library at build time, and a machine without
// libturbojpeg.so.0 runs everything but JPEG reading. The declarations follow turbojpeg.h
// (TurboJPEG API 2.x, stable since libjpeg-turbo 1.4).
#include <dlfcn.h>
#include <stddef.h>

typedef void *segdist_tjhandle;
enum { SEGDIST_TJPF_RGB = 0, SEGDIST_TJPF_GRAY = 6 };
enum { SEGDIST_TJCS_GRAY = 2, SEGDIST_TJSAMP_444 = 0, SEGDIST_TJSAMP_GRAY = 3, SEGDIST_TJFLAG_ACCURATEDCT = 4096 };

typedef struct {
    segdist_tjhandle (*initDecompress)(void);
    int (*decompressHeader3)(segdist_tjhandle, const unsigned char *, unsigned long, int *, int *, int *, int *);
    int (*decompress2)(segdist_tjhandle, const unsigned char *, unsigned long, unsigned char *, int, int, int, int, int);
    segdist_tjhandle (*initCompress)(void);
    int (*compress2)(segdist_tjhandle, const unsigned char *, int, int, int, int, unsigned char **, unsigned long *,
                     int, int, int);
    void (*free)(unsigned char *);
    char *(*errorString)(segdist_tjhandle);
    int (*destroy)(segdist_tjhandle);
} segdist_turbojpeg;

// Fills `api` from libturbojpeg.so.0; returns 0 when the library or a symbol is missing.
static inline int segdist_turbojpeg_load(segdist_turbojpeg *api) {
    void *lib = dlopen("libturbojpeg.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!lib) return 0;
    *(void **)&api->initDecompress = dlsym(lib, "tjInitDecompress");
    *(void **)&api->decompressHeader3 = dlsym(lib, "tjDecompressHeader3");
    *(void **)&api->decompress2 = dlsym(lib, "tjDecompress2");
    *(void **)&api->initCompress = dlsym(lib, "tjInitCompress");
    *(void **)&api->compress2 = dlsym(lib, "tjCompress2");
    *(void **)&api->free = dlsym(lib, "tjFree");
    *(void **)&api->errorString = dlsym(lib, "tjGetErrorStr2");
    *(void **)&api->destroy = dlsym(lib, "tjDestroy");
    return api->initDecompress && api->decompressHeader3 && api->decompress2 && api->initCompress && api->compress2
        && api->free && api->errorString && api->destroy;
}
