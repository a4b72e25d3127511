#define _POSIX_C_SOURCE 200809L
/* The Vulkan runtime: allocator accounting and limits, the on-disk pipeline cache,
 * a missing driver, timestamps. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "harness.h"
#include "ops/eltwise.h"
#include "vk/memory.h"
#include "vk/pipeline.h"

static char last_error[4096], last_warning[4096];
static void capture(vkd_log_level lvl, const char *msg, void *user)
{
    (void)user;
    if (lvl == VKD_LOG_ERROR)
        snprintf(last_error, sizeof last_error, "%s", msg);
    else if (lvl == VKD_LOG_WARN)
        snprintf(last_warning, sizeof last_warning, "%s", msg);
}

static void test_allocator_reuses_freed_ranges_and_refuses_oversized(void)
{
    vkd_device *d = test_device_open(0);
    vkd_buffer b[64];
    vkd_memory_stats s0, s1;
    vkd_memory_stats_get(d, &s0);
    for (int i = 0; i < 64; i++)
        TEST_CHECK(vkd_buffer_create(d, 1000 + 4096 * (uint64_t)i, &b[i]) == VKD_OK, "alloc %d", i);
    for (int i = 0; i < 64; i += 2)
        vkd_buffer_destroy(d, &b[i]);
    for (int i = 0; i < 64; i += 2)
        TEST_CHECK(vkd_buffer_create(d, 1000 + 4096 * (uint64_t)i, &b[i]) == VKD_OK, "realloc %d", i);
    vkd_memory_stats_get(d, &s1);
    TEST_CHECK(s1.blocks == s0.blocks + 1, "freed ranges are reused inside one block (%u blocks)", s1.blocks);
    /* overlapping allocations would corrupt each other: write distinct patterns, read back */
    for (int i = 0; i < 64; i++) {
        uint32_t v = 0x1000 + (uint32_t)i;
        vkd_buffer_fill(d, &b[i], v);
    }
    int ok = 1;
    for (int i = 0; i < 64; i++) {
        uint32_t first, last;
        vkd_buffer_download(d, &b[i], 0, &first, 4);
        vkd_buffer_download(d, &b[i], b[i].size - 4, &last, 4);
        ok &= first == 0x1000u + (uint32_t)i && last == 0x1000u + (uint32_t)i;
    }
    TEST_CHECK(ok, "sub-allocations do not overlap");
    for (int i = 0; i < 64; i++)
        vkd_buffer_destroy(d, &b[i]);
    vkd_memory_stats_get(d, &s1);
    TEST_CHECK(s1.allocated == s0.allocated, "all bytes returned (%llu vs %llu)", (unsigned long long)s1.allocated,
               (unsigned long long)s0.allocated);

    vkd_buffer huge;
    vkd_log_set(capture, NULL, VKD_LOG_WARN);
    vkd_result r = vkd_buffer_create(d, d->caps.max_alloc + 1, &huge);
    vkd_log_set(NULL, NULL, VKD_LOG_WARN);
    TEST_CHECK(r == VKD_ERR_TOO_LARGE, "an allocation over maxMemoryAllocationSize is refused (%s)", vkd_result_str(r));
    TEST_CHECK(strstr(last_error, "MiB") != NULL, "the message gives the size asked for: %s", last_error);
    /* out-of-range host access is an error, not a crash */
    vkd_buffer small;
    TEST_CHECK(vkd_buffer_create(d, 16, &small) == VKD_OK, "small alloc");
    char x[512] = {0};
    vkd_log_set(capture, NULL, VKD_LOG_WARN);
    TEST_CHECK(vkd_buffer_upload(d, &small, 0, x, sizeof x) == VKD_ERR_INVALID_ARG, "upload past the end refused");
    vkd_log_set(NULL, NULL, VKD_LOG_WARN);
    vkd_buffer_destroy(d, &small);
    vkd_buffer_destroy(d, &small); /* double destroy is harmless */

    /* a pool keeps its own blocks and shows in the device totals */
    vkd_pool *pool = NULL;
    vkd_memory_stats before, during, after;
    vkd_memory_stats_get(d, &before);
    TEST_CHECK(vkd_pool_create(d, &pool) == VKD_OK, "pool");
    vkd_buffer pb[3];
    for (int i = 0; i < 3; i++)
        TEST_CHECK(vkd_buffer_create_in(d, pool, 1 << 20, &pb[i]) == VKD_OK, "pool alloc");
    vkd_buffer_destroy(d, &pb[1]);
    vkd_buffer again;
    TEST_CHECK(vkd_buffer_create_in(d, pool, 1 << 20, &again) == VKD_OK && again.offset == pb[0].offset + (1 << 20),
               "a range freed in a pool is reused by the next allocation of that pool");
    vkd_memory_stats_get(d, &during);
    TEST_CHECK(during.allocated == before.allocated + 3 * (1 << 20), "device totals include the pool");
    vkd_pool_destroy(d, pool);
    vkd_memory_stats_get(d, &after);
    TEST_CHECK(after.allocated == before.allocated && after.reserved == before.reserved,
               "destroying the pool returns its blocks");
    test_device_close(d);
}

