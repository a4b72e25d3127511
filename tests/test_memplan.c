/* The pre-flight memory plan and the tiled VAE decode (issue 6).
 *
 * 1. The dry run's activation figure equals, byte for byte, the peak the real
 *    recording reaches in its pool (the denoise stage at batch 1 and 2, VAE decoder), and its
 *    weight figure the bytes the real recording uploads: the plan follows the code.
 * 2. Tile placement covers every latent pixel, the last tile flush with the edge.
 * 3. Through the public API with the shipped model: a decode in one tile equals the
 *    whole decode exactly; a tiled decode stays close to it (PSNR printed);
 *    a budget below the UNet's need is refused before allocating, with a message; a
 *    budget between the UNet's need and the whole decode frees the UNet and tiles,
 *    and a second image on the same context still works (the UNet comes back).
 * 4. Tiled VAE encode (issue 21) on tiny-sd1's encoder: in one tile (through the
 *    segments) it equals the whole encode to rounding, in several tiles it stays within
 *    1e-3 relative error of it (printed); the plan's figures equal what the recordings
 *    allocate, whole and tiled; a budget below the whole encode picks tiles that fit. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "io/layout.h"
#include "models/detect.h"
#include "models/graph.h"
#include "models/unet.h"
#include "models/vae.h"
#include "models/wstore.h"
#include "ops/groupnorm.h"
#include "pipeline/denoise_stage.h"
#include "pipeline/encode_stage.h"
#include "pipeline/memplan.h"
#include "pipeline/vae_decode.h"
#include "pipeline/vae_encode.h"
#include "vk/memory.h"
#include "vkdiff.h"

/* ---- 1: plan vs real recording ---------------------------------------------------- */

/* the denoise stage's recording, as a generation makes it (inputs, conversions, UNet) */
static uint64_t real_unet_pool(vkd_device *d, vkd_wstore *ws, vkd_dtype dt, const vkd_model_config *cfg, int64_t b,
                               int64_t h, int64_t w, uint64_t *weights)
{
    vkd_pipe p = {.d = d, .ws = ws, .dt = dt, .cfg = *cfg};
    vkd_denoise_stage *s = NULL;
    uint64_t w0 = vkd_wstore_device_bytes(ws), peak = 0;
    vkd_result r = vkd_denoise_stage_create(&p, &s);
    if (!r)
        r = vkd_denoise_stage_prepare(s, b, h, w, 77, 0);
    TEST_CHECK(r == VKD_OK, "real UNet recording: %s", vkd_result_str(r));
    *weights = vkd_wstore_device_bytes(ws) - w0;
    if (!r)
        peak = vkd_denoise_stage_pool_peak(s);
    vkd_denoise_stage_destroy(s);
    return peak;
}

/* the VAE decoder's recording at latent h x w, or (encoder) its encoder's at image h x w */
static uint64_t real_vae_pool(vkd_device *d, vkd_wstore *ws, vkd_dtype dt, const vkd_model_config *cfg, int64_t h,
                              int64_t w, bool encoder)
{
    vkd_graph g = {.d = d, .ws = ws, .dt = dt};
    vkd_pool_create(d, &g.pool);
    vkd_cmd_create(d, &g.c);
    vkd_cmd_begin(g.c);
    vkd_tensor z = g_new3(&g, 1, h * w, encoder ? 3 : cfg->vae.z_channels);
    vkd_tensor out;
    if (encoder)
        vkd_vae_encode_record(&g, &cfg->vae, &z, h, w, &out);
    else
        vkd_vae_decode_record(&g, &cfg->vae, &z, h, w, &out);
    vkd_cmd_end(g.c);
    TEST_CHECK(g.err == VKD_OK, "real VAE %s recording: %s", encoder ? "encoder" : "decoder", vkd_result_str(g.err));
    vkd_memory_stats st;
    vkd_pool_stats_get(g.pool, &st);
    vkd_cmd_destroy(g.c);
    vkd_pool_destroy(d, g.pool);
    return st.peak_allocated;
}

