/* libFuzzer target: the server's request parsers (host/serve/) on arbitrary bodies: A1111's
 * txt2img and img2img (JSON with base64 images inside), the OpenAI generations body, and
 * the base64 decoder. Each either makes a job or refuses with an HTTP status in 400..599
 * and a message; nothing runs on a device (no job is submitted). The model folder is a
 * temporary one holding an empty "m.safetensors", so model names resolve or are refused
 * as on a real server. */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serve/b64.h"
#include "serve/http.h"

static vkd_server g_srv;

static void setup(void)
{
    static char dir[] = "/tmp/vkd_fuzz_serve_XXXXXX", model[64];
    if (!mkdtemp(dir))
        abort();
    snprintf(model, sizeof model, "%s/m.safetensors", dir);
    FILE *f = fopen(model, "wb");
    if (!f)
        abort();
    fclose(f);
    vkd_serve_cfg *c = &g_srv.cfg;
    c->model = model, c->model_dir = dir, c->lora_dir = dir, c->listen = "127.0.0.1";
    c->queue_max = 4, c->max_body = 1 << 20, c->max_side = 256, c->max_steps = 50, c->max_images = 4;
    c->max_prompt = 4096, c->read_timeout_s = 5, c->job_timeout_s = 60, c->n_devices = 1;
    pthread_mutex_init(&g_srv.lock, NULL);
    g_srv.opts.clip_skip = 1, g_srv.opts.preview_every = 1;
    snprintf(g_srv.opts.rng, sizeof g_srv.opts.rng, "cpu");
    snprintf(g_srv.opts.model, sizeof g_srv.opts.model, "m.safetensors");
}

static void check(int rc, vkd_job *job, const vkd_req_err *e)
{
    if (rc == 0 && !job)
        abort();
    if (rc != 0 && (job || e->status < 400 || e->status > 599 || !e->msg[0]))
        abort(); /* a refusal says why, with an error status */
    if (job && (job->count < 1 || job->gp.width > 256 || job->gp.steps > 50))
        abort(); /* the limits held */
    vkd_job_release(NULL, job);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_srv.cfg.model)
        setup();
    char *body = malloc(size + 1);
    if (!body)
        return 0;
    memcpy(body, data, size);
    body[size] = 0;
    for (int img2img = 0; img2img < 2; img2img++) {
        vkd_req_err e = {0};
        cJSON *req = NULL;
        vkd_job *job = NULL;
        int rc = vkd_a1111_parse(&g_srv, body, size, img2img, &req, &job, &e);
        if ((rc == 0) != (req != NULL))
            abort();
        cJSON_Delete(req);
        check(rc, job, &e);
    }
    vkd_req_err e = {0};
    vkd_job *job = NULL;
    check(vkd_openai_parse(&g_srv, body, size, &job, &e), job, &e);
    uint8_t *bytes;
    size_t n;
    if (vkd_b64_decode(body, size, &bytes, &n) == 0) {
        char *again = vkd_b64_encode(bytes, n); /* what decodes encodes again */
        if (!again)
            abort();
        free(again);
        free(bytes);
    }
    free(body);
    return 0;
}
