/* Tiny test harness shared by every tests/test_*.c.
 *
 *   TEST_CHECK(cond, fmt, ...)   counts a check; prints the message when it fails
 *   test_seed()                  seed for random inputs: $VKD_SEED or time-based, printed once
 *   test_data_path("x.bin")      path under tests/data (ctest sets VKD_TEST_DATA)
 *   test_shared_path("clip/..")  path under ../shared (ctest sets VKD_SHARED)
 *   test_build_path("x")         path under the build folder (scratch files)
 *   test_finish()                prints "N passed, M failed" and returns the exit code
 */
#ifndef VKD_TEST_HARNESS_H
#define VKD_TEST_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

extern int test_passed, test_failed;

#define TEST_CHECK(cond, ...)                                                    \
    do {                                                                         \
        if (cond) {                                                              \
            test_passed++;                                                       \
        } else {                                                                 \
            test_failed++;                                                       \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                 \
            fprintf(stderr, __VA_ARGS__);                                        \
            fputc('\n', stderr);                                                 \
        }                                                                        \
    } while (0)

uint64_t test_seed(void);
/* splitmix64-based generator for test inputs */
typedef struct { uint64_t s; } test_rng;
uint64_t test_rng_u64(test_rng *r);
double test_rng_uniform(test_rng *r);           /* [0,1) */
double test_rng_normal(test_rng *r);            /* N(0,1) */

const char *test_data_path(const char *rel);    /* returns a static buffer (rotating, 8 deep) */
const char *test_shared_path(const char *rel);
const char *test_build_path(const char *rel);

/* Normalised mean squared error sum((got-ref)^2) / max(sum(ref^2), tiny).
 * *first_bad (if not NULL) receives the first index whose |got-ref| exceeds
 * tol_abs + tol_rel*|ref| (or SIZE_MAX if none), to print next to the nmse. */
double test_nmse(const float *got, const double *ref, size_t n, double tol_abs, double tol_rel, size_t *first_bad);

int test_finish(void);

#endif
