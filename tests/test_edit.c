/* Image input against the PyTorch oracle (tools/oracle/make_edit_goldens.py,
 * tests/data/golden-edit-<family>.safetensors), fp32 and fp16, for SD1, SD2 and SDXL:
 *   - the VAE encoder stage: the posterior's mean and (clamped) logvar
 *   - img2img with every k-diffusion sampler at strength 0.6 (A1111's cut: 3 of 4
 *     steps) and at strength 1.0, through the public path (an RGB8 image: the golden's
 *     image lies on the 8-bit grid)
 *   - inpainting with a 9-channel checkpoint (tiny-<family>-inpaint): the UNet on
 *     [latent, mask, masked latent], and whole runs (euler, euler_a)
 *   - inpainting with an ordinary checkpoint (the per-step blend), euler and euler_a
 *   (SD2's img2img and blend on tiny-sd2-edit, a v-prediction checkpoint with an encoder)
 *   - paste-back: every pixel outside the mask equals the input exactly
 *   - refusals: a mask without an image, an inpainting checkpoint without a mask, ddim
 * Thresholds (issue 4): 1e-4 / 1e-2 per stage, PSNR 40 / 30 dB per image. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "golden.h"
#include "harness.h"
#include "models/unet.h"
#include "pipeline/encode_stage.h"
#include "pipeline/hires.h"
#include "pipeline/outpaint.h"
#include "vkdiff_dev.h"

typedef struct family {
    const char *name, *model, *inpaint, *golden;
    const char *prediction; /* of the ordinary checkpoint (img2img, inp4); the inpainting ones predict eps */
    bool enc_from_inpaint;  /* the golden's encoder outputs are the inpainting checkpoint's VAE */
} family;

static const family fams[] = {
    {"SD1", "tiny-sd1.safetensors", "tiny-sd1-inpaint.safetensors", "golden-edit-sd1.safetensors", "eps", false},
    /* SD2: tiny-sd2 has no encoder; tiny-sd2-edit is the same config with one, v-prediction */
    {"SD2", "tiny-sd2-edit.safetensors", "tiny-sd2-inpaint.safetensors", "golden-edit-sd2.safetensors", "v", true},
    {"SDXL", "tiny-sdxl.safetensors", "tiny-sdxl-inpaint.safetensors", "golden-edit-sdxl.safetensors", "eps", false},
};

/* what the runs share: the golden's conditioning and image as the API takes them */
typedef struct inputs {
    float *ctx, *y;       /* [2, L, C] rows cond, uncond; SDXL y [2, adm] */
    int64_t L, C, adm;
    uint8_t *rgb;         /* i2i_image_in as RGB8 [H*W*3] */
    float *img;           /* the same in [-1, 1], channels-last */
    int H, W;
} inputs;

static int load_inputs(golden *g, inputs *in)
{
    memset(in, 0, sizeof *in);
    const vkd_st_tensor *ct = vkd_st_find(g->f, "context"), *it = vkd_st_find(g->f, "i2i_image_in");
    const vkd_st_tensor *yt = vkd_st_find(g->f, "y");
    if (!ct || !it) {
        TEST_CHECK(0, "context and i2i_image_in present");
        return 0;
    }
    in->L = ct->shape[1], in->C = ct->shape[2], in->adm = yt ? yt->shape[1] : 0;
    in->H = (int)it->shape[2], in->W = (int)it->shape[3];
    in->ctx = gload(g, "context", NULL);
    in->y = yt ? gload(g, "y", NULL) : NULL;
    float *nchw = gload(g, "i2i_image_in", NULL);
    size_t px = (size_t)in->H * in->W;
    in->img = malloc(px * 3 * sizeof *in->img);
    in->rgb = malloc(px * 3);
    nchw_to_nhwc(nchw, in->img, 1, 3, (int64_t)px);
    size_t off_grid = 0;
    for (size_t i = 0; i < px * 3; i++) {
        long k = lrint((in->img[i] + 1.0) * 127.5);
        in->rgb[i] = (uint8_t)(k < 0 ? 0 : k > 255 ? 255 : k);
        off_grid += 2.0f * ((float)in->rgb[i] / 255.0f) - 1.0f != in->img[i];
    }
    TEST_CHECK(off_grid == 0, "i2i_image_in: %zu values off the 8-bit grid", off_grid);
    free(nchw);
    return in->ctx != NULL;
}

