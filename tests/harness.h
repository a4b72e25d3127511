/* Tiny test harness shared by every tests/test_*.c.
 *
 *   TEST_CHECK(cond, fmt, ...)   counts a check; prints the message when it fails
 *   test_seed()                  seed for random inputs: $VKD_SEED or time-based, printed once
 *   test_data_path("x.bin")      path under tests/data (ctest sets VKD_TEST_DATA)
 *   test_shared_path("clip/..")  path under ../shared (ctest sets VKD_SHARED)
 *   test_build_path("x")         path under the build folder (scratch files)
 *   test_source_path("weights/") path under the source tree (ctest sets VKD_SOURCE)
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

const char *test_data_path(const char *rel);    /* valid for the whole run (interned) */
const char *test_shared_path(const char *rel);
const char *test_build_path(const char *rel);
const char *test_source_path(const char *rel);

/* Normalised mean squared error sum((got-ref)^2) / max(sum(ref^2), tiny).
 * *first_bad (if not NULL) receives the first index whose |got-ref| exceeds
 * tol_abs + tol_rel*|ref| (or SIZE_MAX if none), to print next to the nmse. */
/* A whole file, NUL-terminated (caller frees); NULL if it cannot be read. len may be NULL. */
char *test_read_file(const char *path, size_t *len);

double test_nmse(const float *got, const double *ref, size_t n, double tol_abs, double tol_rel, size_t *first_bad);

int test_finish(void);

#endif

/* ---- GPU tests ----------------------------------------------------------------
 * test_device_open: a device with the Khronos validation layer on (any validation
 * error fails the test at test_device_close). max_binding > 0 lowers
 * maxStorageBufferRange to exercise the split paths with small tensors. */
#include <stdbool.h>

#include "vk/cmd.h"
#include "vk/device.h"
#include "ops/tensor.h"
vkd_device *test_device_open(uint64_t max_binding);
/* Keep the loaded Vulkan driver and layer libraries resident until exit (so the
 * allocations they keep show under their names in LeakSanitizer's report and
 * tests/lsan.supp can name them). test_device_open does it; tests that create a
 * device another way (through the public API) call it after. */
void test_pin_driver_libs(void);
void test_device_close(vkd_device *d);
/* A context asked for validation (vkd_ctx_params.validation) must have the layer
 * loaded when VKD_REQUIRE_VALIDATION is set (tools/test.sh): else the test fails. */
struct vkd_ctx;
void test_ctx_validation_loaded(const struct vkd_ctx *ctx, int asked);
/* The dtypes to test on this device: F32 always, F16 when it has 16-bit storage. */
int test_dtypes(const vkd_device *d, vkd_dtype out[2]);
/* The GEMM kernels (ops/matmul.h tiles) to check on this device by override: the
 * shared-memory tiles, the direct kernel and the emulated cooperative-matrix kernel
 * everywhere, the subgroup kernel where vkd_gemm_subgroup_ok, the real cooperative-
 * matrix one where device->profile.coopmat (both fp16 only: their fp32 cases take the device's own
 * kernel; the emulation with 16- and 8-column accumulators). Says which it leaves out;
 * returns the count. */
#include "ops/matmul.h"
int test_gemm_tiles(const vkd_device *d, vkd_gemm_tile out[6]);
/* The first of test_dtypes' ndt dtypes to run tile *t on: the cooperative kernels take
 * fp16 only (the last), the others every dtype. */
int test_gemm_first_dtype(const vkd_gemm_tile *t, int ndt);
/* Fill a host array with N(0, scale^2) values. */
void test_fill_normal(test_rng *r, float *x, size_t n, double scale);
/* Values as the device sees them: rounded to fp16 when dt is F16 (so the double
 * reference starts from the same inputs). */
void test_round_to(vkd_dtype dt, float *x, size_t n);
/* Upload host data into a new device tensor; the output tensors are poisoned with NaN. */
vkd_tensor test_tensor_from(vkd_device *d, vkd_dtype dt, int ndim, const int64_t *shape, const float *data);
vkd_tensor test_tensor_poisoned(vkd_device *d, vkd_dtype dt, int ndim, const int64_t *shape);
/* Compare a device tensor against a double reference; prints nmse and the first
 * mismatch; counts one check. Returns the nmse. */
double test_expect_close(vkd_device *d, const vkd_tensor *t, const double *ref, double max_nmse, const char *what);

/* ---- an op against its double reference: the op tests' one sequence ------------------
 * A test states a claim as a test_op: what it checks (printed, with the dispatch count
 * appended), how to record the op, the output tensor, the double reference and the
 * largest nmse allowed for each storage precision; test_op_run does the rest:
 * command buffer create / begin / record / end / submit / wait, download, compare. */
