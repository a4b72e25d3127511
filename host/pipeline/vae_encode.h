/* Tiled VAE encode (issue 21): the encoder's activations bounded by the tile instead
 * of the image, as vae_decode.h does for the decoder.
 *
 * The high-resolution part of the encoder (conv_in and every level but the last, with
 * their Downsamples: where the memory goes) runs per tile, segment by segment
 * (vkd_vae_down_segments), every group norm with the whole image's statistics merged
 * over the tiles (vae_tiles.h); the rest (the last level, the middle with its
 * attention, norm_out, conv_out, quant_conv) runs once on the whole latent-size map,
 * stitched from the tiles' cores. Tiles are placed in latent pixels, so their origins
 * and overlaps are multiples of 8 image pixels and each stride-2 conv samples the
 * positions it samples in the whole encode. Each tile is encoded as an image of its
 * own: zero padding at every edge, and the Downsample's right/bottom padding at its
 * right and bottom edges; where that edge is not the image's, what it disturbs lies
 * within the overlap, outside the tile's core, and is cropped. */
#ifndef VKD_PIPELINE_VAE_ENCODE_H
#define VKD_PIPELINE_VAE_ENCODE_H

#include "models/detect.h"
#include "models/wstore.h"
#include "vk/device.h"

typedef struct vkd_vae_encode_stats {
    int tiles;
    uint64_t pool_peak; /* the largest activation pool peak of the recordings */
} vkd_vae_encode_stats;

/* The overlap (latent pixels) of tiles of `tile`: a quarter, and at least twice the
 * reach of the tiled part's receptive field (so that a tile's core sees no padding). */
int vkd_vae_encode_overlap(const vkd_vae_config *cfg, int tile);

/* img: [8h * 8w, 3] channels-last in [-1, 1]. moments: [h*w, 2 z_channels] (mean then
 * logvar per pixel, as vkd_vae_encode_record's output). tile: the tile edge in latent
 * pixels; a tile covering the image still runs the segments (one tile). pool_bytes:
 * the plan's activation figure (0: unknown). */
vkd_result vkd_vae_encode_tiled(vkd_device *d, vkd_wstore *ws, vkd_dtype dt, const vkd_vae_config *cfg,
                                const float *img, int64_t h, int64_t w, int tile, uint64_t pool_bytes, float *moments,
                                vkd_vae_encode_stats *st);

/* Its memory request, from dry runs of the same recordings: the weight bytes read and
 * the largest activation pool peak. */
vkd_result vkd_vae_encode_tiled_request(vkd_device *d, vkd_wstore *ws, vkd_dtype dt, const vkd_vae_config *cfg,
                                        int64_t h, int64_t w, int tile, uint64_t *weights, uint64_t *activations);

#endif
