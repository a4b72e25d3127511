/* SDXL's vector conditioning: see sdxl_cond.h. */
#include "models/sdxl_cond.h"

#include <math.h>
#include <string.h>

void vkd_sdxl_size_embedding(int v, float *out)
{
    /* torch's order of fp32 operations in sgm/modules/diffusionmodules/util.py
     * timestep_embedding: -math.log(max_period) * arange(half, fp32) / half, exp, then
     * timesteps.float() * freqs; cos and sin of the fp32 argument (rounded once) */
    const int half = VKD_SDXL_SIZE_EMB / 2;
    const float nl = (float)-log(10000.0);
    for (int i = 0; i < half; i++) {
        float e = nl * (float)i;
        e = e / (float)half;
        float freq = (float)exp((double)e);
        float arg = (float)v * freq;
        out[i] = (float)cos((double)arg);
        out[half + i] = (float)sin((double)arg);
    }
}

void vkd_sdxl_vector(const float *pooled, int pooled_dim, const vkd_sdxl_sizes *sz, float *y)
{
    memcpy(y, pooled, (size_t)pooled_dim * sizeof *y);
    const int v[VKD_SDXL_SIZE_NUMBERS] = {sz->orig_h, sz->orig_w, sz->crop_top, sz->crop_left, sz->target_h,
                                          sz->target_w};
    for (int k = 0; k < VKD_SDXL_SIZE_NUMBERS; k++)
        vkd_sdxl_size_embedding(v[k], y + pooled_dim + k * VKD_SDXL_SIZE_EMB);
}
