/* Helpers every stage uses (pipe.h). */
#include "pipeline/pipe.h"

#include <math.h>

#include "common/clock.h"
#include "vk/cmd.h"

size_t vkd_count_non_finite(const float *v, size_t n)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += !isfinite(v[i]);
    return bad;
}

const char vkd_fp32_hint[] = "the weights may hold NaN/Inf (vkdiff info scans them), or fp16 overflowed "
                             "(try --precision fp32)";

double vkd_now_ms(void) { return vkd_clock_ms(); }

vkd_result vkd_copy_now(vkd_device *d, const vkd_tensor *src, const vkd_tensor *dst)
{
    if (vkd_tensor_numel(src) != vkd_tensor_numel(dst) || src->dtype != dst->dtype)
        return VKD_ERR_INTERNAL;
    vkd_cmd *c = NULL;
    vkd_result r = vkd_cmd_create(d, &c);
    if (!r)
        r = vkd_cmd_begin(c);
    if (!r)
        r = vkd_cmd_copy(c, &src->buf, src->offset, &dst->buf, dst->offset,
                         (VkDeviceSize)vkd_tensor_numel(dst) * vkd_dtype_size(dst->dtype));
    if (!r)
        r = vkd_cmd_end(c);
    if (!r)
        r = vkd_cmd_submit_wait(c);
    vkd_cmd_destroy(c);
    return r;
}
