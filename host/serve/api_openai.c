/* The OpenAI images API, /v1/... (platform.openai.com/docs/api-reference/images): images
 * as b64_json only (a server that keeps no files has no URL to give), errors in
 * OpenAI's {"error": {message, type, param, code}} shape, which its clients parse. */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve/http.h"
#include "serve/models.h"
#include "serve/request.h"

/* "WxH" -> sizes; -1 when it is not that shape */
static int parse_size(const char *s, long long *w, long long *h)
{
    char *end;
    errno = 0;
    long long a = strtoll(s, &end, 10);
    if (end == s || *end != 'x' || errno)
        return -1;
    const char *p = end + 1;
    long long b = strtoll(p, &end, 10);
    if (end == p || *end || errno || a <= 0 || b <= 0)
        return -1;
    *w = a, *h = b;
    return 0;
}

/* OpenAI's model names (dall-e-2, dall-e-3, gpt-image-1) that clients send by default
 * mean the server's current model. */
static const char *model_name(const char *m)
{
    return m && (!strncmp(m, "dall-e", 6) || !strncmp(m, "gpt-image", 9)) ? NULL : m;
}

/* The shipped shapes model draws 64x64 pictures; others default to 512x512 (SD1/SD2). */
static void default_size(vkd_server *srv, vkd_gen_req *r)
{
    char *path = NULL, *file = NULL;
    vkd_req_err e;
    if (vkd_models_resolve(srv, r->model, &path, &file, &e) == 0 && !strncmp(file, "shapes", 6))
        r->width = r->height = 64;
    free(path), free(file);
}

static vkd_reply run(vkd_server *srv, vkd_http_req *hr, vkd_job *job)
{
    int rc = vkd_http_run_job(hr, job);
    vkd_reply rep;
    if (rc)
        rep = vkd_reply_openai_error(rc, rc == 429 ? "the queue is full: try again shortly" : "the server is shutting down",
                                     NULL);
    else if (job->timed_out)
        rep = vkd_reply_openai_error(504, "the job ran past --job-timeout", NULL);
    else if (job->result != VKD_OK && !(job->result == VKD_ERR_CANCELLED && job->interrupted))
        rep = vkd_reply_openai_error(job->result == VKD_ERR_CANCELLED ? 503 : job->result < 200 ? 400 : 500,
                                     job->error[0] ? job->error : vkd_result_str(job->result), NULL);
    else {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "created", (double)time(NULL));
        cJSON *data = cJSON_AddArrayToObject(o, "data");
        for (int k = 0; k < job->n_done; k++) {
            cJSON *d = cJSON_CreateObject();
            cJSON_AddItemToObject(d, "b64_json", cJSON_CreateStringReference(job->images[k].png_b64));
            cJSON_AddStringToObject(d, "revised_prompt", job->prompt);
            cJSON_AddItemToArray(data, d);
        }
        rep = vkd_reply_json(200, o);
    }
    if (rc == 429)
        rep.retry_after = 2;
    vkd_job_release(srv->jobs, job);
    return rep;
}

int vkd_openai_parse(vkd_server *srv, const char *body, size_t len, vkd_job **job, vkd_req_err *e)
{
    *job = NULL;
    cJSON *j = vkd_json_parse_body(body, len, e);
    if (!j)
        return -1;
    vkd_gen_req r;
    vkd_gen_req_init(&r, srv);
    const char *size = NULL, *format = NULL, *model = NULL;
    if (vkd_json_str(j, "prompt", &r.prompt, e) < 0 || vkd_json_int(j, "n", 1, 1 << 20, &r.count, e) < 0 ||
        vkd_json_str(j, "size", &size, e) < 0 || vkd_json_str(j, "response_format", &format, e) < 0 ||
        vkd_json_str(j, "model", &model, e) < 0 || vkd_json_str(j, "negative_prompt", &r.negative, e) < 0 ||
        vkd_json_int(j, "steps", 1, 1 << 20, &r.steps, e) < 0 || vkd_json_num(j, "cfg_scale", 0, 100, &r.cfg, e) < 0 ||
        vkd_json_int(j, "seed", -1, 0xffffffffffffll, &r.seed, e) < 0 ||
        vkd_json_str(j, "sampler", &r.sampler, e) < 0 || vkd_json_str(j, "scheduler", &r.scheduler, e) < 0) {
        /* e says why */
    } else if (!r.prompt || !*r.prompt) {
        vkd_req_fail(e, 400, "prompt", "'prompt' is required");
    } else if (format && strcmp(format, "b64_json")) {
        vkd_req_fail(e, 400, "response_format", "response_format: only b64_json (this server keeps no files to link to)");
    } else {
        r.model = model_name(model);
        default_size(srv, &r);
        if (size && strcmp(size, "auto") && parse_size(size, &r.width, &r.height))
            vkd_req_fail(e, 400, "size", "size must be \"WIDTHxHEIGHT\", e.g. \"512x512\"");
        else
            *job = vkd_gen_req_job(srv, &r, e);
    }
    vkd_gen_req_free(&r);
    cJSON_Delete(j);
    return *job ? 0 : -1;
}

static vkd_reply generations(vkd_server *srv, vkd_http_req *hr)
{
    size_t len;
    const char *body = vkd_http_body(hr, &len);
    vkd_req_err e = {0};
    vkd_job *job;
    if (vkd_openai_parse(srv, body, len, &job, &e))
        return vkd_reply_openai_error(e.status, e.msg, e.param);
    return run(srv, hr, job);
}

