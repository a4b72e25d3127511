/* Whole or tiled VAE decode. See vae_decode.h. */
#include "pipeline/vae_decode.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "models/graph.h"
#include "models/vae.h"
#include "pipeline/memplan.h"

#define MAX_TILES 1024 /* per axis: 8192 px images with 8-latent-pixel tiles stay far below */

/* Blend weight of pixel x of a tile n pixels wide that overlaps the tile before by
 * lo pixels and the one after by hi. The zero padding at a tile's inner edges
 * disturbs the decode far into the tile (the decoder's receptive field is wide), so
 * the outer quarter of each overlap gets no weight (the neighbour's decode is used
 * there), the middle half a linear ramp, and the rest full weight. */
static float ramp(int64_t x, int64_t n, int64_t lo, int64_t hi)
{
    float w = 1.0f;
    if (lo > 0) {
        float v = ((float)x + 0.5f - 0.25f * (float)lo) / (0.5f * (float)lo);
        w = v < w ? v : w;
    }
    if (hi > 0) {
        float v = ((float)(n - x) - 0.5f - 0.25f * (float)hi) / (0.5f * (float)hi);
        w = v < w ? v : w;
    }
    return w < 0 ? 0 : w;
}

/* Whole-image statistics of one group norm's group, merged from per-block partials
 * of every tile (Chan et al.'s parallel variance), each block weighted by the share of
 * its pixels its tile owns (see gather), so overlaps are not counted twice. */
typedef struct gstat {
    double n, mean, m2;
} gstat;

static void merge(gstat *a, double nb, double mb, double qb)
{
    if (nb <= 0)
        return;
    double n = a->n + nb, d = mb - a->mean;
    a->mean += d * nb / n;
    a->m2 += qb + d * d * a->n * nb / n;
    a->n = n;
}

/* The part of a tile that is its own, in latent pixels relative to the tile: up to
 * the middle of each overlap, so that every pixel of the image counts once. */
typedef struct owned {
    int64_t th, tw;           /* tile size */
    int64_t y0, y1, x0, x1;   /* owned rows and columns */
} owned;

/* After a tile: add every group norm's partials to acc ([entry][n * groups]), each
 * block weighted by the share of its pixels the tile owns. */
static vkd_result gather(vkd_device *d, const vkd_gn_capture *gn, const owned *ow, gstat **acc, float *buf)
{
    for (int j = 0; j < gn->count; j++) {
        const vkd_gn_entry *e = &gn->e[j];
        vkd_result r = vkd_tensor_download_f32(d, &e->scratch, buf);
        if (r)
            return r;
        int64_t s = 1; /* this norm's resolution: s times the latent's */
        while (ow->th * s * ow->tw * s < e->hw)
            s *= 2;
        int64_t wl = ow->tw * s;
        for (int64_t b = 0; b < e->nblk; b++) {
            int64_t p0 = b * e->block_rows, p1 = p0 + e->block_rows < e->hw ? p0 + e->block_rows : e->hw, own = 0;
            for (int64_t p = p0; p < p1; p++) {
                int64_t y = p / wl, x = p - y * wl;
                own += y >= ow->y0 * s && y < ow->y1 * s && x >= ow->x0 * s && x < ow->x1 * s;
            }
            if (own == 0)
                continue;
            double f = (double)own / (double)(p1 - p0);
            for (int64_t ng = 0; ng < e->n * e->groups; ng++) {
                const float *q = buf + (ng * e->nblk + b) * 4;
                uint32_t cnt;
                memcpy(&cnt, &q[0], sizeof cnt);
                merge(&acc[j][ng], cnt * f, (double)q[1] + q[2], q[3] * f);
            }
        }
    }
    return VKD_OK;
}

/* Before a pass: write the gathered statistics as every group norm's finals, and
 * clear the gathering for the next pass. */
static vkd_result inject(vkd_device *d, const vkd_gn_capture *gn, gstat **acc, float *buf)
{
    for (int j = 0; j < gn->count; j++) {
        const vkd_gn_entry *e = &gn->e[j];
        memset(buf, 0, (size_t)vkd_tensor_numel(&e->scratch) * sizeof *buf);
        for (int64_t ng = 0; ng < e->n * e->groups; ng++) {
            gstat *a = &acc[j][ng];
            float *f = buf + e->finals + ng * 3;
            f[0] = (float)a->mean;                       /* k0 */
            f[1] = (float)(a->mean - (double)f[0]);      /* mean - k0: the bits below fp32's ulp */
            f[2] = (float)(1.0 / sqrt(a->m2 / (a->n > 0 ? a->n : 1) + e->eps));
            memset(a, 0, sizeof *a);
        }
        vkd_result r = vkd_tensor_upload_f32(d, &e->scratch, buf);
        if (r)
            return r;
    }
    return VKD_OK;
}

typedef struct recording {
    vkd_graph g;
    vkd_gn_capture gn;
    vkd_tensor zin, dec;
} recording;

