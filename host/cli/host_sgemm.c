/* The host reference beside `vkdiff bench ops`' linear shapes: OpenBLAS sgemm, where
 * the build found it (the library itself does not link OpenBLAS). */
#define _POSIX_C_SOURCE 200809L
#include "cli/host_sgemm.h"

#include <stdlib.h>
#include <time.h>

#ifdef VKD_HAVE_OPENBLAS
#include <cblas.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void fill(float *x, size_t n, float scale, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = scale * ((float)(seed >> 8) / 16777216.0f - 0.5f);
    }
}
#endif

double vkd_cli_time_sgemm(int64_t m, int64_t k, int64_t n, int repeat)
{
#ifdef VKD_HAVE_OPENBLAS
    float *a = malloc((size_t)(m * k) * 4), *w = malloc((size_t)(n * k) * 4), *o = malloc((size_t)(m * n) * 4);
    double *ms = calloc((size_t)repeat, sizeof *ms), res = -1;
    if (a && w && o && ms && repeat > 0) {
        fill(a, (size_t)(m * k), 2.0f, 1);
        fill(w, (size_t)(n * k), 0.1f, 2);
        for (int i = -1; i < repeat; i++) {
            double t0 = now_ms();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)n, (int)k, 1.0f, a, (int)k, w, (int)k,
                        0.0f, o, (int)n);
            if (i >= 0)
                ms[i] = now_ms() - t0;
        }
        qsort(ms, (size_t)repeat, sizeof *ms, cmp_double);
        res = repeat % 2 ? ms[repeat / 2] : 0.5 * (ms[repeat / 2 - 1] + ms[repeat / 2]);
    }
    free(a);
    free(w);
    free(o);
    free(ms);
    return res;
#else
    (void)m, (void)k, (void)n, (void)repeat;
    return -1;
#endif
}