/* A graph frees its intermediate tensors while it is recorded; their memory must stay
 * bound to the recorded commands until the pool goes, also when a tensor is bigger than
 * the pool's blocks and got a block of its own. Fails (validation error for a destroyed
 * buffer in a submitted command buffer, wrong values) if such a block is freed early. */
static void test_pool_blocks_outlive_recorded_commands(void)
{
    vkd_device *d = test_device_open(0);
    vkd_pool *pool = NULL;
    TEST_CHECK(vkd_pool_create_sized(d, 1 << 20, &pool) == VKD_OK, "pool of 1 MiB blocks");
    enum { N = 1 << 19 }; /* 2 MiB of fp32: bigger than a block, a block of its own */
    int64_t shape[1] = {N};
    vkd_tensor in, tmp, out, later;
    TEST_CHECK(vkd_tensor_create_in(d, pool, VKD_F32, 1, shape, &in) == VKD_OK &&
                   vkd_tensor_create_in(d, pool, VKD_F32, 1, shape, &tmp) == VKD_OK &&
                   vkd_tensor_create_in(d, pool, VKD_F32, 1, shape, &out) == VKD_OK,
               "tensors");
    vkd_cmd *c = NULL;
    TEST_CHECK(vkd_cmd_create(d, &c) == VKD_OK, "cmd");
    vkd_cmd_begin(c);
    vkd_op_silu(c, &in, &tmp);
    vkd_op_scale(c, &tmp, 2.0f, 1.0f, &out);
    vkd_tensor_destroy(d, &tmp); /* its lifetime in the graph ends here */
    TEST_CHECK(vkd_tensor_create_in(d, pool, VKD_F32, 1, shape, &later) == VKD_OK, "a later tensor");
    vkd_op_silu(c, &out, &later);
    vkd_cmd_end(c);
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    for (int i = 0; i < N; i++)
        x[i] = (float)(i % 200) / 50.0f - 2.0f;
    TEST_CHECK(vkd_tensor_upload_f32(d, &in, x) == VKD_OK, "upload");
    for (int rep = 0; rep < 2; rep++) {
        TEST_CHECK(vkd_cmd_submit_wait(c) == VKD_OK, "submit %d", rep);
        TEST_CHECK(vkd_tensor_download_f32(d, &out, y) == VKD_OK, "download");
        int bad = 0;
        for (int i = 0; i < N; i++) {
            double s = x[i] / (1.0 + exp(-(double)x[i]));
            bad += fabs(y[i] - (2.0 * s + 1.0)) > 1e-5 * (1.0 + fabs(2.0 * s + 1.0));
        }
        TEST_CHECK(bad == 0, "replay %d: 2 * silu(x) + 1 through a freed intermediate: %d wrong", rep, bad);
    }
    free(x), free(y);
    vkd_cmd_destroy(c);
    vkd_tensor_destroy(d, &in), vkd_tensor_destroy(d, &out), vkd_tensor_destroy(d, &later);
    vkd_pool_destroy(d, pool);
    test_device_close(d); /* fails on any validation error */
}

