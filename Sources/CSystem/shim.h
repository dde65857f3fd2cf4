// Thin shim over glibc calls that Swift's Glibc module does not export: mallopt lives in
// <malloc.h>, and sched_getaffinity / CPU_COUNT need _GNU_SOURCE.
#ifndef SEGDIST_CSYSTEM_SHIM_H
#define SEGDIST_CSYSTEM_SHIM_H
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sched.h>
#include <unistd.h>
#if defined(__linux__)
#include <malloc.h>
#endif

/// Keeps freed memory in the heap instead of returning it to the kernel (0 on success).
static inline int segdist_keep_freed_memory(void) {
#if defined(__linux__)
    int ok = mallopt(M_MMAP_THRESHOLD, 512 << 20);
    ok &= mallopt(M_TRIM_THRESHOLD, 0x7fffffff);
    return ok ? 0 : -1;
#else
    return -1;
#endif
}

/// Cores this process may run on (its affinity mask), or -1 when that cannot be read.
static inline int segdist_cores_allowed(void) {
#if defined(__linux__)
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) != 0) return -1;
    return CPU_COUNT(&set);
#else
    return -1;
#endif
}
#endif
