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

/// What the CPU can run (CPUID through the compiler's builtins): 2 = AVX-512 (F, BW, DQ, VL),
/// 1 = AVX2 with FMA (and BMI2), 0 = neither (or not x86).
static inline int segdist_cpu_vector_level(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq")
        && __builtin_cpu_supports("avx512vl")) return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2")) return 1;
#endif
    return 0;
}

/// Asks for the cache line at `p` ahead of its use (a hint: never faults, whatever `p` is).
static inline void segdist_prefetch(const void *p) { __builtin_prefetch(p, 0, 3); }

/// The spin-wait hint (x86 PAUSE): a waiting core yields its pipeline to its sibling and
/// stops flooding the memory system with loads of the flag it watches.
static inline void segdist_pause(void) {
#if defined(__x86_64__)
    __builtin_ia32_pause();
#endif
}

#endif