static void free_inputs(inputs *in) { free(in->ctx), free(in->y), free(in->rgb), free(in->img); }

/* a {0, 1} golden mask [1, 1, H, W] as grey8 */
static uint8_t *mask8(golden *g, const char *name, size_t px)
{
    float *m = gload(g, name, NULL);
    uint8_t *out = malloc(px);
    for (size_t i = 0; m && i < px; i++)
        out[i] = m[i] >= 0.5f ? 255 : 0;
    free(m);
    return out;
}

static const char *prediction = "eps"; /* the checkpoint under test's */

static void base_params(vkd_gen_params *gp, const inputs *in, const char *sampler, double strength)
{
    vkd_gen_params_init(gp);
    gp->prompt = "";
    gp->steps = 4, gp->cfg = 7, gp->seed = 1234, gp->sampler = sampler, gp->schedule = "discrete";
    gp->prediction = prediction;
    gp->init_image = in->rgb, gp->init_width = in->W, gp->init_height = in->H;
    gp->strength = strength;
    gp->mask_blur = 0;
}

static vkd_txt2img_io io_of(const inputs *in)
{
    vkd_txt2img_io io = {.cond = in->ctx, .uncond = in->ctx + in->L * in->C, .ctx_len = in->L,
                         .y_cond = in->y, .y_uncond = in->y ? in->y + in->adm : NULL};
    return io;
}

static void test_encoder(vkd_ctx *ctx, golden *g, const inputs *in, vkd_dtype dt, const char *fam)
{
    vkd_pipe *p = vkd_ctx_pipe(ctx);
    size_t n;
    float *rm = gload(g, "i2i_enc_mean", &n), *rl = gload(g, "i2i_enc_logvar", NULL);
    float *mean = malloc(n * sizeof *mean), *logvar = malloc(n * sizeof *logvar);
    vkd_result r = vkd_encode_stage_run(p, in->img, in->H, in->W, 0, mean, logvar);
    TEST_CHECK(r == VKD_OK, "%s encoder: %s", fam, vkd_result_str(r));
    char what[96];
    if (!r && rm && rl) {
        snprintf(what, sizeof what, "%s VAE encoder -> mean", fam);
        expect_rel(vkd_ctx_pipe(ctx)->d, what, dt, mean, rm, n);
        snprintf(what, sizeof what, "%s VAE encoder -> logvar", fam);
        expect_rel(vkd_ctx_pipe(ctx)->d, what, dt, logvar, rl, n);
    }
    free(rm), free(rl), free(mean), free(logvar);
}

static void test_img2img(vkd_ctx *ctx, golden *g, const inputs *in, vkd_dtype dt, const char *fam)
{
    static const char *const samplers[][2] = {
        {"euler", "euler"}, {"euler_a", "euler_a"}, {"heun", "heun"}, {"dpm++2m", "dpmpp2m"}, {"lcm", "lcm"}};
    vkd_txt2img_io io = io_of(in);
    char prefix[64], what[96];
    for (size_t k = 0; k < sizeof samplers / sizeof samplers[0]; k++) {
        vkd_gen_params gp;
        base_params(&gp, in, samplers[k][0], 0.6);
        snprintf(prefix, sizeof prefix, "i2i_%s", samplers[k][1]);
        snprintf(what, sizeof what, "%s img2img %s, strength 0.6, latent", fam, samplers[k][0]);
        golden_run(ctx, g, dt, &gp, &io, prefix, what);
    }
    vkd_gen_params gp;
    base_params(&gp, in, "euler", 1.0);
    snprintf(what, sizeof what, "%s img2img euler, strength 1.0, latent", fam);
    golden_run(ctx, g, dt, &gp, &io, "i2i_s1_euler", what);
}