static void rec_free(vkd_device *d, recording *rc)
{
    vkd_cmd_destroy(rc->g.c);
    vkd_pool_destroy(d, rc->g.pool);
    vkd_pool_destroy(d, rc->gn.pool);
    free(rc->gn.e);
    memset(rc, 0, sizeof *rc);
}

/* The decoder recorded for one shape: from the latent (cin = z channels, whole
 * decode, or the middle part only when mid_only) or from the middle features (cin =
 * their channels, the upsampling part of a tile). with_gn: group-norm statistics
 * gathered by the caller (external: applied from the caller's). */
enum { REC_WHOLE, REC_MID, REC_UP };

static vkd_result rec_make(vkd_device *d, vkd_wstore *ws, vkd_dtype dt, const vkd_vae_config *cfg, int mode,
                           int64_t th, int64_t tw, int64_t cin, uint64_t pool_bytes, bool with_gn, bool external,
                           recording *rc)
{
    memset(rc, 0, sizeof *rc);
    rc->g.d = d, rc->g.ws = ws, rc->g.dt = dt;
    rc->gn.external = external;
    rc->g.gn = with_gn ? &rc->gn : NULL;
    vkd_result r;
    if ((r = pool_bytes ? vkd_pool_create_planned(d, pool_bytes, &rc->g.pool)
                        : vkd_pool_create(d, &rc->g.pool)) ||
        (r = vkd_cmd_create(d, &rc->g.c)) || (r = vkd_cmd_begin(rc->g.c)) ||
        (with_gn && (r = vkd_pool_create_sized(d, 1u << 20, &rc->gn.pool)))) /* statistics: KiBs */
        return r;
    rc->zin = g_new3(&rc->g, 1, th * tw, cin);                                  // [1, th*tw, cin]
    if (g_ok(&rc->g)) {
        if (mode == REC_WHOLE)
            vkd_vae_decode_record(&rc->g, cfg, &rc->zin, th, tw, &rc->dec);       // [1, 8th*8tw, 3]
        else if (mode == REC_MID)
            vkd_vae_decode_mid_record(&rc->g, cfg, &rc->zin, th, tw, &rc->dec);   // [1, th*tw, C_mid]
        else
            vkd_vae_decode_up_record(&rc->g, cfg, &rc->zin, false, th, tw, &rc->dec); // [1, 8th*8tw, 3]
    }
    if ((r = rc->g.err))
        return r;
    return vkd_cmd_end(rc->g.c);
}

/* A tiled decode runs the latent-resolution part of the decoder (conv_in, middle
 * ResBlocks and attention: cheap, and the attention must see the whole latent) on the
 * whole latent, and only the upsampling levels per tile. Their group norms use the
 * whole image's statistics: a first pass normalises each tile by its own and gathers
 * them over the image (each tile counting the pixels it owns); the second pass
 * normalises every tile by those and draws. Measured on the shipped model at 256x256
 * with 128-pixel tiles, against the whole decode (tests/test_memplan.c): per-tile
 * statistics and a tiled middle part 20-26 dB, the whole middle part + gathered
 * statistics 32 dB; a third pass did not improve on the second (29.5 dB). */
