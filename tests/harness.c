#define _GNU_SOURCE
#include "harness.h"
#include "vkdiff_dev.h"

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

/* Paths are interned: each distinct path is made once and stays valid for the whole
 * run. (These were 8 rotating buffers; a test that kept one across more lookups once
 * wrote a checkpoint over ../shared's CLIP vocabulary, then removed it.) */
static const char *join(const char *env, const char *fallback, const char *rel)
{
    static char *paths[512];
    static int n;
    char b[4096];
    const char *root = getenv(env);
    if (!root)
        root = fallback;
    snprintf(b, sizeof b, "%s/%s", root, rel);
    for (int i = 0; i < n; i++)
        if (!strcmp(paths[i], b))
            return paths[i];
    size_t len = strlen(b) + 1;
    if (n == (int)(sizeof paths / sizeof paths[0]) || !(paths[n] = malloc(len))) {
        fprintf(stderr, "harness: more than %d distinct paths, or out of memory\n", n);
        abort();
    }
    memcpy(paths[n], b, len);
    return paths[n++];
}

const char *test_data_path(const char *rel) { return join("VKD_TEST_DATA", "tests/data", rel); }
const char *test_shared_path(const char *rel) { return join("VKD_SHARED", "../shared", rel); }
const char *test_build_path(const char *rel) { return join("VKD_BUILD", "/tmp", rel); }
const char *test_source_path(const char *rel) { return join("VKD_SOURCE", ".", rel); }

char *test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)n + 1);
        if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        }
    }
    fclose(f);
    if (buf) {
        buf[n] = 0;
        if (len)
            *len = (size_t)n;
    }
    return buf;
}

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

/* ---- GPU tests ---------------------------------------------------------------- */

#include "common/half.h"
#include "common/pin_libs.h"
#include "vk/memory.h"

/* see common/pin_libs.h: lets tests/lsan.supp name what the driver keeps until exit */
void test_pin_driver_libs(void) { vkd_pin_driver_libs(); }

static vkd_device *open_device(uint64_t max_binding, bool poison)
{
    vkd_device_opts o;
    vkd_device_opts_init(&o);
    o.poison = poison;
    o.poison_pattern = test_poison_patterns[0];
    o.validation = getenv("VKD_NO_VALIDATION") == NULL;
    /* tools/test.sh sets VKD_REQUIRE_VALIDATION: a layer that did not load fails the
     * test instead of letting it pass with nothing checked */
    o.require_validation = o.validation && getenv("VKD_REQUIRE_VALIDATION") != NULL;
    o.max_binding_override = max_binding;
    o.coopmat = getenv("VKD_COOPMAT"); /* tools/gpu/run.sh reruns the GEMM tests on NV with it */
    const char *dev = getenv("VKD_TEST_DEVICE");
    if (dev)
        o.device_index = atoi(dev);
    vkd_device *d = NULL;
    vkd_result r = vkd_device_create(&o, &d);
    TEST_CHECK(r == VKD_OK, "device creation failed: %s", vkd_result_str(r));
    if (r) {
        printf("%d passed, %d failed\n", test_passed, test_failed);
        exit(1);
    }
    test_pin_driver_libs();
    static int printed;
    if (!printed++)
        printf("device: %s (%s), 16-bit storage %s, max binding %llu, cooperative matrix %s, "
               "validation layer %s, subgroups of %u%s\n",
               d->caps.name, d->caps.driver, d->caps.storage16 ? "yes" : "no",
               (unsigned long long)d->caps.max_binding,
               d->profile.coopmat == VKD_COOPMAT_KHR ? "KHR" : d->profile.coopmat == VKD_COOPMAT_NV ? "NV" : "off",
               d->validation_layer ? "on" : "off", d->caps.subgroup_size,
               o.emulate && !strcmp(o.emulate, "mobile") ? ", emulating a phone GPU's limits (VKD_EMULATE)" : "");
    return d;
}

vkd_device *test_device_open(uint64_t max_binding) { return open_device(max_binding, false); }
vkd_device *test_device_open_poisoned(uint64_t max_binding) { return open_device(max_binding, true); }

const uint32_t test_poison_patterns[TEST_N_POISON] = {0xffffffffu, 0x00000000u, 0x3c003c00u};

