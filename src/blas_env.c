/* blas_env.c: choose OpenBLAS kernels matching the CPU (see blas_env.h). */
#include "blas_env.h"
#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *blas_env_core(void)
{
    const char *c = openblas_get_corename();
    return c ? c : "unknown";
}

void blas_env_init(int argc, char **argv)
{
    (void)argc;
    if (getenv("OPENBLAS_CORETYPE")) return; /* the user's choice, or our re-exec */
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
    if (setenv("OPENBLAS_CORETYPE", want, 1)) return;
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with the slower kernels */
}