/* A form field as a number; 0 absent, 1 read, -1 not a number in [lo, hi] */
static int form_num(vkd_http_req *hr, const char *name, double lo, double hi, double *out, vkd_req_err *e)
{
    const char *v = vkd_http_form(hr, name, NULL);
    if (!v)
        return 0;
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (end == v || *end || errno || !(d >= lo && d <= hi))
        return vkd_req_fail(e, 400, name, "'%s' must be a number in [%g, %g]", name, lo, hi);
    *out = d;
    return 1;
}

static int form_int(vkd_http_req *hr, const char *name, long long lo, long long hi, long long *out, vkd_req_err *e)
{
    double d = 0;
    int rc = form_num(hr, name, (double)lo, (double)hi, &d, e);
    if (rc > 0) {
        if (d != (double)(long long)d)
            return vkd_req_fail(e, 400, name, "'%s' must be a whole number", name);
        *out = (long long)d;
    }
    return rc;
}

/* Decodes a form file into img (channels as vkd_cli_image_decode) */
static int form_image(vkd_http_req *hr, const char *name, const char *alt, int channels, vkd_cli_image *img,
                      vkd_req_err *e)
{
    size_t n = 0;
    const char *data = vkd_http_form(hr, name, &n);
    if (!data)
        data = vkd_http_form(hr, alt, &n);
    if (!data)
        return 0;
    char err[256];
    if (vkd_cli_image_decode((const uint8_t *)data, n, name, channels, 16 << 20, img, err, sizeof err))
        return vkd_req_fail(e, 400, name, "%s", err);
    return 1;
}

static vkd_reply edits(vkd_server *srv, vkd_http_req *hr)
{
    vkd_gen_req r;
    vkd_gen_req_init(&r, srv);
    vkd_req_err e = {0};
    vkd_reply rep;
    r.prompt = vkd_http_form(hr, "prompt", NULL);
    r.negative = vkd_http_form(hr, "negative_prompt", NULL);
    r.sampler = vkd_http_form(hr, "sampler", NULL);
    r.scheduler = vkd_http_form(hr, "scheduler", NULL);
    const char *size = vkd_http_form(hr, "size", NULL), *format = vkd_http_form(hr, "response_format", NULL);
    r.model = model_name(vkd_http_form(hr, "model", NULL));
    int got_image = form_image(hr, "image", "image[]", 3, &r.init, &e);
    int got_mask = got_image < 0 ? 0 : form_image(hr, "mask", "mask[]", 2, &r.mask, &e);
    r.strength = got_mask > 0 ? 1.0 : 0.75; /* a masked edit repaints the masked area from noise */
    if (got_image < 0 || got_mask < 0 || form_int(hr, "n", 1, 1 << 20, &r.count, &e) < 0 ||
        form_int(hr, "steps", 1, 1 << 20, &r.steps, &e) < 0 || form_num(hr, "cfg_scale", 0, 100, &r.cfg, &e) < 0 ||
        form_int(hr, "seed", -1, 0xffffffffffffll, &r.seed, &e) < 0 ||
        form_num(hr, "strength", 0, 1, &r.strength, &e) < 0) {
        rep = vkd_reply_openai_error(e.status, e.msg, e.param);
    } else if (!got_image) {
        rep = vkd_reply_openai_error(400, "'image' is required (a PNG or JPEG file)", "image");
    } else if (!r.prompt || !*r.prompt) {
        rep = vkd_reply_openai_error(400, "'prompt' is required", "prompt");
    } else if (format && strcmp(format, "b64_json")) {
        rep = vkd_reply_openai_error(400, "response_format: only b64_json", "response_format");
    } else {
        /* the size: as asked, else the image's to a multiple of 8 */
        r.width = (r.init.width + 4) / 8 * 8, r.height = (r.init.height + 4) / 8 * 8;
        vkd_job *job = NULL;
        if (size && strcmp(size, "auto") && parse_size(size, &r.width, &r.height))
            rep = vkd_reply_openai_error(400, "size must be \"WIDTHxHEIGHT\"", "size");
        else if (!(job = vkd_gen_req_job(srv, &r, &e)))
            rep = vkd_reply_openai_error(e.status, e.msg, e.param);
        else
            rep = run(srv, hr, job);
    }
    vkd_gen_req_free(&r);
    return rep;
}

static vkd_reply models(vkd_server *srv)
{
    vkd_model_entry *list;
    int n;
    if (vkd_models_list(srv->cfg.model_dir, VKD_LIST_CHECKPOINTS, &list, &n))
        return vkd_reply_openai_error(500, "cannot read the model folder", NULL);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(o, "data");
    for (int i = 0; i < n; i++) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "id", list[i].stem);
        cJSON_AddStringToObject(m, "object", "model");
        cJSON_AddNumberToObject(m, "created", 0);
        cJSON_AddStringToObject(m, "owned_by", "vkdiff");
        cJSON_AddItemToArray(data, m);
    }
    free(list);
    return vkd_reply_json(200, o);
}

vkd_reply vkd_openai_route(vkd_server *srv, vkd_http_req *r, const char *method, const char *path)
{
    int get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
    if (!strcmp(path, "/v1/images/generations"))
        return post ? generations(srv, r) : vkd_reply_no_route(1, "POST", 1);
    if (!strcmp(path, "/v1/images/edits"))
        return post ? edits(srv, r) : vkd_reply_no_route(1, "POST", 1);
    if (!strcmp(path, "/v1/models"))
        return get ? models(srv) : vkd_reply_no_route(1, "GET", 1);
    return vkd_reply_no_route(0, NULL, 1);
}
