/* blas_env.h: makes OpenBLAS use the right compute kernels on this kind of VM.
 *
 * OpenBLAS (DYNAMIC_ARCH builds) picks its kernels from CPUID when the library
 * loads. Under some hypervisors it does not recognise the CPU and falls back to
 * the generic SSE3 "Prescott" kernels, which are 4-6x slower than the AVX2 /
 * AVX-512 ones the CPU has. The only way to choose is the OPENBLAS_CORETYPE
 * environment variable, read before main(). blas_env_init() (first thing in a
 * tool's main) checks what OpenBLAS picked; if it is the fallback although the
 * CPU supports AVX-512 or AVX2, it sets OPENBLAS_CORETYPE and re-executes the
 * program once. A user-set OPENBLAS_CORETYPE is always respected.
 * blas_env_run_threads runs a tool's worker threads with OpenBLAS at one thread. */
#ifndef LK_BLAS_ENV_H
#define LK_BLAS_ENV_H

void blas_env_init(int argc, char **argv);

/* The OpenBLAS kernel set in use ("SkylakeX", "Haswell", ...). */
const char *blas_env_core(void);

/* Where that choice came from: the environment (OPENBLAS_CORETYPE set by the
 * user), blas_env_init's re-exec, or OpenBLAS's own CPU detection. Kernel sets
 * differ in speed (on AMD EPYC with AVX-512, SkylakeX/Cooperlake ran single-
 * thread sgemm 1.5-2x faster than Haswell) and in the last bits of results. */
const char *blas_env_source(void);

/* Runs worker(arg) on T threads, the calling one among them (T clamped to 1..64;
 * fewer when a thread cannot be started, which the workers' shared queue absorbs),
 * and returns when all have. With more than one thread OpenBLAS is held at one
 * thread meanwhile: one owner per core, no nested thread pools. */
void blas_env_run_threads(int T, void *(*worker)(void *), void *arg);

#endif
