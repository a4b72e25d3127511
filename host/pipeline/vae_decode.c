/* Whole or tiled VAE decode. See vae_decode.h. */
#include "pipeline/vae_decode.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "models/graph.h"
#include "models/vae.h"
#include "pipeline/memplan.h"

#define MAX_TILES 1024 /* per axis: 8192 px images with 8-latent-pixel tiles stay far below */

/* Blend weight of pixel x of a tile n pixels wide: a linear ramp over r pixels on each
 * side that has a neighbouring tile (lo: one before, hi: one after), 1 elsewhere. */
static float ramp(int64_t x, int64_t n, int64_t r, bool lo, bool hi)
{
    float w = 1.0f;
    if (lo && x < r) {
        float v = ((float)x + 0.5f) / (float)r;
        w = v < w ? v : w;
    }
    if (hi && x >= n - r) {
        float v = ((float)(n - x) - 0.5f) / (float)r;
        w = v < w ? v : w;
    }
    return w;
}

vkd_result vkd_vae_decode_image(vkd_device *d, vkd_wstore *ws, vkd_dtype dt, const vkd_vae_config *cfg,
                                const float *z, int64_t h, int64_t w, int tile, int overlap, uint64_t pool_bytes,
                                float *img, vkd_vae_decode_stats *st)
{
    memset(st, 0, sizeof *st);
    int64_t zc = cfg->z_channels;
    int64_t th = tile > 0 && tile < h ? tile : h, tw = tile > 0 && tile < w ? tile : w;
    int64_t ys[MAX_TILES], xs[MAX_TILES];
    int ny = vkd_tile_starts(h, (int)th, overlap, ys, MAX_TILES);
    int nx = vkd_tile_starts(w, (int)tw, overlap, xs, MAX_TILES);
    if (ny < 0 || nx < 0) {
        VKD_ERROR("vae tiling: too many tiles (tile %d latent px for %lldx%lld)", tile, (long long)w, (long long)h);
        return VKD_ERR_INVALID_ARG;
    }
    bool tiled = ny * nx > 1;
    int64_t H = 8 * h, W = 8 * w, TH = 8 * th, TW = 8 * tw, R = 8 * (int64_t)overlap;
    float *zt = malloc((size_t)(th * tw * zc) * sizeof *zt);
    float *out = tiled ? malloc((size_t)(TH * TW * 3) * sizeof *out) : img;
    float *wsum = tiled ? calloc((size_t)(H * W), sizeof *wsum) : NULL;
    vkd_graph g = {.d = d, .ws = ws, .dt = dt};
    vkd_tensor zin, dec;
    memset(&dec, 0, sizeof dec);
    vkd_result r = VKD_OK;
    if (!zt || !out || (tiled && !wsum)) {
        r = VKD_ERR_OUT_OF_HOST_MEMORY;
        goto done;
    }
    if (tiled)
        memset(img, 0, (size_t)(H * W * 3) * sizeof *img);
    /* record the decoder once for the tile shape */
    if ((r = pool_bytes ? vkd_pool_create_sized(d, pool_bytes + pool_bytes / 8, &g.pool) : vkd_pool_create(d, &g.pool)) || (r = vkd_cmd_create(d, &g.c)) || (r = vkd_cmd_begin(g.c)))
        goto done;
    zin = g_new3(&g, 1, th * tw, zc);                                            // [1, th*tw, zc]
    if (g_ok(&g))
        vkd_vae_decode_record(&g, cfg, &zin, th, tw, &dec);                      // [1, TH*TW, 3]
    if ((r = g.err) || (r = vkd_cmd_end(g.c)))
        goto done;
    st->dispatches = vkd_cmd_dispatch_count(g.c);
    for (int iy = 0; iy < ny; iy++)
        for (int ix = 0; ix < nx; ix++) {
            int64_t y0 = ys[iy], x0 = xs[ix];
            for (int64_t y = 0; y < th; y++)
                memcpy(zt + y * tw * zc, z + ((y0 + y) * w + x0) * zc, (size_t)(tw * zc) * sizeof *zt);
            if ((r = vkd_tensor_upload_f32(d, &zin, zt)) || (r = vkd_cmd_submit_wait(g.c)) ||
                (r = vkd_tensor_download_f32(d, &dec, out)))
                goto done;
            st->tiles++;
            st->gpu_ms += vkd_cmd_total_ms(g.c);
            st->flops += vkd_cmd_flops(g.c);
            if (!tiled)
                continue;
            bool top = iy > 0, bottom = iy < ny - 1, left = ix > 0, right = ix < nx - 1;
            for (int64_t y = 0; y < TH; y++) {
                float wy = ramp(y, TH, R, top, bottom);
                int64_t Y = 8 * y0 + y;
                for (int64_t x = 0; x < TW; x++) {
                    float wt = wy * ramp(x, TW, R, left, right);
                    int64_t X = 8 * x0 + x;
                    float *dst = img + (Y * W + X) * 3;
                    const float *src = out + (y * TW + x) * 3;
                    dst[0] += wt * src[0], dst[1] += wt * src[1], dst[2] += wt * src[2];
                    wsum[Y * W + X] += wt;
                }
            }
        }
    if (tiled)
        for (int64_t i = 0; i < H * W; i++) /* every pixel is inside some tile's weight > 0 region */
            for (int k = 0; k < 3; k++)
                img[i * 3 + k] /= wsum[i];
done:
    vkd_cmd_destroy(g.c);
    vkd_pool_destroy(d, g.pool);
    free(zt);
    if (tiled)
        free(out);
    free(wsum);
    return r;
}