static void test_pipeline_cache_is_saved_and_reloaded(void)
{
    const char *dir = test_build_path("pipeline-cache-test");
    mkdir(dir, 0755);
    for (int run = 0; run < 2; run++) {
        vkd_device_opts o;
        vkd_device_opts_init(&o);
        o.validation = true;
        o.cache_dir = dir;
        o.timestamps = true;
        vkd_device *d = NULL;
        TEST_CHECK(vkd_device_create(&o, &d) == VKD_OK, "device");
        if (!d)
            return;
        vkd_pipeline_stats ps;
        vkd_pipeline_stats_get(d, &ps);
        if (run == 0) {
            remove(d->cache_path);
            /* first run in this folder may have found an old file; removed now */
        } else {
            TEST_CHECK(ps.cache_bytes_loaded > 0, "second run loads the cache written by the first (%s)", d->cache_path);
        }
        int64_t shape[1] = {1000};
        vkd_tensor t;
        TEST_CHECK(vkd_tensor_create(d, VKD_F32, 1, shape, &t) == VKD_OK, "tensor");
        vkd_cmd *c;
        TEST_CHECK(vkd_cmd_create(d, &c) == VKD_OK, "cmd");
        vkd_cmd_begin(c);
        vkd_op_silu(c, &t, &t);
        vkd_op_scale(c, &t, 2.0f, 1.0f, &t);
        vkd_cmd_end(c);
        TEST_CHECK(vkd_cmd_submit_wait(c) == VKD_OK, "submit");
        TEST_CHECK(vkd_cmd_submit_wait(c) == VKD_OK, "a recorded command buffer replays");
        const char *const *labels;
        const double *ms;
        uint32_t n = vkd_cmd_timings(c, &labels, &ms);
        TEST_CHECK(n == 2 && !strcmp(labels[0], "silu") && ms[0] >= 0, "timestamps per dispatch (%u)", n);
        vkd_cmd_destroy(c);
        vkd_tensor_destroy(d, &t);
        char path[1024];
        snprintf(path, sizeof path, "%s", d->cache_path);
        test_device_close(d);
        struct stat st;
        TEST_CHECK(stat(path, &st) == 0 && st.st_size > 0, "cache file written: %s", path);
    }
}

/* The kernel profile's cooperative-matrix choice over made-up capabilities (no device
 * here offers either extension): KHR first where offered and built, NV otherwise, none
 * without fp16 storage, VKD_COOPMAT narrowing it, and the accumulator width of the
 * kernel taken. */
static void test_profile_coopmat_choice(void)
{
    vkd_device_caps both = {0}, nv8 = {0}, none = {0}, khr8 = {0}, nosgc = {0};
    both.coopmat_khr = 16, both.coopmat_nv = 16, both.subgroup_size_control = true;
    nv8.coopmat_nv = 8, nv8.subgroup_size_control = true;
    khr8.coopmat_khr = 8, khr8.coopmat_nv = 16, khr8.subgroup_size_control = true;
    nosgc.coopmat_khr = 16, nosgc.coopmat_nv = 8; /* KHR needs full subgroups: NV then */
    struct {
        const vkd_device_caps *c;
        bool f16, built;
        const char *env;
        bool use, khr;
        uint32_t n;
    } cases[] = {
        {&both, true, true, NULL, true, true, 16},    {&both, true, false, NULL, true, false, 16},
        {&both, true, true, "nv", true, false, 16},   {&both, true, true, "off", false, false, 0},
        {&both, false, true, NULL, false, false, 0},  {&nv8, true, true, NULL, true, false, 8},
        {&nv8, true, true, "khr", false, false, 0},   {&none, true, true, NULL, false, false, 0},
        {&khr8, true, true, NULL, true, true, 8},     {&khr8, true, true, "nv", true, false, 16},
        {&khr8, true, false, "khr", false, false, 0}, {&both, true, true, "bogus", false, false, 0},
        {&nosgc, true, true, NULL, true, false, 8},   {&nosgc, true, true, "khr", false, false, 0},
    };
    vkd_log_set(capture, NULL, VKD_LOG_WARN);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        vkd_kernel_profile p = vkd_kernel_profile_make(cases[i].c, cases[i].f16, cases[i].built, cases[i].env);
        bool use = p.coopmat != VKD_COOPMAT_NONE, khr = p.coopmat == VKD_COOPMAT_KHR;
        uint32_t cmf = p.features & (VKD_KF_COOPMAT_NV | VKD_KF_COOPMAT_KHR | VKD_KF_FP16_ARITH);
        TEST_CHECK(use == cases[i].use && khr == cases[i].khr && p.coopmat_n == cases[i].n,
                   "case %zu (env %s): use %d khr %d n %u, expected %d %d %u", i, cases[i].env ? cases[i].env : "-",
                   use, khr, p.coopmat_n, cases[i].use, cases[i].khr, cases[i].n);
        TEST_CHECK(cmf == (!use ? 0u : VKD_KF_FP16_ARITH | (khr ? VKD_KF_COOPMAT_KHR : VKD_KF_COOPMAT_NV)),
                   "case %zu: the profile offers the chosen extension's kernels only (features %#x)", i, cmf);
    }
    last_warning[0] = 0;
    vkd_kernel_profile_make(&nv8, true, true, "khr");
    TEST_CHECK(strstr(last_warning, "not offered") != NULL, "asking for what is not offered says so: %s", last_warning);
    vkd_kernel_profile_make(&nosgc, true, true, "khr");
    TEST_CHECK(strstr(last_warning, "subgroup size control") != NULL, "... and why: %s", last_warning);
    vkd_log_set(NULL, NULL, VKD_LOG_WARN);
}

