/* The dequant kernel (shaders/dequant.comp) against io/quant.c's dequantize_row (ggml's
 * dequantize_row_* in C, itself checked byte for byte against an independent NumPy
 * rendering in test_quant), for every block type the kernel reads; blocks made by
 * io/quant.c's quantizers where it has one, else random blocks with finite scales. Also
 * the conv re-layout ([Cout, Cin, kh, kw] rows written as [Cout, kh, kw, Cin]). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/half.h"
#include "harness.h"
#include "io/quant.h"
#include "ops/dequant.h"

static const struct {
    uint32_t ggml;
    vkd_qtype q;
} types[] = {
    {2, VKD_Q4_0}, {3, VKD_Q4_1}, {6, VKD_Q5_0}, {7, VKD_Q5_1}, {8, VKD_Q8_0},
    {10, VKD_Q2_K}, {11, VKD_Q3_K}, {12, VKD_Q4_K}, {13, VKD_Q5_K}, {14, VKD_Q6_K},
};

typedef struct job {
    vkd_tensor blocks, out;
    uint32_t type;
    int64_t taps, cin;
} job;

static vkd_result record(vkd_cmd *c, void *ctx)
{
    job *j = ctx;
    return vkd_op_dequant(c, &j->blocks, j->type, j->taps, j->cin, &j->out);
}

/* random blocks for the types io/quant.c only reads: random bytes, then every fp16 scale
 * (d, and dmin where the type has one) set to a finite value */
static void random_blocks(test_rng *rng, vkd_qtype q, uint8_t *b, size_t nblocks, size_t bb)
{
    for (size_t i = 0; i < nblocks * bb; i++)
        b[i] = (uint8_t)test_rng_u64(rng);
    for (size_t k = 0; k < nblocks; k++) {
        uint8_t *blk = b + k * bb;
        uint16_t d = vkd_float_to_half((float)(test_rng_normal(rng) * 0.01));
        uint16_t m = vkd_float_to_half((float)(test_rng_normal(rng) * 0.01));
        size_t at_d = q == VKD_Q2_K ? 80 : q == VKD_Q3_K ? 108 : 0;
        memcpy(blk + at_d, &d, 2);
        if (q == VKD_Q2_K)
            memcpy(blk + 82, &m, 2);
        if (q == VKD_Q5_K)
            memcpy(blk + 2, &m, 2);
    }
}

static void run_case(vkd_device *d, vkd_dtype dt, int t, int64_t rows, int64_t cin, int64_t taps, test_rng *rng)
{
    vkd_qtype q = types[t].q;
    int64_t row = cin * taps, n = rows * row;
    size_t blk = vkd_qtype_block(q), bb = vkd_qtype_block_bytes(q), nblocks = (size_t)n / blk;
    size_t words = (nblocks * bb + 3) / 4 + VKD_DEQUANT_PAD_WORDS;
    uint8_t *b = test_alloc(words * 4);
    memset(b, 0, words * 4);
    float *x = test_alloc((size_t)n * 4), *host = test_alloc((size_t)n * 4);
    double *ref = test_alloc((size_t)n * 8);
    if (vkd_qtype_can_quantize(q)) {
        test_fill_normal(rng, x, (size_t)n, 0.05);
        TEST_CHECK(vkd_quantize_row(q, x, b, (size_t)n) == 0, "quantize %s", vkd_qtype_name(q));
    } else {
        random_blocks(rng, q, b, nblocks, bb);
    }
    TEST_CHECK(vkd_dequantize_row(q, b, host, (size_t)n) == 0, "dequantize %s on the host", vkd_qtype_name(q));
    /* the reference in the output's layout and precision */
    for (int64_t r = 0; r < rows; r++)
        for (int64_t e = 0; e < row; e++) {
            int64_t to = taps > 1 ? r * row + (e % taps) * cin + e / taps : r * row + e;
            float v = host[r * row + e];
            ref[to] = dt == VKD_F16 ? vkd_half_to_float(vkd_float_to_half(v)) : v;
        }
    int64_t wshape[1] = {(int64_t)words};
    job j = {.type = types[t].ggml, .taps = taps, .cin = cin};
    j.blocks = test_tensor_from(d, VKD_F32, 1, wshape, (const float *)b); /* bits as they are */
    int64_t oshape[4] = {rows, taps > 1 ? 3 : row, taps > 1 ? taps / 3 : 1, taps > 1 ? cin : 1};
    j.out = test_tensor_poisoned(d, dt, taps > 1 ? 4 : 2, oshape);
    unsigned nd = 0;
    vkd_result r = test_submit(d, record, &j, &nd, NULL);
    char what[160];
    snprintf(what, sizeof what, "dequant %s -> %s, %lld rows of %lld%s", vkd_qtype_name(q), vkd_dtype_suffix(dt),
             (long long)rows, (long long)row, taps > 1 ? " (conv re-laid)" : "");
    TEST_CHECK(r == VKD_OK && nd == 1, "%s: %s, %u dispatches", what, vkd_result_str(r), nd);
    /* ggml's float arithmetic, op for op: fp32 agrees to the last bits (a compiler may fuse
     * d * q - m into one rounding), fp16 to the rounding of that */
    test_expect_close(d, &j.out, ref, dt == VKD_F16 ? 1e-7 : 1e-12, what);
    TEST_DESTROY(d, &j.blocks, &j.out);
    TEST_FREE(b, x, host, ref);
}

int main(void)
{
    test_rng rng = {test_seed()};
    vkd_device *d = test_device_open(0);
    vkd_dtype dts[2];
    int ndt = test_dtypes(d, dts);
    for (int k = 0; k < ndt; k++)
        for (int t = 0; t < (int)(sizeof types / sizeof types[0]); t++) {
            int kq = vkd_qtype_block(types[t].q) == 256;
            /* a linear weight; then a 3x3 conv kernel, Cin a multiple of the block */
            run_case(d, dts[k], t, 37, kq ? 512 : 96, 1, &rng);
            run_case(d, dts[k], t, 5, kq ? 256 : 64, 9, &rng);
        }
    /* what the op refuses */
    {
        vkd_tensor w = test_tensor_poisoned(d, VKD_F32, 1, (int64_t[]){9}), o = test_tensor_poisoned(d, VKD_F32, 1,
                                                                                                 (int64_t[]){64});
        job j = {.blocks = w, .out = o, .type = 8, .taps = 1, .cin = 1};
        TEST_CHECK(test_submit(d, record, &j, NULL, NULL) == VKD_ERR_SHAPE, "too few words for the blocks refused");
        j.type = 16; /* IQ2_XXS */
        TEST_CHECK(test_submit(d, record, &j, NULL, NULL) == VKD_ERR_UNSUPPORTED, "a type the kernel cannot read refused");
        TEST_DESTROY(d, &w, &o);
    }
    test_device_close(d);
    return test_finish();
}