int test_same_over_poison(vkd_device *d, const char *what, test_poison_run run, void *ctx)
{
    uint8_t *first = NULL;
    size_t n = 0, diff = 0, at = 0;
    int bad = 0; /* the first pattern whose output differs from the first pattern's */
    vkd_result r = VKD_OK;
    for (int i = 0; i < TEST_N_POISON && !r && !bad; i++) {
        d->poison_pattern = test_poison_patterns[i];
        vkd_tensor out;
        memset(&out, 0, sizeof out);
        if ((r = vkd_memory_poison_free(d, d->poison_pattern)) || (r = run(d, ctx, &out)))
            break;
        size_t bytes = (size_t)vkd_tensor_bytes(&out);
        uint8_t *buf = malloc(bytes ? bytes : 1);
        r = buf ? vkd_buffer_download(d, &out.buf, out.offset, buf, bytes) : VKD_ERR_OUT_OF_HOST_MEMORY;
        vkd_tensor_destroy(d, &out);
        if (i == 0) {
            first = buf, n = bytes;
            continue;
        }
        if (!r && bytes != n)
            r = VKD_ERR_INTERNAL;
        for (size_t k = 0; !r && k < n; k++)
            if (first[k] != buf[k] && diff++ == 0)
                at = k, bad = i;
        free(buf);
    }
    d->poison_pattern = test_poison_patterns[0];
    int ok = r == VKD_OK && diff == 0;
    printf("%s %-64s %s\n", ok ? "ok  " : "FAIL", what, ok ? "same bytes over 3 poison patterns" : "");
    if (r)
        TEST_CHECK(0, "%s: %s", what, vkd_result_str(r));
    else
        TEST_CHECK(diff == 0,
                   "%s: %zu of %zu output bytes differ between memory poisoned with 0x%08x and with 0x%08x (first "
                   "at byte %zu)",
                   what, diff, n, test_poison_patterns[0], test_poison_patterns[bad], at);
    free(first);
    return ok;
}

void test_device_close(vkd_device *d)
{
    if (!d)
        return;
    vkd_device_wait_idle(d);
    TEST_CHECK(d->validation_errors == 0, "%u Vulkan validation errors", d->validation_errors);
    vkd_device_destroy(d);
}

int test_dtypes(const vkd_device *d, vkd_dtype out[2])
{
    out[0] = VKD_F32;
    if (!d->caps.storage16) {
        printf("note: no 16-bit storage on this device: fp16 variants not run here\n");
        return 1;
    }
    out[1] = VKD_F16;
    return 2;
}

int test_gemm_tiles(const vkd_device *d, vkd_gemm_tile out[6])
{
    const vkd_gemm_tile tiled = {64, 64, 16, 4, 4, 0}, direct = {256, 8, 1, 8, 8, 1}, sg = {32, 64, 1, 4, 64, 2};
    int n = 0;
    out[n++] = tiled;
    out[n++] = direct;
    if (vkd_gemm_subgroup_ok(d))
        out[n++] = sg;
    else
        printf("note: no 8-lane subgroups with shuffles and texel buffers: the subgroup GEMM is not run here\n");
    /* fp16 only (the fp32 cases run the device's own kernel), both accumulator widths */
    /* the emulation needs 32 KiB of shared memory: not on a phone's 16 (VKD_EMULATE=mobile) */
    vkd_gemm_tile emu = vkd_gemm_coopmat_emu_tile;
    vkd_gemm_vec_width(d, &emu, VKD_F16, 0, 64, 0, 0);
    if (emu.direct == VKD_GEMM_FAM_COOPMAT_EMU) {
        out[n++] = vkd_gemm_coopmat_emu_tile;
        out[n] = vkd_gemm_coopmat_emu_tile;
        out[n++].tn = 8;
    } else
        printf("note: the emulated cooperative-matrix GEMM does not fit this device's %u bytes of shared memory: "
               "not run here\n", d->caps.max_shared);
    if (d->profile.coopmat != VKD_COOPMAT_NONE) {
        out[n] = vkd_gemm_coopmat_tile;
        out[n++].tn = d->profile.coopmat_n;
    }
    else
        printf("note: no fp16 16xNx16 cooperative matrices (VK_KHR_ or VK_NV_cooperative_matrix) in use: "
               "the cooperative-matrix GEMM is not run here\n");
    return n;
}

int test_gemm_first_dtype(const vkd_gemm_tile *t, int ndt)
{
    return t->direct >= 3 ? ndt - 1 : 0;
}

void test_fill_normal(test_rng *r, float *x, size_t n, double scale)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(scale * test_rng_normal(r));
}

void test_round_to(vkd_dtype dt, float *x, size_t n)
{
    if (dt == VKD_F16)
        for (size_t i = 0; i < n; i++)
            x[i] = vkd_half_to_float(vkd_float_to_half(x[i]));
}

vkd_tensor test_tensor_from(vkd_device *d, vkd_dtype dt, int ndim, const int64_t *shape, const float *data)
{
    vkd_tensor t;
    vkd_result r = vkd_tensor_create(d, dt, ndim, shape, &t);
    TEST_CHECK(r == VKD_OK, "tensor create: %s", vkd_result_str(r));
    if (!r && data) {
        r = vkd_tensor_upload_f32(d, &t, data);
        TEST_CHECK(r == VKD_OK, "upload: %s", vkd_result_str(r));
    }
    return t;
}