/* The rest of the profile over made-up capabilities: the CPU kernels follow the device
 * type, the subgroup kernels 8-lane subgroups with shuffles and 16-byte texel windows,
 * and a kernel is usable where the profile offers every feature the manifest lists. */
static void test_profile_kernels(void)
{
    vkd_device_caps lavapipe = {0}, gpu = {0};
    lavapipe.type = VK_PHYSICAL_DEVICE_TYPE_CPU, lavapipe.subgroup_size = 8;
    lavapipe.subgroup_ops = VK_SUBGROUP_FEATURE_BASIC_BIT | VK_SUBGROUP_FEATURE_SHUFFLE_BIT |
                            VK_SUBGROUP_FEATURE_BALLOT_BIT;
    lavapipe.texel_rgba32ui = true, lavapipe.texel_align = 16, lavapipe.ssbo_align = 16;
    gpu = lavapipe;
    gpu.type = VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU, gpu.subgroup_size = 32, gpu.ssbo_align = 64;
    gpu.subgroup_size_control = true, gpu.subgroup_min = 16, gpu.subgroup_max = 64;
    vkd_kernel_profile p = vkd_kernel_profile_make(&lavapipe, true, false, NULL);
    TEST_CHECK(p.cpu && p.subgroup8 && p.coopmat == VKD_COOPMAT_NONE && p.cm_subgroup == 8 && !p.cm_subgroup_required,
               "lavapipe: CPU kernels, the subgroup kernels, no cooperative matrices");
    TEST_CHECK(vkd_kernel_usable(&p, VKD_KERNEL_MATMUL_SG, VKD_VARIANT_F16) &&
                   vkd_kernel_usable(&p, VKD_KERNEL_GROUPNORM_APPLY_TX, VKD_VARIANT_F32) &&
                   vkd_kernel_usable(&p, VKD_KERNEL_MATMUL_CMEMU, VKD_VARIANT_F16) &&
                   !vkd_kernel_usable(&p, VKD_KERNEL_MATMUL_CMEMU, VKD_VARIANT_F32) &&
                   !vkd_kernel_usable(&p, VKD_KERNEL_MATMUL_CM, VKD_VARIANT_F16),
               "lavapipe: the subgroup, texel and emulation kernels, not the NV ones");
    vkd_device_caps odd = lavapipe;
    odd.texel_align = 64; /* texel windows cannot start on any 16 bytes */
    p = vkd_kernel_profile_make(&odd, true, false, NULL);
    TEST_CHECK(p.cpu && !p.subgroup8 && !vkd_kernel_usable(&p, VKD_KERNEL_GROUPNORM_TX, VKD_VARIANT_F32),
               "a CPU device without 16-byte texel windows: no subgroup or texel kernels");
    odd = lavapipe;
    odd.subgroup_size = 4;
    TEST_CHECK(!vkd_kernel_profile_make(&odd, true, false, NULL).subgroup8, "4-lane subgroups: no subgroup kernels");
    p = vkd_kernel_profile_make(&gpu, true, false, NULL);
    TEST_CHECK(!p.cpu && !p.subgroup8 && p.cm_subgroup == 32 && p.cm_subgroup_required,
               "a GPU: its own kernels, cooperative-matrix subgroups of 32 required");
    gpu.coopmat_nv = 16;
    p = vkd_kernel_profile_make(&gpu, true, false, NULL);
    TEST_CHECK(p.coopmat == VKD_COOPMAT_NV && vkd_kernel_usable(&p, VKD_KERNEL_MATMUL_CM, VKD_VARIANT_F16) &&
                   !vkd_kernel_usable(&p, VKD_KERNEL_MATMUL_CMK, VKD_VARIANT_F16),
               "NV cooperative matrices: the *_cm kernels, not the KHR ones");
    TEST_CHECK(!p.fp16_arith, "cooperative matrices: no *_h kernels (their GEMMs multiply in fp16 already)");
    /* fp16 arithmetic (docs/fp16.md): the *_h kernels on a GPU with shaderFloat16 and fp16
     * tensors; offered, not chosen, on a CPU device (knobs.fp16_arith forces it there) */
    gpu.coopmat_nv = 0, gpu.fp16_arith = true, lavapipe.fp16_arith = true;
    p = vkd_kernel_profile_make(&gpu, true, false, NULL);
    TEST_CHECK(p.fp16_arith && vkd_kernel_usable(&p, VKD_KERNEL_MATMUL_H, VKD_VARIANT_F16) &&
                   vkd_kernel_usable(&p, VKD_KERNEL_ATTENTION_H, VKD_VARIANT_F16),
               "a GPU with shaderFloat16: the *_h kernels");
    p = vkd_kernel_profile_make(&gpu, false, false, NULL);
    TEST_CHECK(!p.fp16_arith && !(p.features & VKD_KF_FP16_ARITH), "fp32 tensors: no fp16 arithmetic");
    p = vkd_kernel_profile_make(&lavapipe, true, false, NULL);
    vkd_knobs k = {0};
    TEST_CHECK(!p.fp16_arith && (p.features & VKD_KF_FP16_ARITH) && !vkd_fp16_arith_on(&p, &k),
               "a CPU device: fp16 arithmetic offered, not taken");
    k.fp16_arith = 1;
    TEST_CHECK(vkd_fp16_arith_on(&p, &k), "... unless the knob forces it");
    p = vkd_kernel_profile_make(&gpu, true, false, NULL);
    k.fp16_arith = -1;
    TEST_CHECK(!vkd_fp16_arith_on(&p, &k), "... or forces it off on a GPU");
}

