/* blas_env.c: choose OpenBLAS kernels matching the CPU (see blas_env.h). */
#include "blas_env.h"
#include <cblas.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *blas_env_core(void)
{
    const char *c = openblas_get_corename();
    return c ? c : "unknown";
}

/* Set in the environment of our own re-exec, to tell it from a user's choice. */
#define REEXEC_MARK "LORA_BLAS_ENV_CHOSE"

static const char *core_source = "OpenBLAS's CPU detection";

const char *blas_env_source(void) { return core_source; }

void blas_env_init(int argc, char **argv)
{
    (void)argc;
    if (getenv(REEXEC_MARK)) { core_source = "chosen by blas_env (OpenBLAS fell back to generic kernels)"; return; }
    if (getenv("OPENBLAS_CORETYPE")) { core_source = "OPENBLAS_CORETYPE from the environment"; return; }
    const char *core = blas_env_core();
    if (strcasecmp(core, "Prescott") && strcasecmp(core, "Core2") && strcasecmp(core, "Nehalem") &&
        strcasecmp(core, "Sandybridge") && strcasecmp(core, "unknown"))
        return;
    const char *want = NULL;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
        want = "SkylakeX";
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        want = "Haswell";
    if (!want || !strcasecmp(core, want)) return;
    if (setenv("OPENBLAS_CORETYPE", want, 1) || setenv(REEXEC_MARK, "1", 1)) return;
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with the slower kernels */
}

void blas_env_run_threads(int T, void *(*worker)(void *), void *arg)
{
    if (T < 1) T = 1;
    if (T > 64) T = 64;
    int blas_threads = openblas_get_num_threads();
    if (T > 1) openblas_set_num_threads(1);
    pthread_t tid[64];
    int started = 0;
    for (int t = 1; t < T; t++, started++)
        if (pthread_create(&tid[started], NULL, worker, arg) != 0) break;   /* fewer threads is fine */
    worker(arg);
    for (int t = 0; t < started; t++) pthread_join(tid[t], NULL);
    if (T > 1) openblas_set_num_threads(blas_threads);
}
