/* Tiled VAE encode. See vae_encode.h. */
#include "pipeline/vae_encode.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "models/graph.h"
#include "models/vae.h"
#include "pipeline/vae_tiles.h"

#define MAX_TILES 1024 /* per axis */
#define MAX_SEGS 256

int vkd_vae_encode_overlap(const vkd_vae_config *cfg, int tile)
{
    /* the reach (image pixels) of one output pixel of the tiled part into its input:
     * conv_in 1, then per level l 2^l for each 3x3 conv (two per ResnetBlock) and for
     * the Downsample */
    int64_t reach = 1;
    for (int l = 0; l < cfg->num_levels - 1; l++)
        reach += ((int64_t)1 << l) * (2 * cfg->num_res_blocks + 1);
    int margin = (int)((reach + 7) / 8) + 1; /* latent pixels between a core and its tile's edge */
    return tile / 4 > 2 * margin ? tile / 4 : 2 * margin;
}

/* The shapes flowing through the segments: the tile's activation x (cx channels, sh x
 * sw pixels, scale of them per latent pixel) and a ResnetBlock's inner b (cb). */
typedef struct geom {
    int64_t cx, cb, sh, sw, scale;
} geom;

static void geom_step(geom *m, const vkd_vae_seg *s, int64_t oc)
{
    if (s->kind == VKD_VAE_SEG_RESNET_A) {
        m->cb = oc;
        return;
    }
    m->cx = oc;
    if (s->downsample)
        m->sh /= 2, m->sw /= 2, m->scale /= 2;
}

/* Record segment s for a tile of m's shape into rc (plan: a dry run into it). */
static vkd_result seg_make(vkd_device *d, vkd_wstore *ws, vkd_dtype dt, const vkd_vae_config *cfg,
                           const vkd_vae_seg *s, const geom *m, uint64_t pool_bytes, vkd_graph_plan *plan,
                           vkd_vt_rec *rc)
{
    vkd_result r;
    if (plan) {
        memset(rc, 0, sizeof *rc);
        rc->g.d = d, rc->g.ws = ws, rc->g.dt = dt, rc->g.plan = plan;
        rc->gn.external = true;
        rc->g.gn = &rc->gn; /* the norms' scratches are not activations, as in the real recording */
        if ((r = vkd_cmd_create(d, &rc->g.c)))
            return r;
    } else if ((r = vkd_vt_rec_begin(d, ws, dt, pool_bytes, s->kind != VKD_VAE_SEG_IN, rc))) {
        return r;
    }
    rc->in = g_new3(&rc->g, 1, m->sh * m->sw, m->cx);                            // [1, sh*sw, cx]
    if (s->kind == VKD_VAE_SEG_RESNET_B)
        rc->in2 = g_new3(&rc->g, 1, m->sh * m->sw, m->cb);                       // [1, sh*sw, cb]
    if (g_ok(&rc->g))
        vkd_vae_down_segment_record(&rc->g, cfg, s, &rc->in, &rc->in2, m->sh, m->sw, &rc->out);
    return plan ? rc->g.err : vkd_vt_rec_end(rc);
}

/* The whole-map part on x [1, h*w, c] */
static vkd_result low_make(vkd_device *d, vkd_wstore *ws, vkd_dtype dt, const vkd_vae_config *cfg, int64_t h,
                           int64_t w, int64_t c, uint64_t pool_bytes, vkd_graph_plan *plan, vkd_vt_rec *rc)
{
    vkd_result r;
    if (plan) {
        memset(rc, 0, sizeof *rc);
        rc->g.d = d, rc->g.ws = ws, rc->g.dt = dt, rc->g.plan = plan;
        if ((r = vkd_cmd_create(d, &rc->g.c)))
            return r;
    } else if ((r = vkd_vt_rec_begin(d, ws, dt, pool_bytes, false, rc))) {
        return r;
    }
    rc->in = g_new3(&rc->g, 1, h * w, c);                                        // [1, hw, c]
    if (g_ok(&rc->g))
        vkd_vae_encode_low_record(&rc->g, cfg, &rc->in, h, w, &rc->out);          // [1, hw, 2z]
    return plan ? rc->g.err : vkd_vt_rec_end(rc);
}

static uint64_t pool_peak(const vkd_vt_rec *rc)
{
    vkd_memory_stats ms;
    vkd_pool_stats_get(rc->g.pool, &ms);
    return ms.peak_allocated;
}

