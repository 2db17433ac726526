/*
 * OpenBLAS CPU detection fix-up. Debian bookworm's OpenBLAS 0.3.21 picks its
 * kernels once, when the library loads, from the CPU model number; a CPU
 * newer than the library (e.g. Intel family 6 model 207, Emerald Rapids)
 * falls back to the SSE3 "Prescott" kernels and runs our networks three
 * times slower (recognition 21.7 ms instead of 7.6). The choice can only be
 * overridden by OPENBLAS_CORETYPE in the environment before the library
 * loads, so a program that finds the fallback re-executes itself once with
 * the right core type for the instruction sets the CPU reports.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "models/models.h"

/* Declared by OpenBLAS' cblas.h; restated to keep that header out of here. */
char *openblas_get_corename(void);

const char *pv_models_blas_core(void)
{
    const char *c = openblas_get_corename();
    return c != NULL ? c : "unknown";
}

void pv_models_blas_init(char **argv)
{
    const char *core = pv_models_blas_core();
    const char *want = NULL;
    if (getenv("OPENBLAS_CORETYPE") != NULL || argv == NULL || argv[0] == NULL)
        return;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        want = "SkylakeX";
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        want = "Haswell";
    /* only the generic fallbacks are overridden; a detected core is kept */
    if (want == NULL || !(strcasecmp(core, "prescott") == 0 || strcasecmp(core, "core2") == 0 ||
                          strcasecmp(core, "nehalem") == 0 || strcasecmp(core, "sandybridge") == 0 ||
                          strcasecmp(core, "katmai") == 0 || strcasecmp(core, "unknown") == 0))
        return;
    if (setenv("OPENBLAS_CORETYPE", want, 1) != 0)
        return;
    fflush(NULL);
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with the slow kernels rather than not at all */
    fprintf(stderr,
            "warning: OpenBLAS chose its %s kernels and re-executing with %s failed; inference will be "
            "slow (set OPENBLAS_CORETYPE=%s)\n",
            core, want, want);
}