static void test_plan_matches_recording(const char *model, const char *label)
{
    vkd_device *d = test_device_open(0);
    if (!d)
        return;
    vkd_weights *wt = NULL;
    vkd_model_config cfg;
    vkd_wstore *ws = NULL;
    TEST_CHECK(vkd_weights_open(model, NULL, &wt) == VKD_OK, "open %s", model);
    TEST_CHECK(wt && vkd_model_detect(wt, &cfg, NULL, 0) == VKD_OK, "detect %s", model);
    vkd_dtype dt = d->use_f16 ? VKD_F16 : VKD_F32;
    if (wt && vkd_wstore_create(d, wt, dt, &ws) == VKD_OK) {
        static const int64_t sizes[][3] = {{1, 8, 8}, {2, 16, 8}, {2, 8, 24}};
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            int64_t b = sizes[i][0], h = sizes[i][1], w = sizes[i][2];
            vkd_memplan p;
            vkd_memplan_in in = {.d = d, .ws = ws, .dt = dt, .cfg = &cfg, .h = h, .w = w, .batch = b, .ctx_len = 77,
                                 .budget = 1ull << 40};
            TEST_CHECK(vkd_memplan_make(&in, &p) == VKD_OK, "plan");
            TEST_CHECK(vkd_wstore_device_bytes(ws) == 0 || i > 0, "the dry run uploaded weights");
            uint64_t wbytes = 0;
            uint64_t unet = real_unet_pool(d, ws, dt, &cfg, b, h, w, &wbytes);
            uint64_t vae = real_vae_pool(d, ws, dt, &cfg, h, w, false);
            printf("%s batch %lld latent %lldx%lld: UNet activations plan %llu / real %llu bytes, weights plan %llu / "
                   "uploaded %llu; VAE activations plan %llu / real %llu\n",
                   label, (long long)b, (long long)h, (long long)w, (unsigned long long)p.a_unet,
                   (unsigned long long)unet, (unsigned long long)p.w_unet, (unsigned long long)wbytes,
                   (unsigned long long)p.a_vae_whole, (unsigned long long)vae);
            /* the plan = the recording's peak + the room kept for its temporaries */
            TEST_CHECK(p.a_unet - p.r_unet == unet, "%s: UNet activation plan %llu (- %llu kept) != recorded pool peak %llu",
                       label, (unsigned long long)p.a_unet, (unsigned long long)p.r_unet, (unsigned long long)unet);
            TEST_CHECK(p.a_vae_whole == vae, "%s: VAE activation plan %llu != recorded pool peak %llu", label,
                       (unsigned long long)p.a_vae_whole, (unsigned long long)vae);
            if (i == 0) /* the first recording uploads every UNet weight */
                TEST_CHECK(wbytes == p.w_unet,
                           "%s: UNet weight plan %llu vs uploaded %llu", label, (unsigned long long)p.w_unet,
                           (unsigned long long)wbytes);
            TEST_CHECK(p.fits && p.keep_unet && p.vae_tile == 0, "a huge budget keeps everything, no tiles");
        }
        vkd_wstore_destroy(ws);
    }
    vkd_weights_close(wt);
    test_device_close(d);
}

/* ---- 1b: group norm with statistics from outside --------------------------------- */

