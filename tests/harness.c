#include "harness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int test_passed, test_failed;

uint64_t test_seed(void)
{
    static int have;
    static uint64_t seed;
    if (!have) {
        const char *s = getenv("VKD_SEED");
        seed = s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL);
        have = 1;
        printf("seed %llu (rerun with VKD_SEED=%llu)\n", (unsigned long long)seed, (unsigned long long)seed);
    }
    return seed;
}

uint64_t test_rng_u64(test_rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double test_rng_uniform(test_rng *r) { return (double)(test_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0); }

double test_rng_normal(test_rng *r)
{
    double u1 = test_rng_uniform(r), u2 = test_rng_uniform(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static const char *join(const char *env, const char *fallback, const char *rel)
{
    static char bufs[8][4096];
    static int next;
    char *b = bufs[next++ & 7];
    const char *root = getenv(env);
    if (!root)
        root = fallback;
    snprintf(b, sizeof bufs[0], "%s/%s", root, rel);
    return b;
}

const char *test_data_path(const char *rel) { return join("VKD_TEST_DATA", "tests/data", rel); }
const char *test_shared_path(const char *rel) { return join("VKD_SHARED", "../shared", rel); }
const char *test_build_path(const char *rel) { return join("VKD_BUILD", ".", rel); }

double test_nmse(const float *got, const double *ref, size_t n, double tol_abs, double tol_rel, size_t *first_bad)
{
    double num = 0, den = 0;
    size_t bad = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        double d = (double)got[i] - ref[i];
        if (!(fabs(d) <= tol_abs + tol_rel * fabs(ref[i])) && bad == SIZE_MAX)
            bad = i; /* also catches NaN (poisoned, never written) */
        num += d * d;
        den += ref[i] * ref[i];
    }
    if (first_bad)
        *first_bad = bad;
    if (num != num)
        return INFINITY;
    return num / (den > 1e-30 ? den : 1e-30);
}

int test_finish(void)
{
    printf("%d passed, %d failed\n", test_passed, test_failed);
    return test_failed ? 1 : 0;
}
