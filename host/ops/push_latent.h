/* The denoise stage's latent conversions (shaders/latent.comp, host/ops/latent.c). */
#include "push.h"

#define VKD_LATENT_IN 0     /* x NCHW fp32 [C, hw] * s[0] -> out [B, hw, C] (T), repeated per batch item */
#define VKD_LATENT_GUIDE 1  /* out [B, hw, C] (T) -> eps NCHW fp32 [C, hw]: u + s[1] * (c - u) (B 2) or c (B 1) */

VKD_PUSH_BEGIN(vkd_push_latent)
    pc_uint mode;    /* VKD_LATENT_* */
    pc_uint hw;      /* latent pixels */
    pc_uint ch;      /* latent channels */
    pc_uint batch;   /* 1 or 2 */
    pc_uint f_off;   /* element offset of the fp32 NCHW side, of the scalars, of the T side */
    pc_uint s_off;
    pc_uint t_off;
    pc_uint scaled;  /* LATENT_IN: channels k < scaled are multiplied by s[0], the rest (an
                        inpainting UNet's mask and masked-image latent) copied unscaled */
VKD_PUSH_END(vkd_push_latent)