static void test_groupnorm_external(void)
{
    vkd_device *d = test_device_open(0);
    if (!d)
        return;
    vkd_dtype dts[2];
    int ndt = test_dtypes(d, dts);
    test_rng rng = {test_seed()};
    for (int k = 0; k < ndt; k++) {
        vkd_dtype dt = dts[k];
        int64_t xs[3] = {1, 300, 64}, cs[1] = {64};
        float *x = malloc(300 * 64 * sizeof *x), *gb = malloc(64 * sizeof *gb);
        test_fill_normal(&rng, x, 300 * 64, 2.0);
        test_round_to(dt, x, 300 * 64);
        for (int i = 0; i < 64; i++)
            gb[i] = 1.0f;
        vkd_tensor tx = test_tensor_from(d, dt, 3, xs, x), tg = test_tensor_from(d, dt, 1, cs, gb);
        for (int i = 0; i < 64; i++)
            gb[i] = 0.0f;
        vkd_tensor tb = test_tensor_from(d, dt, 1, cs, gb);
        vkd_tensor o1 = test_tensor_poisoned(d, dt, 3, xs), o2 = test_tensor_poisoned(d, dt, 3, xs);
        vkd_cmd *c = NULL;
        vkd_cmd_create(d, &c);
        int64_t numel = 0;
        vkd_groupnorm_layout lay;
        vkd_op_groupnorm_scratch_numel(c, &tx, 32, &numel);
        vkd_op_groupnorm_layout(c, &tx, 32, &lay);
        int64_t fin = lay.finals;
        TEST_CHECK(lay.numel == numel && fin > 0 && fin < numel, "the layout's scratch is the scratch asked for");
        int64_t ss[1] = {numel};
        vkd_tensor s1, s2;
        vkd_tensor_create(d, VKD_F32, 1, ss, &s1);
        vkd_tensor_create(d, VKD_F32, 1, ss, &s2);
        vkd_cmd_begin(c);
        vkd_result r = vkd_op_groupnorm_ex(c, &tx, 32, 1e-6f, &tg, &tb, true, &s1, &o1, false);
        vkd_cmd_end(c);
        r = r ? r : vkd_cmd_submit_wait(c);
        /* the statistics COMBINE wrote, given to the external path through a fresh scratch */
        float *sb = calloc((size_t)numel, sizeof *sb);
        vkd_tensor_download_f32(d, &s1, sb);
        memset(sb, 0, (size_t)fin * sizeof *sb);
        vkd_tensor_upload_f32(d, &s2, sb);
        vkd_cmd_destroy(c);
        vkd_cmd_create(d, &c);
        vkd_cmd_begin(c);
        r = r ? r : vkd_op_groupnorm_ex(c, &tx, 32, 1e-6f, &tg, &tb, true, &s2, &o2, true);
        vkd_cmd_end(c);
        r = r ? r : vkd_cmd_submit_wait(c);
        TEST_CHECK(r == VKD_OK, "groupnorm external: %s", vkd_result_str(r));
        float *a = malloc(300 * 64 * sizeof *a), *b = malloc(300 * 64 * sizeof *b);
        vkd_tensor_download_f32(d, &o1, a);
        vkd_tensor_download_f32(d, &o2, b);
        TEST_CHECK(memcmp(a, b, 300 * 64 * sizeof *a) == 0, "%s: external statistics give another output",
                   vkd_dtype_suffix(dt));
        vkd_cmd_destroy(c);
        vkd_tensor_destroy(d, &tx), vkd_tensor_destroy(d, &tg), vkd_tensor_destroy(d, &tb);
        vkd_tensor_destroy(d, &o1), vkd_tensor_destroy(d, &o2), vkd_tensor_destroy(d, &s1);
        vkd_tensor_destroy(d, &s2);
        free(x), free(gb), free(sb), free(a), free(b);
    }
    test_device_close(d);
}

/* ---- 2: tile placement ------------------------------------------------------------ */

static void test_tile_starts(void)
{
    for (int len = 1; len <= 80; len++)
        for (int tile = 8; tile <= 32; tile += 4)
            for (int ov = 0; ov < tile / 2; ov += 3) {
                int64_t s[64];
                int n = vkd_tile_starts(len, tile, ov, s, 64);
                int t = len < tile ? len : tile;
                bool ok = n >= 1 && s[0] == 0 && s[n - 1] + t == len;
                for (int i = 1; i < n && ok; i++)
                    ok = s[i] > s[i - 1] && s[i - 1] + t - s[i] >= ov; /* covered, overlapping by >= ov */
                TEST_CHECK(ok, "tiles of %d over %d, overlap %d: %d tiles", tile, len, ov, n);
            }
}