/* inpainting runs with the golden's mask; paste_check: every unmasked pixel is the input's */
static void test_inpaint(vkd_ctx *ctx, golden *g, const inputs *in, vkd_dtype dt, const char *fam, const char *kind,
                         bool paste_check)
{
    size_t px = (size_t)in->H * in->W;
    char name[64], what[96];
    snprintf(name, sizeof name, "%s_mask", kind);
    uint8_t *m = mask8(g, name, px);
    vkd_txt2img_io io = io_of(in);
    const char *samplers[2] = {"euler", "euler_a"};
    for (int k = 0; k < 2; k++) {
        vkd_gen_params gp;
        base_params(&gp, in, samplers[k], 1.0);
        gp.mask = m, gp.mask_width = in->W, gp.mask_height = in->H;
        snprintf(name, sizeof name, "%s_%s", kind, samplers[k]);
        snprintf(what, sizeof what, "%s inpainting (%s) %s, latent", fam, kind, samplers[k]);
        golden_run(ctx, g, dt, &gp, &io, name, what);
    }
    if (paste_check) { /* the public path: RGB8 out, the input pasted back outside the mask */
        vkd_gen_params gp;
        base_params(&gp, in, "euler", 1.0);
        gp.mask = m, gp.mask_width = in->W, gp.mask_height = in->H;
        gp.width = in->W, gp.height = in->H;
        uint8_t *rgb = malloc(px * 3);
        vkd_result r = vkd_generate_io(ctx, &gp, &io, rgb);
        TEST_CHECK(r == VKD_OK, "%s paste-back run: %s", fam, vkd_result_str(r));
        size_t kept = 0, same = 0, changed = 0;
        for (size_t i = 0; !r && i < px; i++)
            for (int c = 0; c < 3; c++) {
                if (!m[i])
                    kept++, same += rgb[i * 3 + c] == in->rgb[i * 3 + c];
                else
                    changed += rgb[i * 3 + c] != in->rgb[i * 3 + c];
            }
        printf("%s %s paste-back: %zu of %zu unmasked values equal the input; %zu masked values changed\n",
               same == kept && changed ? "ok  " : "FAIL", fam, same, kept, changed);
        TEST_CHECK(!r && same == kept && kept > 0, "%s paste-back: %zu of %zu unmasked values kept", fam, same, kept);
        TEST_CHECK(!r && changed > 0, "%s inpainting changed nothing in the mask", fam);
        free(rgb);
    }
    free(m);
}

/* the 9-channel UNet alone: inp9_unet_x [2, 9, h, w] at inp9_unet_t on the context */
static void test_unet9(vkd_ctx *ctx, golden *g, const inputs *in, vkd_dtype dt, const char *fam)
{
    vkd_pipe *p = vkd_ctx_pipe(ctx);
    const vkd_st_tensor *xt = vkd_st_find(g->f, "inp9_unet_x");
    if (!xt) {
        TEST_CHECK(0, "inp9_unet_x present");
        return;
    }
    int64_t B = xt->shape[0], C = xt->shape[1], h = xt->shape[2], w = xt->shape[3];
    float *x = gload(g, "inp9_unet_x", NULL), *t = gload(g, "inp9_unet_t", NULL), *ref = gload(g, "inp9_unet_out", NULL);
    float *xin = malloc((size_t)(B * C * h * w) * sizeof *xin), *want = malloc((size_t)(B * 4 * h * w) * sizeof *want);
    stage s;
    if (x && t && ref && stage_begin(&s, p->d, p->ws, p->dt)) {
        vkd_tensor tx, tt, tc, ty;
        int64_t xs[3] = {B, h * w, C}, ts[1] = {B}, cs[3] = {B, in->L, in->C}, ys[2] = {B, in->adm};
        float tv[2] = {t[0], t[0]};
        nchw_to_nhwc(x, xin, B, C, h * w);
        vkd_result r = vkd_tensor_create_in(p->d, s.g.pool, p->dt, 3, xs, &tx);
        if (!r)
            r = vkd_tensor_create_in(p->d, s.g.pool, VKD_F32, 1, ts, &tt);
        if (!r)
            r = vkd_tensor_create_in(p->d, s.g.pool, p->dt, 3, cs, &tc);
        if (!r && in->y)
            r = vkd_tensor_create_in(p->d, s.g.pool, p->dt, 2, ys, &ty);
        if (!r)
            r = vkd_tensor_upload_f32(p->d, &tx, xin);
        if (!r)
            r = vkd_tensor_upload_f32(p->d, &tt, tv);
        if (!r)
            r = vkd_tensor_upload_f32(p->d, &tc, in->ctx);
        if (!r && in->y)
            r = vkd_tensor_upload_f32(p->d, &ty, in->y);
        if (!r)
            r = vkd_unet_record(&s.g, &p->cfg.unet, &tx, h, w, &tt, &tc, in->y ? &ty : NULL, &s.out);
        char what[96];
        snprintf(what, sizeof what, "%s inpainting UNet (9 channels) t=%g", fam, t[0]);
        float *got = stage_finish(&s, r, what);
        nchw_to_nhwc(ref, want, B, 4, h * w);
        if (got)
            expect_rel(vkd_ctx_pipe(ctx)->d, what, dt, got, want, (size_t)(B * 4 * h * w));
        free(got);
    }
    free(x), free(t), free(ref), free(xin), free(want);
}

