/* Token + position embedding: an exact gather plus one add, so fp32 must match the
 * double reference to rounding and fp16 to one output rounding. SD shapes, a table
 * split over several binding windows (lowered binding range), out-of-range ids. */
#include <stdlib.h>

#include "harness.h"
#include "ops/embedding.h"

static void run_case(vkd_device *d, vkd_dtype dt, int64_t n, int64_t l, int64_t v, int64_t c, int bad_ids,
                     test_rng *rng)
{
    int64_t tshape[2] = {v, c}, pshape[2] = {l, c}, oshape[3] = {n, l, c};
    size_t ntok = (size_t)(n * l), nt = (size_t)(v * c), np = (size_t)(l * c);
    float *tok = malloc(nt * 4), *pos = malloc(np * 4);
    uint32_t *ids = malloc(ntok * 4);
    double *ref = malloc(ntok * (size_t)c * 8);
    for (size_t i = 0; i < nt; i++) /* uniform: a 50M-entry table fills fast */
        tok[i] = (float)(0.04 * (test_rng_uniform(rng) - 0.5));
    test_fill_normal(rng, pos, np, 0.01);
    test_round_to(dt, tok, nt);
    test_round_to(dt, pos, np);
    for (size_t j = 0; j < ntok; j++) {
        /* BOS, random tokens, EOS padding, and the table's first and last rows */
        uint32_t id = j % (size_t)l == 0 ? (uint32_t)(v > 49406 ? 49406 : 0) : (uint32_t)(test_rng_u64(rng) % (uint64_t)v);
        if (j % (size_t)l == (size_t)l - 1)
            id = (uint32_t)(v - 1);
        if (j == 1)
            id = 0;
        if (bad_ids && j % 5 == 2)
            id = (uint32_t)v + (uint32_t)j; /* out of range: position embedding alone */
        ids[j] = id;
        for (int64_t k = 0; k < c; k++)
            ref[j * (size_t)c + (size_t)k] =
                (id < (uint32_t)v ? (double)tok[(size_t)id * (size_t)c + (size_t)k] : 0.0) + pos[(j % (size_t)l) * (size_t)c + (size_t)k];
    }
    vkd_tensor tt = test_tensor_from(d, dt, 2, tshape, tok);
    vkd_tensor tp = test_tensor_from(d, dt, 2, pshape, pos);
    vkd_tensor to = test_tensor_poisoned(d, dt, 3, oshape);
    vkd_buffer idb = {0};
    vkd_cmd *cmd = NULL;
    vkd_result r = vkd_buffer_create(d, 16 + ntok * 4, &idb);
    if (!r)
        r = vkd_buffer_upload(d, &idb, 16, ids, ntok * 4); /* at an offset, as a slot of a params buffer */
    if (!r)
        r = vkd_cmd_create(d, &cmd);
    if (!r)
        r = vkd_cmd_begin(cmd);
    if (!r)
        r = vkd_op_embedding(cmd, &idb, 16, &tt, &tp, &to);
    if (!r)
        r = vkd_cmd_end(cmd);
    if (!r)
        r = vkd_cmd_submit_wait(cmd);
    TEST_CHECK(r == VKD_OK, "embedding: %s", vkd_result_str(r));
    char what[160];
    snprintf(what, sizeof what, "embedding_%s [%lld,%lld] table [%lld,%lld]%s (%u dispatches)", vkd_dtype_suffix(dt),
             (long long)n, (long long)l, (long long)v, (long long)c, bad_ids ? " bad ids" : "",
             cmd ? vkd_cmd_dispatch_count(cmd) : 0);
    /* fp32: one rounded add (~1e-15); fp16: one output rounding (~1e-7) */
    test_expect_close(d, &to, ref, dt == VKD_F16 ? 2e-7 : 1e-13, what);
    vkd_cmd_destroy(cmd);
    vkd_buffer_destroy(d, &idb);
    vkd_tensor_destroy(d, &tt);
    vkd_tensor_destroy(d, &tp);
    vkd_tensor_destroy(d, &to);
    free(tok);
    free(pos);
    free(ids);
    free(ref);
}

static void test_embedding_rejects_bad_input(vkd_device *d)
{
    int64_t tshape[2] = {100, 8}, pshape[2] = {4, 8}, oshape[3] = {1, 5, 8};
    vkd_tensor tt = test_tensor_from(d, VKD_F32, 2, tshape, NULL);
    vkd_tensor tp = test_tensor_from(d, VKD_F32, 2, pshape, NULL);
    vkd_tensor to = test_tensor_from(d, VKD_F32, 3, oshape, NULL);
    vkd_tensor to4 = vkd_tensor_rows(&to, 0, 1);
    to4.shape[1] = 4;
    vkd_buffer idb = {0};
    vkd_cmd *cmd = NULL;
    vkd_result r = vkd_buffer_create(d, 256, &idb);
    if (!r)
        r = vkd_cmd_create(d, &cmd);
    if (!r)
        r = vkd_cmd_begin(cmd);
    TEST_CHECK(r == VKD_OK, "setup: %s", vkd_result_str(r));
    TEST_CHECK(vkd_op_embedding(cmd, &idb, 0, &tt, &tp, &to) == VKD_ERR_SHAPE, "5 tokens with 4 positions accepted");
    TEST_CHECK(vkd_op_embedding(cmd, &idb, 2, &tt, &tp, &to4) == VKD_ERR_INVALID_ARG, "unaligned id offset accepted");
    TEST_CHECK(vkd_op_embedding(cmd, &idb, 248, &tt, &tp, &to4) == VKD_ERR_INVALID_ARG, "ids past the buffer accepted");
    vkd_cmd_end(cmd);
    vkd_cmd_destroy(cmd);
    vkd_buffer_destroy(d, &idb);
    vkd_tensor_destroy(d, &tt);
    vkd_tensor_destroy(d, &tp);
    vkd_tensor_destroy(d, &to);
}

int main(void)
{
    test_rng rng = {test_seed()};
    vkd_device *d = test_device_open(0);
    vkd_dtype dts[2];
    int ndt = test_dtypes(d, dts);
    for (int i = 0; i < ndt; i++)
        run_case(d, dts[i], 2, 77, 49408, 768, 0, &rng);  /* CLIP ViT-L: 146 MB fp32 table, 2 windows */
    test_embedding_rejects_bad_input(d);
    test_device_close(d);

    d = test_device_open(64 * 1024);
    ndt = test_dtypes(d, dts);
    for (int i = 0; i < ndt; i++) {
        run_case(d, dts[i], 2, 77, 1000, 64, 0, &rng);    /* 250 KiB fp32 table: several windows */
        run_case(d, dts[i], 3, 77, 999, 48, 1, &rng);
    }
    test_device_close(d);
    return test_finish();
}