/* ---- 3: through the public API -------------------------------------------------- */

static char last_error[512];
static int enc_tiles_logged; /* the tiled encode's tile count, from its log line */
static void on_log(vkd_log_level lvl, const char *msg, void *user)
{
    (void)user;
    if (lvl == VKD_LOG_ERROR)
        snprintf(last_error, sizeof last_error, "%s", msg);
    if (strncmp(msg, "VAE encoder: ", 13) == 0)
        enc_tiles_logged = atoi(msg + 13);
}

static vkd_ctx *open_shipped(uint32_t budget_mb)
{
    vkd_ctx_params cp;
    vkd_ctx_params_init(&cp);
    cp.model_path = test_source_path("weights/shapes.safetensors");
    cp.tokenizer_path = test_source_path("weights/tokenizer");
    cp.validation = getenv("VKD_NO_VALIDATION") == NULL;
    cp.memory_budget_mb = budget_mb;
    cp.log = on_log;
    cp.log_level = VKD_LOG_INFO; /* the tiled encode says its tiles (on_log) */
    vkd_ctx *ctx = NULL;
    vkd_result r = vkd_ctx_create(&cp, &ctx);
    TEST_CHECK(r == VKD_OK, "create: %s", vkd_result_str(r));
    test_pin_driver_libs();
    test_ctx_validation_loaded(ctx, cp.validation);
    return ctx;
}

static vkd_result render(vkd_ctx *ctx, int size, int tiling, int tile, uint8_t *rgb, vkd_timings *t)
{
    vkd_gen_params gp;
    vkd_gen_params_init(&gp);
    gp.prompt = "a large red circle on a blue background";
    gp.width = gp.height = size;
    gp.steps = 2, gp.cfg = 1, gp.seed = 3, gp.sampler = "euler";
    gp.vae_tiling = tiling, gp.vae_tile = tile;
    vkd_result r = vkd_generate(ctx, &gp, rgb);
    vkd_last_timings(ctx, t);
    return r;
}

/* img2img from init (size x size RGB8) */
static vkd_result render_img2img(vkd_ctx *ctx, int size, int tiling, int tile, const uint8_t *init, uint8_t *rgb)
{
    vkd_gen_params gp;
    vkd_gen_params_init(&gp);
    gp.prompt = "a large red circle on a blue background";
    gp.width = gp.height = size;
    gp.steps = 2, gp.cfg = 1, gp.seed = 5, gp.sampler = "euler";
    gp.init_image = init, gp.init_width = gp.init_height = size, gp.strength = 0.5;
    gp.vae_tiling = tiling, gp.vae_tile = tile;
    return vkd_generate(ctx, &gp, rgb);
}

static double psnr(const uint8_t *a, const uint8_t *b, size_t n)
{
    double se = 0;
    for (size_t i = 0; i < n; i++)
        se += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return se == 0 ? INFINITY : 10 * log10(255.0 * 255.0 / (se / (double)n));
}

