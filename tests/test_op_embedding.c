/* Token + position embedding: an exact gather plus one add, so fp32 must match the
 * double reference to rounding and fp16 to one output rounding. SD shapes, a table
 * split over several binding windows (lowered binding range), out-of-range ids. */
#include <stdlib.h>

#include "harness.h"
#include "ops/embedding.h"

/* n prompts of l tokens, a [v, c] token table; bad_ids: every fifth id out of range */
typedef struct emb_case {
    int64_t n, l, v, c;
    int bad_ids;
} emb_case;

static const emb_case cases[] = {
    {2, 77, 49408, 768, 0}, /* CLIP ViT-L: 146 MB fp32 table, 2 windows */
};
/* 64 KiB bindings */
static const emb_case split_cases[] = {
    {2, 77, 1000, 64, 0}, /* 250 KiB fp32 table: several windows */
    {3, 77, 999, 48, 1},
};

/* fp32: one rounded add (~1e-15); fp16: one output rounding (~1e-7) */
static const test_tol tol = {.f32 = 1e-13, .f16 = 2e-7};

typedef struct emb_job {
    vkd_buffer ids;
    vkd_tensor tok, pos, out;
} emb_job;

static vkd_result record(vkd_cmd *c, void *ctx)
{
    emb_job *j = ctx;
    return vkd_op_embedding(c, &j->ids, 16, &j->tok, &j->pos, &j->out);
}

static void run_case(vkd_device *d, vkd_dtype dt, const void *c_, test_rng *rng)
{
    const emb_case *ec = c_;
    int64_t n = ec->n, l = ec->l, v = ec->v, c = ec->c;
    int64_t tshape[2] = {v, c}, pshape[2] = {l, c}, oshape[3] = {n, l, c};
    size_t ntok = (size_t)(n * l), nt = (size_t)(v * c), np = (size_t)(l * c);
    float *tok = test_alloc(nt * 4);
    uint32_t *ids = test_alloc(ntok * 4);
    double *ref = test_alloc(ntok * (size_t)c * 8);
    for (size_t i = 0; i < nt; i++) /* uniform: a 50M-entry table fills fast */
        tok[i] = (float)(0.04 * (test_rng_uniform(rng) - 0.5));
    test_round_to(dt, tok, nt);
    float *pos = test_randn(rng, dt, np, 0.01);
    for (size_t j = 0; j < ntok; j++) {
        /* BOS, random tokens, EOS padding, and the table's first and last rows */
        uint32_t id = j % (size_t)l == 0 ? (uint32_t)(v > 49406 ? 49406 : 0) : (uint32_t)(test_rng_u64(rng) % (uint64_t)v);
        if (j % (size_t)l == (size_t)l - 1)
            id = (uint32_t)(v - 1);
        if (j == 1)
            id = 0;
        if (ec->bad_ids && j % 5 == 2)
            id = (uint32_t)v + (uint32_t)j; /* out of range: position embedding alone */
        ids[j] = id;
        for (int64_t k = 0; k < c; k++)
            ref[j * (size_t)c + (size_t)k] =
                (id < (uint32_t)v ? (double)tok[(size_t)id * (size_t)c + (size_t)k] : 0.0) + pos[(j % (size_t)l) * (size_t)c + (size_t)k];
    }
    emb_job j = {{0}, test_tensor_from(d, dt, 2, tshape, tok), test_tensor_from(d, dt, 2, pshape, pos),
                 test_tensor_poisoned(d, dt, 3, oshape)};
    vkd_result r = vkd_buffer_create(d, 16 + ntok * 4, &j.ids);
    if (!r)
        r = vkd_buffer_upload(d, &j.ids, 16, ids, ntok * 4); /* at an offset, as a slot of a params buffer */
    TEST_CHECK(r == VKD_OK, "embedding ids: %s", vkd_result_str(r));
    char what[160];
    snprintf(what, sizeof what, "embedding_%s [%lld,%lld] table [%lld,%lld]%s", vkd_dtype_suffix(dt), (long long)n,
             (long long)l, (long long)v, (long long)c, ec->bad_ids ? " bad ids" : "");
    if (!r)
        test_op_run(d, &(test_op){.what = what, .record = record, .ctx = &j, .out = &j.out, .ref = ref, .tol = tol});
    vkd_buffer_destroy(d, &j.ids);
    TEST_DESTROY(d, &j.tok, &j.pos, &j.out);
    TEST_FREE(tok, pos, ids, ref);
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
    vkd_result r = vkd_buffer_create(d, 256, &idb);
    TEST_CHECK(r == VKD_OK, "setup: %s", vkd_result_str(r));
    vkd_cmd *cmd = test_cmd_open(d);
    TEST_CHECK(vkd_op_embedding(cmd, &idb, 0, &tt, &tp, &to) == VKD_ERR_SHAPE, "5 tokens with 4 positions accepted");
    TEST_CHECK(vkd_op_embedding(cmd, &idb, 2, &tt, &tp, &to4) == VKD_ERR_INVALID_ARG, "unaligned id offset accepted");
    TEST_CHECK(vkd_op_embedding(cmd, &idb, 248, &tt, &tp, &to4) == VKD_ERR_INVALID_ARG, "ids past the buffer accepted");
    test_cmd_close(cmd);
    vkd_buffer_destroy(d, &idb);
    TEST_DESTROY(d, &tt, &tp, &to);
}

int main(void)
{
    test_rng rng = {test_seed()};
    vkd_device *d = test_device_open(0);
    TEST_EACH_DTYPE(d, cases, run_case, &rng);
    test_embedding_rejects_bad_input(d);
    test_device_close(d);

    d = test_device_open(64 * 1024);
    TEST_EACH_DTYPE(d, split_cases, run_case, &rng);
    test_device_close(d);
    return test_finish();
}
