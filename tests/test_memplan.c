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
 *    and a second image on the same context still works (the UNet comes back). */
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
#include "pipeline/memplan.h"
#include "pipeline/vae_decode.h"
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

static uint64_t real_vae_pool(vkd_device *d, vkd_wstore *ws, vkd_dtype dt, const vkd_model_config *cfg, int64_t h,
                              int64_t w)
{
    vkd_graph g = {.d = d, .ws = ws, .dt = dt};
    vkd_pool_create(d, &g.pool);
    vkd_cmd_create(d, &g.c);
    vkd_cmd_begin(g.c);
    vkd_tensor z = g_new3(&g, 1, h * w, cfg->vae.z_channels);
    vkd_tensor out;
    vkd_vae_decode_record(&g, &cfg->vae, &z, h, w, &out);
    vkd_cmd_end(g.c);
    TEST_CHECK(g.err == VKD_OK, "real VAE recording: %s", vkd_result_str(g.err));
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
            uint64_t vae = real_vae_pool(d, ws, dt, &cfg, h, w);
            printf("%s batch %lld latent %lldx%lld: UNet activations plan %llu / real %llu bytes, weights plan %llu / "
                   "uploaded %llu; VAE activations plan %llu / real %llu\n",
                   label, (long long)b, (long long)h, (long long)w, (unsigned long long)p.a_unet,
                   (unsigned long long)unet, (unsigned long long)p.w_unet, (unsigned long long)wbytes,
                   (unsigned long long)p.a_vae_whole, (unsigned long long)vae);
            TEST_CHECK(p.a_unet == unet, "%s: UNet activation plan %llu != recorded pool peak %llu", label,
                       (unsigned long long)p.a_unet, (unsigned long long)unet);
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
static void on_log(vkd_log_level lvl, const char *msg, void *user)
{
    (void)user;
    if (lvl == VKD_LOG_ERROR)
        snprintf(last_error, sizeof last_error, "%s", msg);
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

int main(void)
{
    test_tile_starts();
    test_groupnorm_external();
    test_plan_matches_recording(test_data_path("tiny-sd1.safetensors"), "tiny SD1");
    test_plan_matches_recording(test_data_path("tiny-sdxl.safetensors"), "tiny SDXL"); /* y, label_emb */
    test_plan_matches_recording(test_source_path("weights/shapes.safetensors"), "shapes");
    test_tiled_decode();
    test_budgets();
    return test_finish();
}