static void test_tiled_decode(void)
{
    vkd_ctx *ctx = open_shipped(0);
    if (!ctx)
        return;
    size_t n = 128 * 128 * 3;
    uint8_t *whole = malloc(n), *one = malloc(n), *tiled = malloc(n);
    vkd_timings t;
    TEST_CHECK(render(ctx, 128, VKD_TILING_OFF, 0, whole, &t) == VKD_OK && t.vae_tiles == 1, "whole decode");
    TEST_CHECK(render(ctx, 128, VKD_TILING_ON, 128, one, &t) == VKD_OK && t.vae_tiles == 1, "one-tile decode");
    TEST_CHECK(memcmp(whole, one, n) == 0, "a decode in one tile differs from the whole decode");
    TEST_CHECK(render(ctx, 128, VKD_TILING_ON, 64, tiled, &t) == VKD_OK, "tiled decode");
    double p = psnr(whole, tiled, n);
    printf("128x128, 64-pixel tiles (%d tiles, 16-pixel overlap) vs whole decode: PSNR %.1f dB\n", t.vae_tiles, p);
    TEST_CHECK(t.vae_tiles == 9, "expected 3x3 tiles, got %d", t.vae_tiles);
    /* Issue 6: >= 35 dB. The norms get the whole image's statistics segment by segment
     * (vae_decode.c); what is left is the tiles' zero padding at their inner edges.
     * Measured: 40.7 dB (17.9 with statistics gathered pass by pass, which lag the
     * layers before them). */
    TEST_CHECK(p >= 35.0, "tiled decode PSNR %.1f dB (issue 6 asks >= 35)", p);
    free(whole), free(one), free(tiled);
    /* a larger image in 128-pixel tiles */
    n = 256 * 256 * 3;
    whole = malloc(n), tiled = malloc(n);
    TEST_CHECK(render(ctx, 256, VKD_TILING_OFF, 0, whole, &t) == VKD_OK && t.vae_tiles == 1, "whole decode 256");
    TEST_CHECK(render(ctx, 256, VKD_TILING_ON, 128, tiled, &t) == VKD_OK && t.vae_tiles > 1, "tiled decode 256");
    p = psnr(whole, tiled, n);
    printf("256x256, 128-pixel tiles (%d tiles) vs whole decode: PSNR %.1f dB\n", t.vae_tiles, p);
    TEST_CHECK(p >= 35.0, "tiled decode 256 PSNR %.1f dB (issue 6 asks >= 35)", p);
    free(whole), free(tiled);
    /* img2img through the API with the encoder tiled too (128-pixel tiles: 5 x 5 for the
     * encoder, whose overlap is at least twice its reach) */
    uint8_t *init = malloc(n);
    whole = malloc(n), tiled = malloc(n);
    for (int y = 0; y < 256; y++)
        for (int x = 0; x < 256; x++) {
            bool in = (x - 100) * (x - 100) + (y - 140) * (y - 140) < 60 * 60;
            uint8_t *px = init + (y * 256 + x) * 3;
            px[0] = in ? 220 : 30, px[1] = (uint8_t)(in ? 40 : x / 4), px[2] = in ? 40 : 200;
        }
    TEST_CHECK(render_img2img(ctx, 256, VKD_TILING_OFF, 0, init, whole) == VKD_OK, "img2img whole (%s)", last_error);
    enc_tiles_logged = 0;
    TEST_CHECK(render_img2img(ctx, 256, VKD_TILING_ON, 128, init, tiled) == VKD_OK, "img2img tiled (%s)", last_error);
    TEST_CHECK(enc_tiles_logged > 1, "the encoder ran in %d tiles", enc_tiles_logged);
    p = psnr(whole, tiled, n);
    printf("img2img 256x256, encode (%d tiles) and decode in 128-pixel tiles vs whole: PSNR %.1f dB\n",
           enc_tiles_logged, p);
    TEST_CHECK(p >= 35.0, "tiled img2img PSNR %.1f dB", p);
    free(init), free(whole), free(tiled);
    vkd_ctx_free(ctx);
}