static void test_missing_driver_names_the_package(void)
{
    /* Point the loader at a driver manifest that does not exist: as on a machine with no driver. */
    setenv("VK_ICD_FILENAMES", "/nonexistent/vkdiff-test-icd.json", 1);
    setenv("VK_DRIVER_FILES", "/nonexistent/vkdiff-test-icd.json", 1);
    vkd_log_set(capture, NULL, VKD_LOG_WARN);
    vkd_device *d = NULL;
    last_error[0] = 0;
    vkd_result r = vkd_device_create(NULL, &d);
    vkd_log_set(NULL, NULL, VKD_LOG_WARN);
    TEST_CHECK(d == NULL && (r == VKD_ERR_NO_VULKAN || r == VKD_ERR_NO_DEVICE), "no device without a driver (%s)",
               vkd_result_str(r));
    TEST_CHECK(strstr(last_error, "mesa-vulkan-drivers") != NULL, "message names the package: %s", last_error);
    unsetenv("VK_ICD_FILENAMES");
    unsetenv("VK_DRIVER_FILES");
}

/* Issue 18 item 10: the validation layer is not taken on trust. A deliberately invalid
 * call (a buffer of size 0: VUID-VkBufferCreateInfo-size-00912) must be counted as an
 * error; under VKD_REQUIRE_VALIDATION (tools/test.sh) a layer that is not installed
 * fails here instead of letting every test pass with nothing checked. */
static void quiet_log(vkd_log_level l, const char *m, void *u) { (void)l, (void)m, (void)u; }

static void test_validation_layer_catches_an_invalid_call(void)
{
    vkd_device_opts o;
    vkd_device_opts_init(&o);
    o.validation = true;
    o.require_validation = getenv("VKD_REQUIRE_VALIDATION") != NULL;
    vkd_device *d = NULL;
    vkd_result r = vkd_device_create(&o, &d);
    TEST_CHECK(r == VKD_OK, "device with validation: %s", vkd_result_str(r));
    if (r)
        return;
    if (!d->validation_layer) {
        printf("skip: the validation layer is not installed (tools/test.sh requires it)\n");
        vkd_device_destroy(d);
        return;
    }
    uint32_t before = d->validation_errors;
    vkd_log_set(quiet_log, NULL, VKD_LOG_ERROR); /* the error below is expected: not printed */
    VkBufferCreateInfo bi = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = 0,
                             .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT, .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    VkBuffer b = VK_NULL_HANDLE;
    VkResult vr = vkCreateBuffer(d->dev, &bi, NULL, &b);
    vkd_log_set(NULL, NULL, VKD_LOG_WARN);
    if (vr == VK_SUCCESS && b)
        vkDestroyBuffer(d->dev, b, NULL);
    TEST_CHECK(d->validation_errors > before, "an invalid vkCreateBuffer (size 0) is caught by the layer (%u errors)",
               d->validation_errors - before);
    vkd_device_destroy(d);
}

int main(void)
{
    test_validation_layer_catches_an_invalid_call();
    test_allocator_reuses_freed_ranges_and_refuses_oversized();
    test_pool_blocks_outlive_recorded_commands();
    test_pipeline_cache_is_saved_and_reloaded();
    test_profile_coopmat_choice();
    test_profile_kernels();
    test_missing_driver_names_the_package(); /* last: it changes the loader's environment */
    return test_finish();
}
