/* Shared parts of the tiled VAE decode and encode. See vae_tiles.h. */
#include "pipeline/vae_tiles.h"

#include <stdlib.h>
#include <string.h>

#include "common/half.h"
#include "ops/groupnorm.h"

int vkd_tile_starts(int64_t len, int tile, int overlap, int64_t *starts, int max)
{
    if (tile <= 0 || len <= tile) {
        starts[0] = 0;
        return 1;
    }
    int64_t stride = tile - overlap;
    if (stride < 1)
        stride = 1;
    int n = 0;
    for (int64_t s = 0;; s += stride) {
        if (n == max)
            return -1;
        if (s + tile >= len) {
            starts[n++] = len - tile; /* the last tile flush with the end */
            return n;
        }
        starts[n++] = s;
    }
}

void vkd_vt_owned_make(const int64_t *ys, int ny, const int64_t *xs, int nx, int64_t th, int64_t tw,
                       vkd_vt_owned *own)
{
    for (int iy = 0, t = 0; iy < ny; iy++)
        for (int ix = 0; ix < nx; ix++, t++) {
            int64_t y0 = ys[iy], x0 = xs[ix];
            vkd_vt_owned *o = &own[t];
            *o = (vkd_vt_owned){0, th, 0, tw};
            if (iy > 0)
                o->y0 = (ys[iy - 1] + th - y0) / 2;
            if (iy < ny - 1)
                o->y1 = (ys[iy + 1] - y0 + th) / 2;
            if (ix > 0)
                o->x0 = (xs[ix - 1] + tw - x0) / 2;
            if (ix < nx - 1)
                o->x1 = (xs[ix + 1] - x0 + tw) / 2;
        }
}

float vkd_vt_hget(const vkd_vt_hbuf *b, bool half, size_t i)
{
    return half ? vkd_half_to_float(((const uint16_t *)b->p)[i]) : ((const float *)b->p)[i];
}

void vkd_vt_hset(vkd_vt_hbuf *b, bool half, size_t i, float v)
{
    if (half)
        ((uint16_t *)b->p)[i] = vkd_float_to_half(v);
    else
        ((float *)b->p)[i] = v;
}

vkd_result vkd_vt_download(vkd_device *d, const vkd_tensor *t, bool half, vkd_vt_hbuf *b, float *tmp)
{
    size_t n = (size_t)vkd_tensor_numel(t);
    free(b->p);
    if (!(b->p = malloc(n * (half ? 2 : 4))))
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    vkd_result r = vkd_tensor_download_f32(d, t, half ? tmp : (float *)b->p);
    if (!r && half)
        for (size_t i = 0; i < n; i++)
            ((uint16_t *)b->p)[i] = vkd_float_to_half(tmp[i]);
    return r;
}

vkd_result vkd_vt_upload(vkd_device *d, const vkd_tensor *t, bool half, const vkd_vt_hbuf *b, float *tmp)
{
    size_t n = (size_t)vkd_tensor_numel(t);
    if (half)
        for (size_t i = 0; i < n; i++)
            tmp[i] = vkd_half_to_float(((const uint16_t *)b->p)[i]);
    return vkd_tensor_upload_f32(d, t, half ? tmp : (const float *)b->p);
}

vkd_result vkd_vt_rec_begin(vkd_device *d, vkd_wstore *ws, vkd_dtype dt, uint64_t pool_bytes, bool external_gn,
                            vkd_vt_rec *rc)
{
    memset(rc, 0, sizeof *rc);
    rc->g.d = d, rc->g.ws = ws, rc->g.dt = dt;
    if (external_gn) {
        rc->gn.external = true;
        rc->g.gn = &rc->gn;
    }
    vkd_result r;
    if ((r = pool_bytes ? vkd_pool_create_planned(d, pool_bytes, &rc->g.pool) : vkd_pool_create(d, &rc->g.pool)) ||
        (r = vkd_cmd_create(d, &rc->g.c)) || (r = vkd_cmd_begin(rc->g.c)))
        return r;
    if (external_gn)
        r = vkd_pool_create_sized(d, 1u << 20, &rc->gn.pool); /* statistics: KiBs */
    return r;
}

vkd_result vkd_vt_rec_end(vkd_vt_rec *rc)
{
    if (rc->g.err)
        return rc->g.err;
    return vkd_cmd_end(rc->g.c);
}

void vkd_vt_rec_free(vkd_device *d, vkd_vt_rec *rc)
{
    vkd_cmd_destroy(rc->g.c);
    vkd_pool_destroy(d, rc->g.pool);
    vkd_pool_destroy(d, rc->gn.pool);
    free(rc->gn.e);
    memset(rc, 0, sizeof *rc);
}

vkd_result vkd_vt_sync_stats(vkd_device *d, vkd_vt_rec *rc, const vkd_vt_hbuf *v, bool half, const vkd_vt_owned *own,
                             int ntiles, int64_t scale, int64_t sw, int64_t c)
{
    if (rc->gn.count != 1)
        return VKD_ERR_INTERNAL;
    const vkd_gn_entry *e = &rc->gn.e[0];
    int64_t groups = e->groups, cpg = c / groups;
    double *sum = calloc((size_t)groups * 2, sizeof *sum);
    float *buf = calloc((size_t)vkd_tensor_numel(&e->scratch), sizeof *buf);
    vkd_result r = VKD_ERR_OUT_OF_HOST_MEMORY;
    if (!sum || !buf)
        goto done;
    double npx = 0;
    for (int t = 0; t < ntiles; t++)
        for (int64_t y = own[t].y0 * scale; y < own[t].y1 * scale; y++)
            for (int64_t x = own[t].x0 * scale; x < own[t].x1 * scale; x++) {
                size_t px = (size_t)((y * sw + x) * c);
                for (int64_t g = 0; g < groups; g++) {
                    double s1 = 0, s2 = 0;
                    for (int64_t k = 0; k < cpg; k++) {
                        double q = vkd_vt_hget(&v[t], half, px + (size_t)(g * cpg + k));
                        s1 += q, s2 += q * q;
                    }
                    sum[2 * g] += s1, sum[2 * g + 1] += s2;
                }
                npx++;
            }
    for (int64_t g = 0; g < groups; g++) {
        double n = npx * (double)cpg, mean = sum[2 * g] / n, var = sum[2 * g + 1] / n - mean * mean;
        vkd_groupnorm_finals_set(&e->layout, buf, 0, g, mean, var, e->eps);
    }
    r = vkd_tensor_upload_f32(d, &e->scratch, buf);
done:
    free(sum);
    free(buf);
    return r;
}