static void test_budgets(void)
{
    /* far too small: refused before allocating, with the reason */
    vkd_ctx *ctx = open_shipped(1);
    if (ctx) {
        uint8_t *rgb = malloc(64 * 64 * 3);
        vkd_timings t;
        last_error[0] = 0;
        vkd_result r = render(ctx, 64, VKD_TILING_AUTO, 0, rgb, &t);
        TEST_CHECK(r == VKD_ERR_OUT_OF_DEVICE_MEMORY, "1 MiB budget: got %s", vkd_result_str(r));
        TEST_CHECK(strstr(last_error, "not enough device memory") && strstr(last_error, "UNet"),
                   "refusal names the stage: '%s'", last_error);
        free(rgb);
        vkd_ctx_free(ctx);
    }
    /* 256x256 with the shipped model: the UNet stage needs ~10 MiB, the whole decode
     * ~13 MiB; an 11 MiB budget frees the UNet before the VAE and decodes in tiles */
    ctx = open_shipped(11);
    if (ctx) {
        size_t n = 256 * 256 * 3;
        uint8_t *rgb = malloc(n);
        vkd_timings t;
        for (int k = 0; k < 2; k++) {
            vkd_result r = render(ctx, 256, VKD_TILING_AUTO, 0, rgb, &t);
            TEST_CHECK(r == VKD_OK, "11 MiB budget, image %d: %s (%s)", k, vkd_result_str(r), last_error);
            printf("11 MiB budget, 256x256, image %d: %d VAE tiles, planned peak %.1f MiB, held peak %.1f MiB\n", k,
                   t.vae_tiles, t.planned_peak_bytes / 1048576.0, t.peak_bytes / 1048576.0);
            TEST_CHECK(t.vae_tiles > 1, "the plan should tile the decode (got %d tiles)", t.vae_tiles);
            TEST_CHECK(t.planned_peak_bytes <= (11u << 20), "planned peak over the budget");
            /* what the allocator really held: the plan plus rounding (each block in whole
             * MiB: weights, activation pool, its overflow, statistics: ~5 MiB on this 10 MiB
             * model, 14.8 measured), not whole spare blocks (24 MiB before weight blocks
             * were sized to their stage and a planned pool grew by an eighth) */
            TEST_CHECK(t.peak_bytes <= t.planned_peak_bytes + t.planned_peak_bytes / 16 + (5u << 20),
                       "held peak %.1f MiB vs planned %.1f MiB", t.peak_bytes / 1048576.0,
                       t.planned_peak_bytes / 1048576.0);
        }
        free(rgb);
        vkd_ctx_free(ctx);
    }
}


/* ---- 4: tiled VAE encode ----------------------------------------------------------- */

/* moments [hw, 2z] -> mean, logvar [z, hw] as the encode stage gives them (logvar clamped) */
static void split_moments(const float *m, int64_t hw, int64_t zc, float *mean, float *logvar)
{
    for (int64_t px = 0; px < hw; px++)
        for (int64_t c = 0; c < zc; c++) {
            float lv = m[px * 2 * zc + zc + c];
            mean[c * hw + px] = m[px * 2 * zc + c];
            logvar[c * hw + px] = lv < -30.0f ? -30.0f : lv > 20.0f ? 20.0f : lv;
        }
}

/* relative L2 error of b against a, and the largest difference relative to a's largest value */
static double rel_err(const float *a, const float *b, size_t n, double *rel_max)
{
    double se = 0, sa = 0, dm = 0, am = 0;
    for (size_t i = 0; i < n; i++) {
        double e = (double)a[i] - b[i];
        se += e * e, sa += (double)a[i] * a[i];
        dm = fabs(e) > dm ? fabs(e) : dm;
        am = fabs(a[i]) > am ? fabs(a[i]) : am;
    }
    *rel_max = dm / am;
    return sqrt(se / sa);
}