static int tile_grid(const vkd_vae_config *cfg, int64_t h, int64_t w, int tile, int64_t *th, int64_t *tw, int64_t *ys,
                     int *ny, int64_t *xs, int *nx)
{
    if (tile <= 0 || cfg->num_levels < 2 || cfg->num_res_blocks < 1 || !cfg->has_encoder)
        return -1; /* the segments need a level to tile and a block to carry each Downsample */
    *th = tile < h ? tile : h, *tw = tile < w ? tile : w;
    int ov = vkd_vae_encode_overlap(cfg, tile);
    *ny = vkd_tile_starts(h, (int)*th, ov, ys, MAX_TILES);
    *nx = vkd_tile_starts(w, (int)*tw, ov, xs, MAX_TILES);
    return *ny < 0 || *nx < 0 ? -1 : 0;
}

vkd_result vkd_vae_encode_tiled_request(vkd_device *d, vkd_wstore *ws, vkd_dtype dt, const vkd_vae_config *cfg,
                                        int64_t h, int64_t w, int tile, uint64_t *weights, uint64_t *activations)
{
    int64_t th, tw, ys[MAX_TILES], xs[MAX_TILES];
    int ny, nx;
    vkd_vae_seg segs[MAX_SEGS];
    int nseg = vkd_vae_down_segments(cfg, segs, MAX_SEGS);
    if (nseg > MAX_SEGS || tile_grid(cfg, h, w, tile, &th, &tw, ys, &ny, xs, &nx))
        return VKD_ERR_UNSUPPORTED;
    *weights = *activations = 0;
    geom m = {3, 0, 8 * th, 8 * tw, 8};
    vkd_vt_rec rc;
    vkd_result r = VKD_OK;
    for (int s = 0; s <= nseg && !r; s++) {
        vkd_graph_plan plan;
        memset(&plan, 0, sizeof plan);
        r = s < nseg ? seg_make(d, ws, dt, cfg, &segs[s], &m, 0, &plan, &rc)
                     : low_make(d, ws, dt, cfg, h, w, m.cx, 0, &plan, &rc);
        if (!r && s < nseg)
            geom_step(&m, &segs[s], rc.out.shape[2]);
        vkd_cmd_destroy(rc.g.c);
        *weights += plan.weight_bytes;
        if (plan.peak > *activations)
            *activations = plan.peak;
    }
    return r;
}

/* Every tile runs a segment, its output kept on the host; then the next segment's
 * group norm gets the whole image's statistics of what the tiles produced (each
 * counting the pixels it owns), and every tile runs that segment. After the last one,
 * the tiles' cores are stitched into the whole latent-size map for the rest. */
