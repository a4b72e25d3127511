/* Device limits the kernels must live within (issue 26): the shared memory a
 * specialized kernel declares (vk/spirv_shared.h) against formulas from its source,
 * every embedded kernel sizable, and a kernel past a lowered limit refused at pipeline
 * creation by name -- as the emulated phone GPU (VKD_EMULATE=mobile) lowers them. */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "harness.h"
#include "vk/kernel.h"
#include "vk/pipeline.h"
#include "vk/spirv_shared.h"

static char last_error[4096];
static void capture(vkd_log_level lvl, const char *msg, void *user)
{
    (void)user;
    if (lvl == VKD_LOG_ERROR)
        snprintf(last_error, sizeof last_error, "%s", msg);
}

static uint64_t shared_of(vkd_kernel k, uint32_t variant, const uint32_t *spec, uint32_t n_spec)
{
    uint64_t bytes = 0;
    vkd_result r = vkd_spirv_shared_bytes(vkd_kernel_table[k].spirv[variant],
                                          *vkd_kernel_table[k].spirv_bytes[variant] / 4, spec, n_spec, &bytes);
    TEST_CHECK(r == VKD_OK, "%s: shared memory sized (%s)", vkd_kernel_table[k].name, vkd_result_str(r));
    return bytes;
}

/* Every kernel of this build, with its default specialization: none uses a construct
 * the reader cannot size (it refuses those, and a pipeline would then not be made). */
static void test_every_kernel_is_sized(void)
{
    int n = 0;
    for (int k = 0; k < VKD_KERNEL_COUNT; k++)
        for (uint32_t v = 0; v < VKD_VARIANTS; v++)
            if (vkd_kernel_built((vkd_kernel)k, v)) {
                shared_of((vkd_kernel)k, v, NULL, 0);
                n++;
            }
    printf("  %d kernel modules sized\n", n);
}

/* The sizes against the declarations in the shaders, with their specialization. */
static void test_sizes_match_the_sources(void)
{
    uint32_t variant = VKD_VARIANT_F32;
    /* gemm.comp family 0: As[BK * (BM + 1)], Bs[BK * (BN + 1)], Shift[LNFOLD ? BM : 1], floats */
    for (uint32_t lnfold = 0; lnfold < 2; lnfold++) {
        uint32_t bm = 64, bn = 32, bk = 8;
        uint32_t spec[11] = {64, 1, 1, bm, bn, bk, 4, 4, 0, 0, lnfold};
        uint64_t want = 4ull * (bk * (bm + 1) + bk * (bn + 1) + (lnfold ? bm : 1));
        uint64_t got = shared_of(VKD_KERNEL_MATMUL, variant, spec, 11);
        TEST_CHECK(got == want, "matmul tiled %ux%ux%u lnfold %u: %llu bytes, the source says %llu", bm, bn, bk,
                   lnfold, (unsigned long long)got, (unsigned long long)want);
    }
    /* the direct family declares none */
    uint32_t dspec[9] = {256, 1, 1, 256, 8, 1, 8, 8, 1};
    TEST_CHECK(shared_of(VKD_KERNEL_MATMUL_DIRECT, variant, dspec, 9) == 0, "matmul_direct: no shared memory");
    /* attention.comp: kvs[BC * KD] + os[R * local_size_x * (DV + 1)], floats */
    uint32_t bc = 16, kd = 32, dv = 40, r = 2, wg = 32;
    uint32_t aspec[9] = {wg, 1, 1, bc, kd, dv, 1, r, 8};
    uint64_t want = 4ull * (bc * kd + r * wg * (dv + 1));
    uint64_t got = shared_of(VKD_KERNEL_ATTENTION, variant, aspec, 9);
    TEST_CHECK(got == want, "attention BC %u KD %u DV %u R %u x %u: %llu bytes, the source says %llu", bc, kd, dv, r,
               wg, (unsigned long long)got, (unsigned long long)want);
    /* layer norm: sh[gl_WorkGroupSize.x] floats: follows the workgroup size */
    uint32_t lspec[3] = {128, 1, 1};
    got = shared_of(VKD_KERNEL_LAYERNORM, variant, lspec, 3);
    TEST_CHECK(got == 4 * 128, "layernorm at 128 invocations: %llu bytes, the source says 512", (unsigned long long)got);
}

