/* Generation requests: typed fields, limits, the job (request.h). */
#define _POSIX_C_SOURCE 200809L
#include "serve/request.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/names.h"
#include "serve/b64.h"
#include "serve/models.h"

#define MAX_DEPTH 32 /* JSON nesting: A1111's requests nest 3 deep */

int vkd_req_fail(vkd_req_err *e, int status, const char *param, const char *fmt, ...)
{
    e->status = status;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return -1;
}

static const cJSON *field(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

int vkd_json_str(const cJSON *o, const char *name, const char **out, vkd_req_err *e)
{
    const cJSON *v = field(o, name);
    if (!v)
        return 0;
    if (!cJSON_IsString(v))
        return vkd_req_fail(e, 400, name, "'%s' must be a string", name);
    *out = v->valuestring;
    return 1;
}

int vkd_json_num(const cJSON *o, const char *name, double lo, double hi, double *out, vkd_req_err *e)
{
    const cJSON *v = field(o, name);
    if (!v)
        return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return vkd_req_fail(e, 400, name, "'%s' must be a number", name);
    if (v->valuedouble < lo || v->valuedouble > hi)
        return vkd_req_fail(e, 400, name, "'%s' must be in [%g, %g]", name, lo, hi);
    *out = v->valuedouble;
    return 1;
}

int vkd_json_int(const cJSON *o, const char *name, long long lo, long long hi, long long *out, vkd_req_err *e)
{
    double d = 0;
    int rc = vkd_json_num(o, name, (double)lo, (double)hi, &d, e);
    if (rc <= 0)
        return rc;
    if (d != floor(d))
        return vkd_req_fail(e, 400, name, "'%s' must be a whole number", name);
    *out = (long long)d;
    return 1;
}

int vkd_json_bool(const cJSON *o, const char *name, bool *out, vkd_req_err *e)
{
    const cJSON *v = field(o, name);
    if (!v)
        return 0;
    if (!cJSON_IsBool(v))
        return vkd_req_fail(e, 400, name, "'%s' must be true or false", name);
    *out = cJSON_IsTrue(v);
    return 1;
}

cJSON *vkd_json_parse_body(const char *body, size_t len, vkd_req_err *e)
{
    /* the nesting measured first, outside strings: cJSON recurses per level */
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char c = body[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '{' || c == '[') {
            if (++depth > MAX_DEPTH) {
                vkd_req_fail(e, 400, NULL, "JSON nested deeper than %d levels", MAX_DEPTH);
                return NULL;
            }
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    /* cJSON ends a string at an escaped NUL: the name used would not be the name sent */
    for (size_t i = 0; i + 6 <= len; i++)
        if (body[i] == '\\' && !memcmp(body + i + 1, "u0000", 5)) {
            vkd_req_fail(e, 400, NULL, "NUL characters (\\u0000) are refused in strings");
            return NULL;
        }
    cJSON *j = cJSON_ParseWithLength(body, len);
    if (!j) {
        vkd_req_fail(e, 400, NULL, "the body is not valid JSON");
        return NULL;
    }
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        vkd_req_fail(e, 400, NULL, "the body must be a JSON object");
        return NULL;
    }
    return j;
}

void vkd_gen_req_init(vkd_gen_req *r, vkd_server *srv)
{
    memset(r, 0, sizeof *r);
    r->width = r->height = 512;
    r->steps = 20;
    r->cfg = 7;
    r->seed = -1;
    r->count = 1;
    r->strength = 0.75;
    r->mask_blur = 4;
    pthread_mutex_lock(&srv->lock);
    r->clip_skip = srv->opts.clip_skip;
    r->rng = !strcmp(srv->opts.rng, "cuda") ? "cuda" : "cpu";
    pthread_mutex_unlock(&srv->lock);
}

void vkd_gen_req_free(vkd_gen_req *r)
{
    vkd_cli_image_free(&r->init);
    vkd_cli_image_free(&r->mask);
}

int vkd_req_image_b64(const char *b64, int channels, const char *param, vkd_cli_image *img, vkd_req_err *e)
{
    uint8_t *bytes;
    size_t n;
    if (vkd_b64_decode(b64, strlen(b64), &bytes, &n))
        return vkd_req_fail(e, 400, param, "'%s' is not base64", param);
    char err[256];
    /* 16 Mpx at most: far above --max-side's images, far below what would exhaust memory */
    int rc = vkd_cli_image_decode(bytes, n, param, channels, 16 << 20, img, err, sizeof err);
    free(bytes);
    if (rc)
        return vkd_req_fail(e, 400, param, "%s", err);
    return 0;
}

static char *dup_or_fail(const char *s, int *failed)
{
    char *d = strdup(s ? s : "");
    if (!d)
        *failed = 1;
    return d;
}

vkd_job *vkd_gen_req_job(vkd_server *srv, vkd_gen_req *r, vkd_req_err *e)
{
    const vkd_serve_cfg *cfg = &srv->cfg;
    if (!r->prompt)
        r->prompt = "";
    if (strlen(r->prompt) > cfg->max_prompt || (r->negative && strlen(r->negative) > cfg->max_prompt)) {
        vkd_req_fail(e, 400, "prompt", "prompt longer than %zu bytes (--max-prompt)", cfg->max_prompt);
        return NULL;
    }
    if (r->width < 8 || r->height < 8 || r->width > cfg->max_side || r->height > cfg->max_side ||
        r->width % 8 || r->height % 8) {
        vkd_req_fail(e, 400, "width", "width and height must be multiples of 8 from 8 to %d (--max-side), not %lldx%lld",
                     cfg->max_side, r->width, r->height);
        return NULL;
    }
    if (r->hires_scale > 1 && (r->width * r->hires_scale > cfg->max_side || r->height * r->hires_scale > cfg->max_side)) {
        vkd_req_fail(e, 400, "hr_scale", "the hires fix's size is over %d (--max-side)", cfg->max_side);
        return NULL;
    }
    if (r->steps < 1 || r->steps > cfg->max_steps || r->hires_steps < 0 || r->hires_steps > cfg->max_steps) {
        vkd_req_fail(e, 400, "steps", "steps must be from 1 to %d (--max-steps)", cfg->max_steps);
        return NULL;
    }
    if (r->count < 1 || r->count > cfg->max_images) {
        vkd_req_fail(e, 400, "n", "from 1 to %d images a request (--max-images)", cfg->max_images);
        return NULL;
    }
    const char *sampler = "euler_a", *schedule = NULL;
    if (r->sampler && *r->sampler && vkd_sampler_lookup(r->sampler, &sampler, &schedule)) {
        vkd_req_fail(e, 400, "sampler_name", "unknown sampler '%.100s' (GET /sdapi/v1/samplers lists them)", r->sampler);
        return NULL;
    }
    /* a combined name ("DPM++ 2M Karras") sets the schedule unless one is given */
    if (!schedule || (r->scheduler && *r->scheduler && strcasecmp(r->scheduler, "automatic"))) {
        if (vkd_schedule_lookup(r->scheduler, sampler, &schedule)) {
            vkd_req_fail(e, 400, "scheduler", "unknown scheduler '%.100s' (GET /sdapi/v1/schedulers lists them)",
                         r->scheduler);
            return NULL;
        }
    }
    const char *upscale = "latent";
    if (r->hires_upscaler && *r->hires_upscaler) {
        if (!strncasecmp(r->hires_upscaler, "latent", 6))
            upscale = "latent";
        else if (!strcasecmp(r->hires_upscaler, "lanczos"))
            upscale = "lanczos";
        else {
            vkd_req_fail(e, 400, "hr_upscaler", "hr_upscaler '%.100s': Latent or Lanczos", r->hires_upscaler);
            return NULL;
        }
    }
    if (r->mask.pixels && !r->init.pixels) {
        vkd_req_fail(e, 400, "mask", "a mask needs an image to inpaint");
        return NULL;
    }
    vkd_job *job = vkd_job_new();
    if (!job) {
        vkd_req_fail(e, 500, NULL, "out of memory");
        return NULL;
    }
    if (vkd_models_resolve(srv, r->model, &job->model_path, &job->model_name, e)) {
        vkd_job_release(NULL, job);
        return NULL;
    }
    int failed = 0;
    job->prompt = dup_or_fail(r->prompt, &failed);
    job->negative = dup_or_fail(r->negative, &failed);
    if (r->task_id && *r->task_id)
        snprintf(job->id, sizeof job->id, "%s", r->task_id);
    vkd_gen_params *gp = &job->gp;
    gp->prompt = job->prompt, gp->negative = job->negative;
    gp->width = (int)r->width, gp->height = (int)r->height;
    gp->steps = (int)r->steps;
    gp->cfg = (float)r->cfg;
    gp->seed = r->seed;
    gp->sampler = sampler, gp->schedule = schedule;
    gp->rng = r->rng;
    gp->clip_skip = (int)r->clip_skip;
    gp->lora_dir = cfg->lora_dir;
    if (r->init.pixels) { /* the image's pixels move into the job */
        gp->init_image = job->init = r->init.pixels;
        gp->init_width = r->init.width, gp->init_height = r->init.height;
        r->init.pixels = NULL;
        gp->strength = r->strength;
        if (r->mask.pixels) {
            gp->mask = job->mask = r->mask.pixels;
            gp->mask_width = r->mask.width, gp->mask_height = r->mask.height;
            gp->mask_blur = (int)r->mask_blur;
            r->mask.pixels = NULL;
        }
    }
    if (r->hires_scale > 1) {
        gp->hires_scale = r->hires_scale;
        gp->hires_steps = (int)r->hires_steps;
        if (r->strength_set)
            gp->hires_strength = r->strength;
        gp->hires_upscale = upscale;
    }
    job->count = (int)r->count;
    job->deadline = vkd_serve_now() + cfg->job_timeout_s;
    if (failed) {
        vkd_job_release(NULL, job);
        vkd_req_fail(e, 500, NULL, "out of memory");
        return NULL;
    }
    if (vkd_gen_params_check(gp) != VKD_OK) {
        vkd_job_release(NULL, job);
        vkd_req_fail(e, 400, NULL, "these parameters are refused (the server's log says why)");
        return NULL;
    }
    return job;
}