typedef vkd_result (*test_record_fn)(vkd_cmd *c, void *ctx);

/* The largest nmse a comparison allows, by the output's storage precision. */
typedef struct test_tol {
    double f32, f16;
} test_tol;
double test_tol_for(test_tol tol, vkd_dtype dt);

typedef struct test_op {
    const char *what;        /* the claim: op, dtype, shape; " (N dispatches)" is appended */
    test_record_fn record;   /* records the op into c (already begun) */
    void *ctx;
    const vkd_tensor *out;   /* compared against ref (numel(out) values) within tol[out->dtype] */
    const double *ref;
    test_tol tol;
    bool skip_unsupported;   /* record's VKD_ERR_UNSUPPORTED is returned unchecked (a forced kernel that does not apply) */
    bool keep_cmd;           /* leave the command buffer in cmd, to submit again; the caller destroys it */
    unsigned dispatches;     /* out: dispatches recorded */
    vkd_cmd *cmd;            /* out, with keep_cmd */
} test_op;

/* Runs op as above; counts one check for the run (its vkd_result) and one for the
 * comparison. Returns the run's result. */
vkd_result test_op_run(vkd_device *d, test_op *op);
/* The part of test_op_run before the comparison: a command buffer with rec(c, ctx)
 * recorded, submitted and waited for; counts no check. *dispatches (if not NULL) gets
 * the dispatch count; *keep (if not NULL) the command buffer, else it is destroyed. */
vkd_result test_submit(vkd_device *d, test_record_fn rec, void *ctx, unsigned *dispatches, vkd_cmd **keep);
/* For the checks that an op refuses bad arguments: a begun command buffer (counts one
 * check that it could be made), and its end and destruction. */
vkd_cmd *test_cmd_open(vkd_device *d);
void test_cmd_close(vkd_cmd *c);

/* run(d, dt, &cases[k], rng) for each dtype of test_dtypes(d) (the outer loop) and each
 * of a case table's entries: TEST_EACH_DTYPE(d, cases, run_case, &rng). */
typedef void (*test_case_fn)(vkd_device *d, vkd_dtype dt, const void *c, test_rng *rng);
void test_each_dtype(vkd_device *d, const void *cases, size_t n, size_t size, test_case_fn run, test_rng *rng);
#define TEST_EACH_DTYPE(d, cases, run, rng) \
    test_each_dtype((d), (cases), sizeof(cases) / sizeof((cases)[0]), sizeof((cases)[0]), (run), (rng))

/* A new host array of n values N(0, scale^2), rounded to dt (test_round_to): the
 * inputs as the device will see them. Exits if out of memory. */
float *test_randn(test_rng *r, vkd_dtype dt, size_t n, double scale);
/* malloc that exits when out of memory (test inputs and references). */
void *test_alloc(size_t bytes);
/* Frees each host pointer / destroys each tensor (NULL and zeroed tensors are fine). */
#define TEST_FREE(...) test_free_n((void *[]){__VA_ARGS__}, sizeof((void *[]){__VA_ARGS__}) / sizeof(void *))
#define TEST_DESTROY(d, ...)                                                                           \
    test_destroy_n((d), (vkd_tensor *[]){__VA_ARGS__}, sizeof((vkd_tensor *[]){__VA_ARGS__}) / sizeof(vkd_tensor *))
void test_free_n(void *const *p, size_t n);
void test_destroy_n(vkd_device *d, vkd_tensor *const *t, size_t n);

/* ---- the same output over differently poisoned memory (issue 18 item 8) -------
 * test_device_open_poisoned: test_device_open with vkd_device_opts.poison on: every
 * buffer allocated from then on starts filled with d->poison_pattern.
 * test_same_over_poison: runs the op once per pattern of test_poison_patterns (all
 * bits set: NaN in fp32 and fp16; zero; 0x3c003c00: 1.0 in fp16, 0.0078 in fp32, finite
 * both ways), each time after setting d->poison_pattern and filling the free memory
 * with it (vkd_memory_poison_free). run(d, ctx, &out) creates everything the op reads
 * or writes -- inputs uploaded from the host, outputs, scratch -- so all of it, a
 * buffer's tail past its tensor included, holds the pattern until written; records,
 * submits and waits; frees all but out. The helper reads out's bytes, frees it, and
 * counts one check: every run gave the same bytes. Returns whether they did. */
vkd_device *test_device_open_poisoned(uint64_t max_binding);
#define TEST_N_POISON 3
extern const uint32_t test_poison_patterns[TEST_N_POISON];
typedef vkd_result (*test_poison_run)(vkd_device *d, void *ctx, vkd_tensor *out);
int test_same_over_poison(vkd_device *d, const char *what, test_poison_run run, void *ctx);

