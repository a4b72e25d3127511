#define _POSIX_C_SOURCE 200809L
/* The public API alone (host/vkdiff.h), as an app's JNI layer would drive it: create
 * a context, generate into a caller-owned buffer, cancel through the progress
 * callback, free. Run under AddressSanitizer in CI, so a leak on the cancel path fails. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>

#include "harness.h"
#include "vkdiff.h"

/* One context per thread, generating at the same time. */
typedef struct worker {
    vkd_ctx_params cp;
    vkd_gen_params gp;
    uint8_t *rgb;
    vkd_result r;
} worker;

static void *worker_main(void *arg)
{
    worker *w = arg;
    vkd_ctx *ctx = NULL;
    w->r = vkd_ctx_create(&w->cp, &ctx);
    if (!w->r)
        w->r = vkd_generate(ctx, &w->gp, w->rgb);
    vkd_ctx_free(ctx);
    return NULL;
}

typedef struct progress_log {
    int calls, last_step, cancel_at;
} progress_log;

static int on_progress(void *user, int step, int total)
{
    progress_log *p = user;
    (void)total;
    p->calls++;
    p->last_step = step;
    return p->cancel_at > 0 && step >= p->cancel_at;
}

static int log_lines;
static void on_log(vkd_log_level level, const char *msg, void *user)
{
    (void)msg;
    (void)user;
    if (level <= VKD_LOG_WARN)
        log_lines++;
}

int main(void)
{
    vkd_ctx_params cp;
    vkd_ctx_params_init(&cp);
    cp.model_path = test_data_path("tiny-sd1.safetensors");
    cp.tokenizer_path = test_shared_path("clip/bpe_simple_vocab_16e6.txt.gz");
    cp.validation = getenv("VKD_NO_VALIDATION") == NULL;
    cp.log = on_log;
    vkd_ctx *ctx = NULL;
    vkd_result r = vkd_ctx_create(&cp, &ctx);
    TEST_CHECK(r == VKD_OK, "create: %s", vkd_result_str(r));
    if (r)
        return test_finish();
    test_pin_driver_libs();
    test_ctx_validation_loaded(ctx, cp.validation);

    vkd_gen_params gp;
    vkd_gen_params_init(&gp);
    gp.prompt = "a (red:1.2) circle on a blue background";
    gp.width = 64, gp.height = 48, gp.steps = 6, gp.seed = 7, gp.sampler = "euler";
    progress_log pl = {0};
    gp.progress = on_progress, gp.progress_user = &pl;
    uint8_t *rgb = malloc(vkd_image_bytes(&gp));
    r = vkd_generate(ctx, &gp, rgb);
    TEST_CHECK(r == VKD_OK, "generate: %s", vkd_result_str(r));
    TEST_CHECK(pl.calls == 6 && pl.last_step == 6, "progress called once per step (%d calls, last %d)", pl.calls,
               pl.last_step);
    TEST_CHECK(gp.seed_used == 7, "seed_used reports the seed");

    /* cancel after the second step: generation stops within one step */
    vkd_timings t;
    pl = (progress_log){.cancel_at = 2};
    r = vkd_generate(ctx, &gp, rgb);
    vkd_last_timings(ctx, &t);
    TEST_CHECK(r == VKD_ERR_CANCELLED, "cancel returns VKD_ERR_CANCELLED (%s)", vkd_result_str(r));
    TEST_CHECK(pl.calls == 2 && t.unet_evals <= 2, "stopped within one step (%d progress calls, %d UNet evals)",
               pl.calls, t.unet_evals);

    /* the context still works after a cancel, and the same seed gives the same image */
    uint8_t *again = malloc(vkd_image_bytes(&gp));
    pl = (progress_log){0};
    r = vkd_generate(ctx, &gp, again);
    TEST_CHECK(r == VKD_OK && memcmp(rgb, again, vkd_image_bytes(&gp)) == 0,
               "generation after a cancel works and is deterministic (%s)", vkd_result_str(r));

    /* bad parameters are refused before any GPU work */
    gp.width = 65;
    TEST_CHECK(vkd_generate(ctx, &gp, rgb) == VKD_ERR_INVALID_ARG, "width not a multiple of 8 refused");
    gp.width = 64, gp.sampler = "nonsense";
    TEST_CHECK(vkd_generate(ctx, &gp, rgb) == VKD_ERR_INVALID_ARG, "unknown sampler refused");
    TEST_CHECK(log_lines >= 2, "errors reach the log callback (%d lines)", log_lines);

    vkd_ctx_free(ctx);
    vkd_ctx_free(NULL);

    /* the same model from an open descriptor and byte range, as Android hands out assets,
     * with the tokenizer text in memory */
    {
        FILE *mf = fopen(test_data_path("tiny-sd1.safetensors"), "rb");
        TEST_CHECK(mf != NULL, "open model");
        if (mf) {
            fseek(mf, 0, SEEK_END);
            long len = ftell(mf);
            vkd_ctx_params fp = cp;
            fp.model_path = NULL;
            fp.model_fd = fileno(mf);
            fp.model_fd_offset = 0;
            fp.model_fd_length = (size_t)len;
            vkd_ctx *fctx = NULL;
            r = vkd_ctx_create(&fp, &fctx);
            fclose(mf); /* the caller may close it once the context exists */
            TEST_CHECK(r == VKD_OK, "context from a descriptor: %s", vkd_result_str(r));
            if (!r) {
                uint8_t *img = malloc(vkd_image_bytes(&gp));
                gp.sampler = "euler";
                pl = (progress_log){0};
                r = vkd_generate(fctx, &gp, img);
                TEST_CHECK(r == VKD_OK && memcmp(img, again, vkd_image_bytes(&gp)) == 0,
                           "the descriptor-loaded model draws the same image (%s)", vkd_result_str(r));
                free(img);
            }
            vkd_ctx_free(fctx);
        }
    }

    /* two contexts on two threads at once: each draws the same image as above */
    {
        worker w[2];
        pthread_t th[2];
        for (int i = 0; i < 2; i++) {
            w[i].cp = cp;
            w[i].cp.log = NULL; /* each thread keeps its own (default) sink */
            w[i].gp = gp;
            w[i].gp.progress = NULL;
            w[i].rgb = malloc(vkd_image_bytes(&gp));
            pthread_create(&th[i], NULL, worker_main, &w[i]);
        }
        for (int i = 0; i < 2; i++) {
            pthread_join(th[i], NULL);
            TEST_CHECK(w[i].r == VKD_OK && memcmp(w[i].rgb, again, vkd_image_bytes(&gp)) == 0,
                       "thread %d: own context, same image (%s)", i, vkd_result_str(w[i].r));
            free(w[i].rgb);
        }
    }

    /* a missing model file: an error value, no crash */
    free(rgb);
    free(again);
    cp.model_path = "/nonexistent/model.safetensors";
    ctx = NULL;
    r = vkd_ctx_create(&cp, &ctx);
    TEST_CHECK(r != VKD_OK && ctx == NULL, "missing model refused (%s)", vkd_result_str(r));
    return test_finish();
}