/* A damaged module is refused, not read past its end. */
static void test_damaged_module_refused(void)
{
    const uint32_t *code = vkd_kernel_table[VKD_KERNEL_MATMUL].spirv[VKD_VARIANT_F32];
    size_t words = *vkd_kernel_table[VKD_KERNEL_MATMUL].spirv_bytes[VKD_VARIANT_F32] / 4;
    uint32_t *bad = test_alloc(words * 4);
    memcpy(bad, code, words * 4);
    uint64_t bytes;
    vkd_log_set(capture, NULL, VKD_LOG_ERROR);
    bad[5] = 0xffff0000u | (bad[5] & 0xffffu); /* the first instruction's length runs off the end */
    TEST_CHECK(vkd_spirv_shared_bytes(bad, words, NULL, 0, &bytes) == VKD_ERR_INTERNAL, "an overlong instruction");
    bad[0] = 0;
    TEST_CHECK(vkd_spirv_shared_bytes(bad, words, NULL, 0, &bytes) == VKD_ERR_INTERNAL, "a bad magic number");
    TEST_CHECK(vkd_spirv_shared_bytes(code, 3, NULL, 0, &bytes) == VKD_ERR_INTERNAL, "a truncated header");
    vkd_log_set(NULL, NULL, VKD_LOG_WARN);
    free(bad);
}

/* Pipeline creation holds a kernel to the device's shared memory: lowered to 16 KiB (a
 * phone's), a tiled GEMM staging 16.5 KB is refused by name, one under it is made. */
static void test_pipeline_refuses_past_the_limit(void)
{
    vkd_device *d = test_device_open(0);
    uint32_t saved = d->caps.max_shared;
    d->caps.max_shared = 16384;
    uint32_t big[11] = {256, 1, 1, 128, 128, 16, 8, 8, 0, 0, 0};   /* 4 * (16 * 129 * 2 + 1) = 16516 */
    uint32_t small[11] = {256, 1, 1, 128, 128, 8, 8, 8, 0, 0, 0};  /* 8260 */
    const vkd_pipeline *p = NULL;
    last_error[0] = 0;
    vkd_log_set(capture, NULL, VKD_LOG_ERROR);
    vkd_result r = vkd_pipeline_get(d, VKD_KERNEL_MATMUL, VKD_VARIANT_F32, big, 11, 0, &p);
    vkd_log_set(NULL, NULL, VKD_LOG_WARN);
    TEST_CHECK(r != VKD_OK, "a kernel over the shared-memory limit is refused");
    TEST_CHECK(strstr(last_error, "matmul") && strstr(last_error, "16516") && strstr(last_error, "16384"),
               "the message names the kernel and both sizes: %s", last_error);
    TEST_CHECK(vkd_pipeline_get(d, VKD_KERNEL_MATMUL, VKD_VARIANT_F32, small, 11, 0, &p) == VKD_OK,
               "the same kernel under it is made");
    d->caps.max_shared = saved;
    test_device_close(d);
}

/* VKD_EMULATE=mobile lowers the limits and gives a GPU's kernels (the suite's second pass
 * runs every test so); anything else named is refused. */
static void test_emulated_phone(void)
{
    vkd_device_opts o;
    vkd_device_opts_init(&o);
    o.emulate = "mobile";
    vkd_device *d = NULL;
    TEST_CHECK(vkd_device_create(&o, &d) == VKD_OK, "device with a phone's limits");
    if (d) {
        TEST_CHECK(d->caps.max_shared <= 16384 && d->caps.max_wg_invocations <= 256 &&
                       d->caps.max_alloc <= (1ull << 30) && d->caps.max_binding <= (128ull << 20),
                   "limits lowered: %u B shared, %u invocations, %llu B allocations, %llu B bindings",
                   d->caps.max_shared, d->caps.max_wg_invocations, (unsigned long long)d->caps.max_alloc,
                   (unsigned long long)d->caps.max_binding);
        TEST_CHECK(!d->profile.cpu, "the GPU kernels are taken");
        vkd_device_destroy(d);
    }
    o.emulate = "toaster";
    d = NULL;
    vkd_log_set(capture, NULL, VKD_LOG_ERROR);
    vkd_result r = vkd_device_create(&o, &d);
    vkd_log_set(NULL, NULL, VKD_LOG_WARN);
    TEST_CHECK(r == VKD_ERR_INVALID_ARG && !d && strstr(last_error, "toaster"), "an unknown emulation is refused: %s",
               last_error);
}

int main(void)
{
    test_every_kernel_is_sized();
    test_sizes_match_the_sources();
    test_damaged_module_refused();
    test_pipeline_refuses_past_the_limit();
    test_emulated_phone();
    return test_finish();
}
