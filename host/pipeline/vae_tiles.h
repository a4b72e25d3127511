/* What the tiled VAE decode and encode share (vae_decode.c, vae_encode.c): tile
 * placement, the part of each tile that is its own, a tile's activation kept on the
 * host between segments, the recording of one segment with group norms whose
 * statistics the caller writes, and those statistics merged over the tiles.
 *
 * Both run a model part segment by segment over all tiles, each segment starting at a
 * group norm; before a segment runs, its norm gets the whole image's statistics of
 * what the previous segment produced, each tile counting only the pixels it owns, so
 * the norms see what they see on the whole image. */
#ifndef VKD_PIPELINE_VAE_TILES_H
#define VKD_PIPELINE_VAE_TILES_H

#include <stdbool.h>

#include "models/graph.h"

/* Tiles along one axis of length len (latent pixels): count and starts, tiles of
 * `tile` overlapping by at least `overlap`, the last one flush with the end. */
int vkd_tile_starts(int64_t len, int tile, int overlap, int64_t *starts, int max);

/* The part of a tile that is its own, in latent pixels relative to the tile: up to
 * the middle of each overlap, so that every pixel of the image counts once. */
typedef struct vkd_vt_owned {
    int64_t y0, y1, x0, x1;
} vkd_vt_owned;
/* own[iy * nx + ix] for tiles th x tw at starts ys x xs */
void vkd_vt_owned_make(const int64_t *ys, int ny, const int64_t *xs, int nx, int64_t th, int64_t tw,
                       vkd_vt_owned *own);

/* A tile's activation kept on the host between segments: fp16 bits when the device
 * stores fp16 (lossless: the values are fp16 already; half the host memory), else fp32. */
typedef struct vkd_vt_hbuf {
    void *p;
} vkd_vt_hbuf;
float vkd_vt_hget(const vkd_vt_hbuf *b, bool half, size_t i);
void vkd_vt_hset(vkd_vt_hbuf *b, bool half, size_t i, float v);
/* t (n values) -> *b (reallocated), through tmp (n floats) */
vkd_result vkd_vt_download(vkd_device *d, const vkd_tensor *t, bool half, vkd_vt_hbuf *b, float *tmp);
/* *b -> t, through tmp */
vkd_result vkd_vt_upload(vkd_device *d, const vkd_tensor *t, bool half, const vkd_vt_hbuf *b, float *tmp);

/* One recording: its graph, the norms it lets the caller feed, inputs and output. */
typedef struct vkd_vt_rec {
    vkd_graph g;
    vkd_gn_capture gn;
    vkd_tensor in, in2, out;
} vkd_vt_rec;
/* Zero *rc and open its pool (planned when pool_bytes > 0) and command buffer; with
 * external_gn its norms read the statistics the caller writes (vkd_vt_sync_stats). */
vkd_result vkd_vt_rec_begin(vkd_device *d, vkd_wstore *ws, vkd_dtype dt, uint64_t pool_bytes, bool external_gn,
                            vkd_vt_rec *rc);
/* g's error, else the command buffer ended */
vkd_result vkd_vt_rec_end(vkd_vt_rec *rc);
void vkd_vt_rec_free(vkd_device *d, vkd_vt_rec *rc);

/* Whole-image group-norm statistics of one activation held per tile (v[t]: [sh*sw, c]
 * with sh = scale * th: scale pixels of it per latent pixel), each tile counting only
 * the pixels it owns, written as the finals of the recording's one group norm for
 * every tile's replay. */
vkd_result vkd_vt_sync_stats(vkd_device *d, vkd_vt_rec *rc, const vkd_vt_hbuf *v, bool half, const vkd_vt_owned *own,
                             int ntiles, int64_t scale, int64_t sw, int64_t c);

#endif