#define GN_PASSES 2

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
    int passes = tiled ? GN_PASSES : 1;
    int64_t H = 8 * h, W = 8 * w, TH = 8 * th, TW = 8 * tw;
    float *zt = malloc((size_t)(th * tw * zc) * sizeof *zt);
    float *out = tiled ? malloc((size_t)(TH * TW * 3) * sizeof *out) : img;
    float *wsum = tiled ? calloc((size_t)(H * W), sizeof *wsum) : NULL;
    float *sbuf = NULL, *mid = NULL;
    gstat **acc = NULL;
    recording rc;
    memset(&rc, 0, sizeof rc);
    vkd_result r = VKD_OK;
    if (!zt || !out || (tiled && !wsum)) {
        r = VKD_ERR_OUT_OF_HOST_MEMORY;
        goto done;
    }
    if (tiled)
        memset(img, 0, (size_t)(H * W * 3) * sizeof *img);
    const float *src = z; /* what the tiles are cut from: z, or the middle features */
    int64_t cin = zc;
    if (tiled) { /* the middle part on the whole latent */
        if ((r = rec_make(d, ws, dt, cfg, REC_MID, h, w, zc, pool_bytes, false, false, &rc)) ||
            (r = vkd_tensor_upload_f32(d, &rc.zin, z)) || (r = vkd_cmd_submit_wait(rc.g.c)))
            goto done;
        cin = rc.dec.shape[2];
        st->gpu_ms += vkd_cmd_total_ms(rc.g.c);
        st->flops += vkd_cmd_flops(rc.g.c);
        st->dispatches = vkd_cmd_dispatch_count(rc.g.c);
        free(zt);
        if (!(mid = malloc((size_t)(h * w * cin) * sizeof *mid)) ||
            !(zt = malloc((size_t)(th * tw * cin) * sizeof *zt))) {
            r = VKD_ERR_OUT_OF_HOST_MEMORY;
            goto done;
        }
        if ((r = vkd_tensor_download_f32(d, &rc.dec, mid)))
            goto done;
        src = mid;
    }
    for (int pass = 0; pass < passes; pass++) {
        bool last = pass == passes - 1;
        if (pass <= 1) { /* pass 0: own statistics; from pass 1 on: the gathered ones */
            rec_free(d, &rc);
            if ((r = rec_make(d, ws, dt, cfg, tiled ? REC_UP : REC_WHOLE, th, tw, cin, pool_bytes, tiled, pass > 0,
                              &rc)))
                goto done;
            st->dispatches += vkd_cmd_dispatch_count(rc.g.c) * (pass == 0);
        }
        if (tiled && pass == 0) { /* scratch buffers for gathering, sized by the largest norm */
            int64_t most = 1;
            acc = calloc((size_t)rc.gn.count + 1, sizeof *acc);
            for (int j = 0; acc && j < rc.gn.count; j++) {
                int64_t ne = vkd_tensor_numel(&rc.gn.e[j].scratch);
                most = ne > most ? ne : most;
                if (!(acc[j] = calloc((size_t)(rc.gn.e[j].n * rc.gn.e[j].groups), sizeof **acc)))
                    break;
            }
            sbuf = malloc((size_t)most * sizeof *sbuf);
            if (!acc || !sbuf || (rc.gn.count > 0 && !acc[rc.gn.count - 1])) {
                r = VKD_ERR_OUT_OF_HOST_MEMORY;
                goto done;
            }
        }
        if (pass > 0 && (r = inject(d, &rc.gn, acc, sbuf)))
            goto done;
        for (int iy = 0; iy < ny; iy++)
            for (int ix = 0; ix < nx; ix++) {
                int64_t y0 = ys[iy], x0 = xs[ix];
                for (int64_t y = 0; y < th; y++)
                    memcpy(zt + y * tw * cin, src + ((y0 + y) * w + x0) * cin, (size_t)(tw * cin) * sizeof *zt);
                if ((r = vkd_tensor_upload_f32(d, &rc.zin, zt)) || (r = vkd_cmd_submit_wait(rc.g.c)))
                    goto done;
                st->tiles += last;
                st->gpu_ms += vkd_cmd_total_ms(rc.g.c);
                st->flops += vkd_cmd_flops(rc.g.c);
                if (!last) {
                    owned ow = {.th = th, .tw = tw, .y0 = 0, .y1 = th, .x0 = 0, .x1 = tw};
                    if (iy > 0)
                        ow.y0 = (ys[iy - 1] + th - y0) / 2;
                    if (iy < ny - 1)
                        ow.y1 = (ys[iy + 1] - y0 + th) / 2;
                    if (ix > 0)
                        ow.x0 = (xs[ix - 1] + tw - x0) / 2;
                    if (ix < nx - 1)
                        ow.x1 = (xs[ix + 1] - x0 + tw) / 2;
                    if ((r = gather(d, &rc.gn, &ow, acc, sbuf)))
                        goto done;
                    continue;
                }
                if ((r = vkd_tensor_download_f32(d, &rc.dec, out)))
                    goto done;
                if (!tiled)
                    continue;
                /* overlaps with the neighbours, in pixels */
                int64_t top = iy > 0 ? 8 * (ys[iy - 1] + th - y0) : 0;
                int64_t bottom = iy < ny - 1 ? 8 * (y0 + th - ys[iy + 1]) : 0;
                int64_t left = ix > 0 ? 8 * (xs[ix - 1] + tw - x0) : 0;
                int64_t right = ix < nx - 1 ? 8 * (x0 + tw - xs[ix + 1]) : 0;
                for (int64_t y = 0; y < TH; y++) {
                    float wy = ramp(y, TH, top, bottom);
                    int64_t Y = 8 * y0 + y;
                    for (int64_t x = 0; x < TW; x++) {
                        float wt = wy * ramp(x, TW, left, right);
                        int64_t X = 8 * x0 + x;
                        float *dst = img + (Y * W + X) * 3;
                        const float *px = out + (y * TW + x) * 3;
                        dst[0] += wt * px[0], dst[1] += wt * px[1], dst[2] += wt * px[2];
                        wsum[Y * W + X] += wt;
                    }
                }
            }
    }
    if (tiled)
        for (int64_t i = 0; i < H * W; i++) /* every pixel is inside some tile's weight > 0 region */
            for (int k = 0; k < 3; k++)
                img[i * 3 + k] /= wsum[i];
done:
    if (acc)
        for (int j = 0; j < rc.gn.count; j++)
            free(acc[j]);
    free(acc);
    rec_free(d, &rc);
    free(zt);
    if (tiled)
        free(out);
    free(wsum);
    free(sbuf);
    free(mid);
    return r;
}
