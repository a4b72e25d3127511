/* VAE decode of a whole latent, in one piece or in overlapping tiles.
 *
 * Tiled decode bounds the decoder's activations by the tile instead of the image
 * (issue 6: large images on a small GPU). The latent-resolution part of the decoder
 * (conv_in, middle ResBlocks and attention) runs on the whole latent; the upsampling
 * levels run per tile. Every tile has the same size, so that part is recorded once
 * and replayed per tile; the last tile of a row or column is moved back to end flush
 * with the image, so tiles overlap by at least `overlap`. Group norms in the tiles use
 * the whole image's statistics: the upsampling part runs segment by segment over all
 * tiles, each segment ending where a norm needs the statistics of what it produced;
 * the tiles' activations wait on the host between segments (in the device's storage
 * precision). Tiles are blended in their overlaps with linear ramps (weights
 * normalised per pixel). */
#ifndef VKD_PIPELINE_VAE_DECODE_H
#define VKD_PIPELINE_VAE_DECODE_H

#include "models/detect.h"
#include "models/wstore.h"
#include "pipeline/vae_tiles.h" /* vkd_tile_starts */
#include "vk/cmd.h"
#include "vk/device.h"

typedef struct vkd_vae_decode_stats {
    int tiles;
    uint32_t dispatches;   /* per replay */
    double gpu_ms;         /* summed over tiles (0 without timestamps) */
    double flops;          /* summed over tiles */
    /* in: called with the whole-image decode's command after it ran (the bench's
     * profile by op); NULL: not */
    void (*on_run)(void *user, vkd_cmd *cmd);
    void *on_run_user;
} vkd_vae_decode_stats;

/* st: out (its on_run fields in; zero them). z: [h*w, z_channels] channels-last, already divided by the scale factor.
 * img: [8h * 8w, 3] channels-last in [-1, 1] (not clamped), caller-owned.
 * tile: 0 for one piece, else the tile edge in latent pixels; overlap in latent pixels.
 * pool_bytes: the memory plan's activation figure for one piece (0: unknown). */
vkd_result vkd_vae_decode_image(vkd_device *d, vkd_wstore *ws, vkd_dtype dt, const vkd_vae_config *cfg,
                                const float *z, int64_t h, int64_t w, int tile, int overlap, uint64_t pool_bytes,
                                float *img, vkd_vae_decode_stats *st);

#endif