/* what must be refused, with the reason logged */
static void test_refusals(vkd_ctx *ordinary, vkd_ctx *inpainting, const inputs *in)
{
    uint8_t rgb[64 * 48 * 3] = {0}, m[64 * 48] = {0};
    vkd_gen_params gp;
    vkd_gen_params_init(&gp);
    gp.prompt = "x", gp.width = 64, gp.height = 48, gp.steps = 1;
    gp.mask = m, gp.mask_width = 64, gp.mask_height = 48;
    TEST_CHECK(vkd_generate(ordinary, &gp, rgb) == VKD_ERR_INVALID_ARG, "a mask without an image is refused");
    gp.mask = NULL;
    gp.init_image = in->rgb, gp.init_width = in->W, gp.init_height = in->H, gp.sampler = "ddim";
    TEST_CHECK(vkd_generate(ordinary, &gp, rgb) == VKD_ERR_INVALID_ARG, "ddim with an init image is refused");
    gp.sampler = "euler", gp.strength = 1.5;
    TEST_CHECK(vkd_generate(ordinary, &gp, rgb) == VKD_ERR_INVALID_ARG, "strength 1.5 is refused");
    gp.strength = 0.5;
    TEST_CHECK(vkd_generate(inpainting, &gp, rgb) == VKD_ERR_INVALID_ARG,
               "an inpainting checkpoint without a mask is refused");
}


/* The hires fix's latent upscale against torch's F.interpolate(bilinear,
 * align_corners=False) written out in double, at 2x and at an odd ratio; and the
 * outpainting canvas's edge replication. */
