/* The KL-f8 VAE decoder and encoder (CompVis ldm/modules/diffusionmodules/model.py Decoder),
 * recorded into a vkd_graph. Blocks named after "first_stage_model." keys. */
#ifndef VKD_MODELS_VAE_H
#define VKD_MODELS_VAE_H

#include "models/detect.h"
#include "models/graph.h"

/* z: [N, h*w, z_channels] latent already divided by the scale factor (0.18215 SD1/2);
 * *out: [N, (8h)*(8w), 3] image in [-1, 1] (not clamped), from g's pool. */
vkd_result vkd_vae_decode_record(vkd_graph *g, const vkd_vae_config *cfg, const vkd_tensor *z, int64_t h, int64_t w,
                                 vkd_tensor *out);

/* The two halves of the above: the latent-resolution part (post_quant_conv, conv_in,
 * the middle ResBlocks and attention) -> mid [N, h*w, C_mid], and the upsampling
 * levels, norm_out and conv_out from mid. The tiled decode runs the first on the
 * whole latent (its attention sees everything) and tiles only the second. */
vkd_result vkd_vae_decode_mid_record(vkd_graph *g, const vkd_vae_config *cfg, const vkd_tensor *z, int64_t h,
                                     int64_t w, vkd_tensor *mid);
/* free_mid: mid is freed (back to g's pool) once read */
vkd_result vkd_vae_decode_up_record(vkd_graph *g, const vkd_vae_config *cfg, vkd_tensor *mid, bool free_mid,
                                    int64_t h, int64_t w, vkd_tensor *out);

/* The upsampling part as segments that each start at a group norm, for a tiled decode
 * whose norms use the whole image's statistics (host/pipeline/vae_decode.c): every
 * tile runs segment s, then the statistics of what they produced are merged, then
 * segment s + 1. In order: for each level from the deepest, for each ResnetBlock,
 * RESNET_A (norm1 on x: conv1(SiLU(norm1(x))) -> b) and RESNET_B (norm2 on b:
 * conv2(SiLU(norm2(b))) + shortcut(x) -> x, then the level's Upsample when `upsample`);
 * finally OUT (norm_out on x: conv_out(SiLU(norm_out(x))) -> image [1, HW, 3]). */
enum { VKD_VAE_SEG_RESNET_A, VKD_VAE_SEG_RESNET_B, VKD_VAE_SEG_OUT, VKD_VAE_SEG_IN };
typedef struct vkd_vae_seg {
    int kind;
    int level, block;
    bool upsample;      /* RESNET_B: the output is 2x larger than the input */
    bool downsample;    /* RESNET_B (encoder): the output is 2x smaller */
} vkd_vae_seg;

/* The segments into segs[0 .. cap-1]; returns how many there are. */
int vkd_vae_up_segments(const vkd_vae_config *cfg, vkd_vae_seg *segs, int cap);
/* Record segment s on x [1, h*w, C] (and for RESNET_B, b, whose memory it gives back
 * to the pool once read; *b stays valid for uploads before each replay);
 * *out: b for RESNET_A, the next x for RESNET_B (2h x 2w with upsample), the image
 * for OUT. The segment's one group norm is the first op. */
vkd_result vkd_vae_up_segment_record(vkd_graph *g, const vkd_vae_config *cfg, const vkd_vae_seg *s, vkd_tensor *x,
                                     vkd_tensor *b, int64_t h, int64_t w, vkd_tensor *out);

/* The encoder: img [N, H*W, 3] in [-1, 1] (H, W multiples of 2^(levels-1)) ->
 * *out [N, (H/8)*(W/8), 2 z_channels]: the posterior's moments, mean then logvar per
 * pixel (quant_conv applied; not clamped, not scaled). */
vkd_result vkd_vae_encode_record(vkd_graph *g, const vkd_vae_config *cfg, const vkd_tensor *img, int64_t h, int64_t w,
                                 vkd_tensor *out);

/* The encoder in two parts, for a tiled encode (host/pipeline/vae_encode.c): the
 * high-resolution part as segments (below), run per tile, and the rest on the whole
 * latent-size map x [1, h*w, C] (the last level's ResnetBlocks, the middle with its
 * attention, norm_out, conv_out, quant_conv) -> *out as vkd_vae_encode_record's. x is
 * freed (back to g's pool) once read; *x stays valid for an upload before the run. */
vkd_result vkd_vae_encode_low_record(vkd_graph *g, const vkd_vae_config *cfg, vkd_tensor *x, int64_t h, int64_t w,
                                     vkd_tensor *out);
/* The encoder's high-resolution part as segments, each but the first starting at its
 * one group norm: IN (conv_in on the image x [1, HW, 3] -> x; no norm), then for each
 * level but the last, for each ResnetBlock, RESNET_A (norm1 on x -> b) and RESNET_B
 * (norm2 on b, + shortcut(x) -> x, then the level's Downsample when `downsample`: the
 * output is (h/2) x (w/2)). After the last segment x is at latent size. */
int vkd_vae_down_segments(const vkd_vae_config *cfg, vkd_vae_seg *segs, int cap);
vkd_result vkd_vae_down_segment_record(vkd_graph *g, const vkd_vae_config *cfg, const vkd_vae_seg *s, vkd_tensor *x,
                                       vkd_tensor *b, int64_t h, int64_t w, vkd_tensor *out);

#endif