vkd_tensor test_tensor_poisoned(vkd_device *d, vkd_dtype dt, int ndim, const int64_t *shape)
{
    vkd_tensor t = test_tensor_from(d, dt, ndim, shape, NULL);
    /* NaN in both encodings: an element the op forgets to write fails the comparison */
    vkd_buffer_fill(d, &t.buf, dt == VKD_F16 ? 0x7e007e00u : 0x7fc00000u);
    return t;
}

double test_expect_close(vkd_device *d, const vkd_tensor *t, const double *ref, double max_nmse, const char *what)
{
    size_t n = (size_t)vkd_tensor_numel(t);
    float *got = malloc(n * sizeof *got);
    if (!got) {
        TEST_CHECK(0, "%s: out of memory", what);
        return INFINITY;
    }
    vkd_result r = vkd_tensor_download_f32(d, t, got);
    TEST_CHECK(r == VKD_OK, "%s: download %s", what, vkd_result_str(r));
    size_t bad;
    double tol_rel = t->dtype == VKD_F16 ? 2e-2 : 1e-3;
    double e = test_nmse(got, ref, n, tol_rel * 1e-2, tol_rel, &bad);
    int ok = e <= max_nmse;
    printf("%s %-60s nmse %.3g (max %.1g)", ok ? "ok  " : "FAIL", what, e, max_nmse);
    if (bad != SIZE_MAX)
        printf("  first mismatch at %zu: got %.8g want %.8g", bad, got[bad], ref[bad]);
    printf("\n");
    TEST_CHECK(ok, "%s: nmse %.3g > %.3g", what, e, max_nmse);
    free(got);
    return e;
}

double test_tol_for(test_tol tol, vkd_dtype dt) { return dt == VKD_F16 ? tol.f16 : tol.f32; }

vkd_result test_submit(vkd_device *d, test_record_fn rec, void *ctx, unsigned *dispatches, vkd_cmd **keep)
{
    vkd_cmd *c = NULL;
    vkd_result r = vkd_cmd_create(d, &c);
    if (!r)
        r = vkd_cmd_begin(c);
    if (!r)
        r = rec(c, ctx);
    if (dispatches)
        *dispatches = c ? vkd_cmd_dispatch_count(c) : 0;
    if (!r)
        r = vkd_cmd_end(c);
    if (!r)
        r = vkd_cmd_submit_wait(c);
    if (keep)
        *keep = c;
    else
        vkd_cmd_destroy(c);
    return r;
}

vkd_result test_op_run(vkd_device *d, test_op *op)
{
    op->dispatches = 0;
    op->cmd = NULL;
    vkd_result r = test_submit(d, op->record, op->ctx, &op->dispatches, op->keep_cmd ? &op->cmd : NULL);
    if (r == VKD_ERR_UNSUPPORTED && op->skip_unsupported)
        return r;
    TEST_CHECK(r == VKD_OK, "%s: %s", op->what, vkd_result_str(r));
    char what[256];
    snprintf(what, sizeof what, "%s (%u dispatches)", op->what, op->dispatches);
    test_expect_close(d, op->out, op->ref, test_tol_for(op->tol, op->out->dtype), what);
    return r;
}

vkd_cmd *test_cmd_open(vkd_device *d)
{
    vkd_cmd *c = NULL;
    vkd_result r = vkd_cmd_create(d, &c);
    if (!r)
        r = vkd_cmd_begin(c);
    TEST_CHECK(r == VKD_OK, "cmd: %s", vkd_result_str(r));
    return c;
}

void test_cmd_close(vkd_cmd *c)
{
    if (c)
        vkd_cmd_end(c);
    vkd_cmd_destroy(c);
}

void test_each_dtype(vkd_device *d, const void *cases, size_t n, size_t size, test_case_fn run, test_rng *rng)
{
    vkd_dtype dts[2];
    int ndt = test_dtypes(d, dts);
    for (int i = 0; i < ndt; i++)
        for (size_t k = 0; k < n; k++)
            run(d, dts[i], (const char *)cases + k * size, rng);
}

void *test_alloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "FAIL: out of host memory (%zu bytes for test data)\n", bytes);
        exit(1);
    }
    return p;
}

float *test_randn(test_rng *r, vkd_dtype dt, size_t n, double scale)
{
    float *x = test_alloc(n * sizeof *x);
    test_fill_normal(r, x, n, scale);
    test_round_to(dt, x, n);
    return x;
}

void test_free_n(void *const *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(p[i]);
}

void test_destroy_n(vkd_device *d, vkd_tensor *const *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (t[i])
            vkd_tensor_destroy(d, t[i]);
}

void test_ctx_validation_loaded(const struct vkd_ctx *ctx, int asked)
{
    if (asked && ctx && getenv("VKD_REQUIRE_VALIDATION"))
        TEST_CHECK(vkd_ctx_validation_layer(ctx) != 0,
                   "VKD_REQUIRE_VALIDATION: the validation layer did not load (vulkan-validationlayers)");
}