static void test_tiled_encode(void)
{
    vkd_device *d = test_device_open(0);
    if (!d)
        return;
    vkd_weights *wt = NULL;
    vkd_model_config cfg;
    TEST_CHECK(vkd_weights_open(test_data_path("tiny-sd1.safetensors"), NULL, &wt) == VKD_OK, "open tiny-sd1");
    TEST_CHECK(wt && vkd_model_detect(wt, &cfg, NULL, 0) == VKD_OK && cfg.vae.has_encoder, "detect tiny-sd1");
    /* 128 x 192 pixels: latent 16 x 24; tiles of 14 latent pixels overlap by 8 (twice the
     * tiled part's reach, vkd_vae_encode_overlap): 2 x 3 tiles */
    int64_t h = 16, w = 24, H = 8 * h, W = 8 * w, zc = cfg.vae.z_channels, n = zc * h * w;
    float *img = malloc((size_t)(H * W * 3) * sizeof *img);
    float *mean[3], *logvar[3], *mom = malloc((size_t)(2 * n) * sizeof *mom);
    for (int k = 0; k < 3; k++)
        mean[k] = malloc((size_t)n * sizeof **mean), logvar[k] = malloc((size_t)n * sizeof **logvar);
    test_rng rng = {test_seed()};
    for (int64_t y = 0; y < H; y++) /* shapes and texture: statistics that differ across the image */
        for (int64_t x = 0; x < W; x++)
            for (int c = 0; c < 3; c++) {
                double v = 0.6 * sin(0.05 * (double)x * (c + 1) + 0.11 * (double)y) + (x > W / 2 && y < H / 3 ? 0.3 : -0.2) +
                           0.1 * test_rng_normal(&rng);
                img[(y * W + x) * 3 + c] = (float)(v > 1 ? 1 : v < -1 ? -1 : v);
            }
    vkd_dtype dts[2];
    int ndt = test_dtypes(d, dts);
    for (int k = 0; k < ndt && wt; k++) {
        vkd_dtype dt = dts[k];
        const char *sfx = vkd_dtype_suffix(dt);
        vkd_wstore *ws = NULL;
        if (vkd_wstore_create(d, wt, dt, &ws) != VKD_OK)
            continue;
        vkd_pipe p = {.d = d, .w = wt, .ws = ws, .dt = dt, .cfg = cfg};
        vkd_vae_encode_stats es;
        /* whole (tile 0, and a tile covering the image: the same path) */
        TEST_CHECK(vkd_encode_stage_run(&p, img, H, W, 0, mean[0], logvar[0]) == VKD_OK, "%s whole encode", sfx);
        TEST_CHECK(vkd_encode_stage_run(&p, img, H, W, 64, mean[1], logvar[1]) == VKD_OK, "%s covering tile", sfx);
        TEST_CHECK(!memcmp(mean[0], mean[1], (size_t)n * sizeof **mean) &&
                       !memcmp(logvar[0], logvar[1], (size_t)n * sizeof **logvar),
                   "%s: a tile covering the image is the whole encode", sfx);
        /* one tile through the segments: the norms' statistics merged on the host */
        vkd_result r = vkd_vae_encode_tiled(d, ws, dt, &cfg.vae, img, h, w, 64, 0, mom, &es);
        TEST_CHECK(r == VKD_OK && es.tiles == 1, "%s one-tile segmented encode: %s", sfx, vkd_result_str(r));
        split_moments(mom, h * w, zc, mean[1], logvar[1]);
        double m1, m2, e1 = rel_err(mean[0], mean[1], (size_t)n, &m1), e2 = rel_err(logvar[0], logvar[1], (size_t)n, &m2);
        printf("%s encode, one tile through the segments vs whole: relative error mean %.2e (max %.2e), logvar %.2e "
               "(max %.2e)\n", sfx, e1, m1, e2, m2);
        double bar = dt == VKD_F32 ? 1e-5 : 5e-3; /* rounding: statistics in double vs the GPU's fp32 */
        TEST_CHECK(e1 <= bar && e2 <= bar, "%s one tile vs whole: %.2e %.2e", sfx, e1, e2);
        /* 2 x 3 tiles, through the stage */
        TEST_CHECK(vkd_encode_stage_run(&p, img, H, W, 14, mean[2], logvar[2]) == VKD_OK, "%s tiled encode", sfx);
        e1 = rel_err(mean[0], mean[2], (size_t)n, &m1), e2 = rel_err(logvar[0], logvar[2], (size_t)n, &m2);
        printf("%s encode, 112-pixel tiles (overlap 64 px) vs whole: relative error mean %.2e (max %.2e), logvar "
               "%.2e (max %.2e)\n", sfx, e1, m1, e2, m2);
        /* measured: the same as in one tile (1.2e-6 fp32, 1.6e-3 fp16): the overlap keeps
         * every core out of the padding's reach, so the tiles differ by rounding only */
        bar = dt == VKD_F32 ? 1e-3 : 1e-2;
        TEST_CHECK(e1 <= bar && e2 <= bar, "%s tiled vs whole: %.2e %.2e (bar %.0e)", sfx, e1, e2, bar);
        r = vkd_vae_encode_tiled(d, ws, dt, &cfg.vae, img, h, w, 14, 0, mom, &es);
        TEST_CHECK(r == VKD_OK && es.tiles == 6, "%s: 2 x 3 tiles, got %d", sfx, es.tiles);
        /* the plan against the recordings */
        vkd_memplan_in in = {.d = d, .ws = ws, .dt = dt, .cfg = &cfg, .h = h, .w = w, .batch = 1, .ctx_len = 77,
                             .budget = 1ull << 40, .encode = true};
        uint64_t wwhole, awhole, wtile, atile;
        TEST_CHECK(vkd_encode_stage_request(&in, 0, &wwhole, &awhole) == VKD_OK &&
                       vkd_encode_stage_request(&in, 14, &wtile, &atile) == VKD_OK,
                   "%s encoder requests", sfx);
        uint64_t real = real_vae_pool(d, ws, dt, &cfg, H, W, true);
        printf("%s encoder activations: whole plan %llu / real %llu, 112-px tiles plan %llu / real %llu; weights "
               "whole %llu, tiled %llu\n",
               sfx, (unsigned long long)awhole, (unsigned long long)real, (unsigned long long)atile,
               (unsigned long long)es.pool_peak, (unsigned long long)wwhole, (unsigned long long)wtile);
        TEST_CHECK(awhole == real, "%s whole encoder plan %llu != recorded %llu", sfx, (unsigned long long)awhole,
                   (unsigned long long)real);
        TEST_CHECK(atile == es.pool_peak, "%s tiled encoder plan %llu != recorded %llu", sfx,
                   (unsigned long long)atile, (unsigned long long)es.pool_peak);
        TEST_CHECK(atile < awhole && wtile == wwhole, "%s tiles need less (weights the same)", sfx);
        /* the plan: a budget the whole encode does not fit picks tiles that do */
        vkd_memplan pl;
        TEST_CHECK(vkd_memplan_make(&in, &pl) == VKD_OK && pl.enc_tile == 0 && pl.a_enc == awhole,
                   "%s a huge budget encodes whole", sfx);
        in.budget = wwhole + awhole - 1;
        TEST_CHECK(vkd_memplan_make(&in, &pl) == VKD_OK && pl.enc_tile > 0 && pl.w_enc + pl.a_enc <= in.budget &&
                       pl.a_enc_whole == awhole,
                   "%s a budget below the whole encode tiles it (tile %d)", sfx, pl.enc_tile);
        in.tiling = VKD_TILING_OFF;
        TEST_CHECK(vkd_memplan_make(&in, &pl) == VKD_OK && pl.enc_tile == 0, "%s tiling off: whole", sfx);
        vkd_wstore_destroy(ws);
    }
    for (int k = 0; k < 3; k++)
        free(mean[k]), free(logvar[k]);
    free(img), free(mom);
    vkd_weights_close(wt);
    test_device_close(d);
}

int main(void)
{

    test_tile_starts();
    test_groupnorm_external();
    test_plan_matches_recording(test_data_path("tiny-sd1.safetensors"), "tiny SD1");
    test_plan_matches_recording(test_data_path("tiny-sdxl.safetensors"), "tiny SDXL"); /* y, label_emb */
    test_plan_matches_recording(test_source_path("weights/shapes.safetensors"), "shapes");
    test_tiled_decode();
    test_budgets();
    test_tiled_encode();
    return test_finish();
}