vkd_result vkd_vae_encode_tiled(vkd_device *d, vkd_wstore *ws, vkd_dtype dt, const vkd_vae_config *cfg,
                                const float *img, int64_t h, int64_t w, int tile, uint64_t pool_bytes, float *moments,
                                vkd_vae_encode_stats *st)
{
    memset(st, 0, sizeof *st);
    int64_t th, tw, ys[MAX_TILES], xs[MAX_TILES];
    int ny, nx;
    vkd_vae_seg segs[MAX_SEGS];
    int nseg = vkd_vae_down_segments(cfg, segs, MAX_SEGS);
    if (nseg > MAX_SEGS || tile_grid(cfg, h, w, tile, &th, &tw, ys, &ny, xs, &nx)) {
        VKD_ERROR("tiled VAE encode: %d-latent-pixel tiles of %lldx%lld are not possible with this encoder", tile,
                  (long long)w, (long long)h);
        return VKD_ERR_UNSUPPORTED;
    }
    int nt = ny * nx;
    bool half = dt == VKD_F16;
    int64_t W = 8 * w;
    geom m = {3, 0, 8 * th, 8 * tw, 8};
    vkd_vt_hbuf *xv = calloc((size_t)nt, sizeof *xv), *bv = calloc((size_t)nt, sizeof *bv);
    vkd_vt_owned *own = calloc((size_t)nt, sizeof *own);
    float *tmp = NULL, *map = NULL;
    vkd_vt_rec rc;
    memset(&rc, 0, sizeof rc);
    vkd_result r = VKD_ERR_OUT_OF_HOST_MEMORY;
    if (!xv || !bv || !own)
        goto done;
    vkd_vt_owned_make(ys, ny, xs, nx, th, tw, own);
    for (int iy = 0, t = 0; iy < ny; iy++) /* the tiles of the image */
        for (int ix = 0; ix < nx; ix++, t++) {
            if (!(xv[t].p = malloc((size_t)(m.sh * m.sw * 3) * (half ? 2 : 4))))
                goto done;
            for (int64_t y = 0; y < m.sh; y++)
                for (int64_t i = 0; i < m.sw * 3; i++)
                    vkd_vt_hset(&xv[t], half, (size_t)(y * m.sw * 3 + i), img[((8 * ys[iy] + y) * W + 8 * xs[ix]) * 3 + i]);
        }
    for (int s = 0; s < nseg; s++) {
        const vkd_vae_seg *sg = &segs[s];
        bool on_b = sg->kind == VKD_VAE_SEG_RESNET_B;
        if ((r = seg_make(d, ws, dt, cfg, sg, &m, pool_bytes, NULL, &rc)) ||
            (sg->kind != VKD_VAE_SEG_IN &&
             (r = vkd_vt_sync_stats(d, &rc, on_b ? bv : xv, half, own, nt, m.scale, m.sw, on_b ? m.cb : m.cx))))
            goto done;
        int64_t in = m.sh * m.sw * (m.cx > m.cb ? m.cx : m.cb), most = vkd_tensor_numel(&rc.out);
        free(tmp); /* conversion buffer for this segment's largest tile tensor */
        if (!(tmp = malloc((size_t)(most > in ? most : in) * sizeof *tmp))) {
            r = VKD_ERR_OUT_OF_HOST_MEMORY;
            goto done;
        }
        for (int t = 0; t < nt; t++) /* the tile's new activation replaces the one it supersedes */
            if ((r = vkd_vt_upload(d, &rc.in, half, &xv[t], tmp)) ||
                (on_b && (r = vkd_vt_upload(d, &rc.in2, half, &bv[t], tmp))) || (r = vkd_cmd_submit_wait(rc.g.c)) ||
                (r = vkd_vt_download(d, &rc.out, half, sg->kind == VKD_VAE_SEG_RESNET_A ? &bv[t] : &xv[t], tmp)))
                goto done;
        geom_step(&m, sg, rc.out.shape[2]);
        if (pool_peak(&rc) > st->pool_peak)
            st->pool_peak = pool_peak(&rc);
        vkd_vt_rec_free(d, &rc);
    }
    if (m.scale != 1 || m.sh != th || m.sw != tw) {
        r = VKD_ERR_INTERNAL;
        goto done;
    }
    /* the cores, stitched */
    r = VKD_ERR_OUT_OF_HOST_MEMORY;
    if (!(map = malloc((size_t)(h * w * m.cx) * sizeof *map)))
        goto done;
    for (int iy = 0, t = 0; iy < ny; iy++)
        for (int ix = 0; ix < nx; ix++, t++)
            for (int64_t y = own[t].y0; y < own[t].y1; y++)
                for (int64_t i = own[t].x0 * m.cx; i < own[t].x1 * m.cx; i++)
                    map[((ys[iy] + y) * w + xs[ix]) * m.cx + i] = vkd_vt_hget(&xv[t], half, (size_t)(y * tw * m.cx + i));
    if ((r = low_make(d, ws, dt, cfg, h, w, m.cx, pool_bytes, NULL, &rc)) ||
        (r = vkd_tensor_upload_f32(d, &rc.in, map)) || (r = vkd_cmd_submit_wait(rc.g.c)) ||
        (r = vkd_tensor_download_f32(d, &rc.out, moments)))
        goto done;
    if (pool_peak(&rc) > st->pool_peak)
        st->pool_peak = pool_peak(&rc);
    st->tiles = nt;
    VKD_INFO("VAE encoder: %d tiles of %lldx%lld pixels, overlap %d px", nt, (long long)(8 * tw), (long long)(8 * th),
             8 * vkd_vae_encode_overlap(cfg, tile));
done:
    vkd_vt_rec_free(d, &rc);
    for (int t = 0; t < nt && xv && bv; t++)
        free(xv[t].p), free(bv[t].p);
    free(xv), free(bv), free(own), free(tmp), free(map);
    return r;
}
