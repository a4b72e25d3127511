/* Quantized blocks to fp16 / fp32 (shaders/dequant.comp). */
#include "ops/dequant.h"

#include "common/log.h"
#include "push_dequant.h"

#define LOCAL 64

static const vkd_dequant_info qtypes[] = {
    {VKD_QT_Q4_0, "q4_0", 32, 18}, {VKD_QT_Q4_1, "q4_1", 32, 20}, {VKD_QT_Q5_0, "q5_0", 32, 22},
    {VKD_QT_Q5_1, "q5_1", 32, 24}, {VKD_QT_Q8_0, "q8_0", 32, 34}, {VKD_QT_Q2_K, "q2_K", 256, 84},
    {VKD_QT_Q3_K, "q3_K", 256, 110}, {VKD_QT_Q4_K, "q4_K", 256, 144}, {VKD_QT_Q5_K, "q5_K", 256, 176},
    {VKD_QT_Q6_K, "q6_K", 256, 210},
};

const vkd_dequant_info *vkd_dequant_info_of(uint32_t ggml_type)
{
    for (size_t i = 0; i < sizeof qtypes / sizeof qtypes[0]; i++)
        if (qtypes[i].type == ggml_type)
            return &qtypes[i];
    return NULL;
}

uint64_t vkd_dequant_bytes(const vkd_dequant_info *qt, int64_t n)
{
    return (uint64_t)(n / qt->block_elems) * qt->block_bytes;
}

int64_t vkd_dequant_words(const vkd_dequant_info *qt, int64_t n)
{
    return (int64_t)((vkd_dequant_bytes(qt, n) + 3) / 4) + VKD_DEQUANT_PAD_WORDS;
}

vkd_result vkd_op_dequant(vkd_cmd *c, const vkd_tensor *blocks, uint32_t ggml_type, int64_t taps, int64_t cin,
                          vkd_tensor *out)
{
    const vkd_dequant_info *qt = vkd_dequant_info_of(ggml_type);
    int64_t n = vkd_tensor_numel(out);
    if (!qt) {
        VKD_ERROR("dequant: ggml type %u is not one the kernel reads", ggml_type);
        return VKD_ERR_UNSUPPORTED;
    }
    if (blocks->dtype != VKD_F32 || n % qt->block_elems || vkd_tensor_numel(blocks) < vkd_dequant_words(qt, n))
        return vkd_op_shape_error("dequant", "blocks must be an F32 word array holding the output's blocks", blocks);
    int64_t row = out->ndim > 1 ? n / out->shape[0] : n;
    if (taps < 1 || cin < 1 || (taps > 1 && taps * cin != row))
        return vkd_op_shape_error("dequant", "conv re-layout needs rows of kh * kw * Cin elements", out);
    int64_t words = vkd_dequant_words(qt, n);
    const vkd_pipeline *p;
    uint32_t spec[3] = {LOCAL, 1, 1};
    vkd_result r = vkd_op_pipeline(c, VKD_KERNEL_DEQUANT, out->dtype, spec, 3, &p);
    if (r)
        return r;
    /* one window each: a weight is far below a binding (the largest SD / SDXL weight,
     * 2560 x 1280 x 3 x 3, is 59 MB in fp16) */
    vkd_push_dequant pc = {.groups = (uint32_t)(n / 32), .type = ggml_type, .block_bytes = qt->block_bytes,
                           .taps = (uint32_t)taps, .cin = (uint32_t)cin, .row = (uint32_t)row};
    vkd_binding b[2];
    if ((r = vkd_op_bind(c, blocks, 0, words, &b[0], &pc.q_off)) || (r = vkd_op_bind(c, out, 0, n, &b[1], &pc.o_off)))
        return r;
    uint32_t gx, gy;
    vkd_op_grid_1d((uint64_t)(n / 32), LOCAL, &gx, &gy);
    return vkd_cmd_dispatch(c, p, b, 2, &pc, sizeof pc, gx, gy, 1, "dequant");
}