static void test_resamplers(void)
{
    const int64_t c = 2, h = 5, w = 7;
    const int64_t sizes[2][2] = {{10, 14}, {8, 11}};
    float x[2 * 5 * 7];
    for (int i = 0; i < c * h * w; i++)
        x[i] = (float)sin(0.37 * i) * 2.0f;
    for (int k = 0; k < 2; k++) {
        int64_t oh = sizes[k][0], ow = sizes[k][1];
        float *got = malloc((size_t)(c * oh * ow) * sizeof *got);
        double worst = 0;
        vkd_latent_bilinear(x, c, h, w, got, oh, ow);
        for (int64_t ch = 0; ch < c; ch++)
            for (int64_t y = 0; y < oh; y++)
                for (int64_t xx = 0; xx < ow; xx++) {
                    double sy = fmax(0, ((double)y + 0.5) * h / oh - 0.5), sx = fmax(0, ((double)xx + 0.5) * w / ow - 0.5);
                    int64_t y0 = (int64_t)sy, x0 = (int64_t)sx, y1 = y0 < h - 1 ? y0 + 1 : y0, x1 = x0 < w - 1 ? x0 + 1 : x0;
                    double ly = sy - y0, lx = sx - x0;
                    const float *p = x + ch * h * w;
                    double ref = (1 - ly) * ((1 - lx) * p[y0 * w + x0] + lx * p[y0 * w + x1]) +
                                 ly * ((1 - lx) * p[y1 * w + x0] + lx * p[y1 * w + x1]);
                    worst = fmax(worst, fabs(got[(ch * oh + y) * ow + xx] - ref));
                }
        printf("%s hires latent upscale %lldx%lld -> %lldx%lld: max |error| %.2g (max 1e-5)\n",
               worst <= 1e-5 ? "ok  " : "FAIL", (long long)h, (long long)w, (long long)oh, (long long)ow, worst);
        TEST_CHECK(worst <= 1e-5, "bilinear upscale: error %g", worst);
        free(got);
    }
    uint8_t src[2 * 3] = {10, 20, 30, 40, 50, 60}, dst[4 * 6 * 3]; /* 2x1 RGB onto 4x... */
    vkd_pad_replicate(src, 2, 1, 3, 1, 2, 1, 3, dst);            /* -> 4 x 6 */
    int bad = 0;
    for (int y = 0; y < 6; y++)
        for (int xx = 0; xx < 4; xx++) {
            int sx = xx - 1 < 0 ? 0 : xx - 1 > 1 ? 1 : xx - 1;
            bad += memcmp(dst + (y * 4 + xx) * 3, src + sx * 3, 3) != 0;
        }
    TEST_CHECK(bad == 0, "outpainting canvas: %d pixels not their nearest edge's", bad);
}

int main(void)
{
    test_resamplers();
    for (size_t f = 0; f < sizeof fams / sizeof fams[0]; f++) {
        const family *fm = &fams[f];
        golden g = {0};
        vkd_result r = vkd_st_open(test_data_path(fm->golden), &g.f);
        TEST_CHECK(r == VKD_OK, "%s: %s", fm->golden, vkd_result_str(r));
        inputs in;
        if (r || !load_inputs(&g, &in)) {
            vkd_st_close(g.f);
            continue;
        }
        char path[2][2048];
        snprintf(path[0], sizeof path[0], "%.2000s", test_data_path(fm->model));
        snprintf(path[1], sizeof path[1], "%.2000s", test_data_path(fm->inpaint));
        vkd_dtype dts[2] = {VKD_F32, VKD_F16};
        for (int i = 0; i < 2; i++) {
            vkd_ctx *ord = golden_ctx(path[0], dts[i]);
            vkd_ctx *inp = golden_ctx(path[1], dts[i]);
            if (!inp || !ord) {
                vkd_ctx_free(ord), vkd_ctx_free(inp);
                continue;
            }
            vkd_dtype dt = vkd_ctx_pipe(inp)->dt; /* fp16 only where the device stores it */
            if (i == 1 && dt != VKD_F16) {
                vkd_ctx_free(ord), vkd_ctx_free(inp);
                break;
            }
            test_encoder(fm->enc_from_inpaint ? inp : ord, &g, &in, dt, fm->name);
            prediction = fm->prediction;
            test_img2img(ord, &g, &in, dt, fm->name);
            test_inpaint(ord, &g, &in, dt, fm->name, "inp4", i == 0);
            prediction = "eps";
            test_unet9(inp, &g, &in, dt, fm->name);
            test_inpaint(inp, &g, &in, dt, fm->name, "inp9", false);
            if (i == 0)
                test_refusals(ord, inp, &in);
            TEST_CHECK(vkd_ctx_validation_errors(ord) == 0 && vkd_ctx_validation_errors(inp) == 0,
                       "%s: validation errors", fm->name);
            vkd_ctx_free(ord), vkd_ctx_free(inp);
        }
        free_inputs(&in);
        vkd_st_close(g.f);
    }
    return test_finish();
}
