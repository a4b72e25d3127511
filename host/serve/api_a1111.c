/* A1111's API, /sdapi/v1/... (stable-diffusion-webui modules/api/api.py and models.py:
 * the request fields, and the response's images, parameters and info). */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/names.h"
#include "serve/b64.h"
#include "serve/http.h"
#include "serve/models.h"
#include "serve/request.h"

/* ---- txt2img / img2img ---- */

/* The request's fields into r; -1 with e on a bad field. */
static int read_gen(vkd_server *srv, const cJSON *j, int img2img, vkd_gen_req *r, vkd_req_err *e)
{
    long long batch = 1, iter = 1;
    bool hr = false;
    const cJSON *ov = cJSON_GetObjectItemCaseSensitive(j, "override_settings");
    if (ov && !cJSON_IsNull(ov) && !cJSON_IsObject(ov))
        return vkd_req_fail(e, 400, "override_settings", "'override_settings' must be an object");
    long long clip = 0;
    if (vkd_json_str(j, "prompt", &r->prompt, e) < 0 || vkd_json_str(j, "negative_prompt", &r->negative, e) < 0 ||
        vkd_json_int(j, "width", 1, 1 << 20, &r->width, e) < 0 ||
        vkd_json_int(j, "height", 1, 1 << 20, &r->height, e) < 0 ||
        vkd_json_int(j, "steps", 1, 1 << 20, &r->steps, e) < 0 ||
        vkd_json_num(j, "cfg_scale", 0, 100, &r->cfg, e) < 0 ||
        vkd_json_int(j, "seed", -1, 0xffffffffffffll, &r->seed, e) < 0 ||
        vkd_json_str(j, "sampler_name", &r->sampler, e) < 0 ||
        vkd_json_str(j, "sampler_index", &r->sampler, e) < 0 || /* older clients */
        vkd_json_str(j, "scheduler", &r->scheduler, e) < 0 ||
        vkd_json_int(j, "batch_size", 1, 1 << 20, &batch, e) < 0 ||
        vkd_json_int(j, "n_iter", 1, 1 << 20, &iter, e) < 0 ||
        vkd_json_bool(j, "enable_hr", &hr, e) < 0 ||
        vkd_json_num(j, "hr_scale", 1, 8, &r->hires_scale, e) < 0 ||
        vkd_json_int(j, "hr_second_pass_steps", 0, 1 << 20, &r->hires_steps, e) < 0 ||
        vkd_json_str(j, "hr_upscaler", &r->hires_upscaler, e) < 0 ||
        vkd_json_int(j, "mask_blur", 0, 64, &r->mask_blur, e) < 0 ||
        vkd_json_str(j, "force_task_id", &r->task_id, e) < 0 ||
        vkd_json_int(j, "clip_skip", 0, 12, &clip, e) < 0 ||
        (ov && (vkd_json_str(ov, "sd_model_checkpoint", &r->model, e) < 0 ||
                vkd_json_int(ov, "CLIP_stop_at_last_layers", 1, 12, &clip, e) < 0)))
        return -1;
    int s = vkd_json_num(j, "denoising_strength", 0, 1, &r->strength, e);
    if (s < 0)
        return -1;
    r->strength_set = s;
    if (clip)
        r->clip_skip = clip;
    if (!hr)
        r->hires_scale = 0;
    else if (r->hires_scale == 0)
        r->hires_scale = 2; /* A1111's default hr_scale */
    if (batch > 64 || iter > 64)
        return vkd_req_fail(e, 400, "batch_size", "too many images (--max-images)");
    r->count = batch * iter;
    if (img2img) {
        const cJSON *imgs = cJSON_GetObjectItemCaseSensitive(j, "init_images");
        const cJSON *first = cJSON_IsArray(imgs) ? cJSON_GetArrayItem(imgs, 0) : NULL;
        if (!cJSON_IsString(first))
            return vkd_req_fail(e, 400, "init_images", "'init_images' must be a list holding a base64 image");
        if (vkd_req_image_b64(first->valuestring, 3, "init_images", &r->init, e))
            return -1;
        const char *mask = NULL;
        if (vkd_json_str(j, "mask", &mask, e) < 0 || (mask && vkd_req_image_b64(mask, 1, "mask", &r->mask, e)))
            return -1;
        /* A1111's img2img: the size is the request's (default 512) */
    }
    (void)srv;
    return 0;
}

static void stamp(char *out, size_t n)
{
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(out, n, "%Y%m%d%H%M%S", &tm);
}

/* info: the JSON string A1111 returns (modules/processing.py Processed.js) */
static char *info_json(const vkd_job *job, const char *timestamp)
{
    cJSON *i = cJSON_CreateObject();
    const vkd_gen_params *gp = &job->gp;
    cJSON *prompts = cJSON_AddArrayToObject(i, "all_prompts"), *negs = cJSON_AddArrayToObject(i, "all_negative_prompts");
    cJSON *seeds = cJSON_AddArrayToObject(i, "all_seeds"), *subs = cJSON_AddArrayToObject(i, "all_subseeds");
    cJSON *texts = cJSON_AddArrayToObject(i, "infotexts");
    for (int k = 0; k < job->n_done; k++) {
        cJSON_AddItemToArray(prompts, cJSON_CreateString(job->prompt));
        cJSON_AddItemToArray(negs, cJSON_CreateString(job->negative));
        cJSON_AddItemToArray(seeds, cJSON_CreateNumber((double)job->images[k].seed));
        cJSON_AddItemToArray(subs, cJSON_CreateNumber(-1));
        cJSON_AddItemToArray(texts, cJSON_CreateString(job->images[k].infotext));
    }
    cJSON_AddStringToObject(i, "prompt", job->prompt);
    cJSON_AddStringToObject(i, "negative_prompt", job->negative);
    cJSON_AddNumberToObject(i, "seed", job->n_done ? (double)job->images[0].seed : (double)gp->seed);
    cJSON_AddNumberToObject(i, "subseed", -1);
    cJSON_AddNumberToObject(i, "subseed_strength", 0);
    cJSON_AddNumberToObject(i, "width", gp->width);
    cJSON_AddNumberToObject(i, "height", gp->height);
    cJSON_AddStringToObject(i, "sampler_name", vkd_sampler_a1111(gp->sampler));
    cJSON_AddStringToObject(i, "scheduler", vkd_schedule_a1111_label(gp->schedule));
    cJSON_AddNumberToObject(i, "cfg_scale", gp->cfg);
    cJSON_AddNumberToObject(i, "steps", gp->steps);
    cJSON_AddNumberToObject(i, "batch_size", 1);
    cJSON_AddBoolToObject(i, "restore_faces", 0);
    cJSON_AddNullToObject(i, "face_restoration_model");
    cJSON_AddStringToObject(i, "sd_model_name", job->model_name);
    cJSON_AddNullToObject(i, "sd_model_hash");
    cJSON_AddNullToObject(i, "sd_vae_name");
    cJSON_AddNumberToObject(i, "seed_resize_from_w", -1);
    cJSON_AddNumberToObject(i, "seed_resize_from_h", -1);
    if (gp->init_image || gp->hires_scale > 1)
        cJSON_AddNumberToObject(i, "denoising_strength", gp->init_image ? gp->strength : gp->hires_strength);
    else
        cJSON_AddNullToObject(i, "denoising_strength");
    cJSON_AddObjectToObject(i, "extra_generation_params");
    cJSON_AddNumberToObject(i, "index_of_first_image", 0);
    cJSON_AddArrayToObject(i, "styles");
    cJSON_AddStringToObject(i, "job_timestamp", timestamp);
    cJSON_AddNumberToObject(i, "clip_skip", gp->clip_skip > 1 ? gp->clip_skip : 1);
    cJSON_AddBoolToObject(i, "is_using_inpainting_conditioning", 0);
    cJSON_AddStringToObject(i, "version", "vkdiff");
    cJSON_AddBoolToObject(i, "interrupted", job->interrupted);
    cJSON_AddStringToObject(i, "task_id", job->id);
    char *s = cJSON_PrintUnformatted(i);
    cJSON_Delete(i);
    return s;
}

/* A finished job's reply: images, or the error its result calls for. */
static vkd_reply job_reply(vkd_job *job, cJSON *request)
{
    if (job->timed_out)
        return vkd_reply_a1111_error(504, "the job ran past --job-timeout");
    if (job->result != VKD_OK && !(job->result == VKD_ERR_CANCELLED && job->interrupted))
        return vkd_reply_a1111_error(job->result == VKD_ERR_CANCELLED ? 503
                                     : job->result < 200                ? 400
                                                                        : 500,
                                     job->error[0] ? job->error : vkd_result_str(job->result));
    char ts[32];
    stamp(ts, sizeof ts);
    cJSON *out = cJSON_CreateObject();
    cJSON *imgs = cJSON_AddArrayToObject(out, "images");
    for (int k = 0; k < job->n_done; k++)
        cJSON_AddItemToArray(imgs, cJSON_CreateStringReference(job->images[k].png_b64));
    /* parameters: the request as given, the input images left out as A1111 does */
    cJSON *params = cJSON_Duplicate(request, 1);
    if (params) {
        if (cJSON_HasObjectItem(params, "init_images"))
            cJSON_ReplaceItemInObjectCaseSensitive(params, "init_images", cJSON_CreateNull());
        if (cJSON_HasObjectItem(params, "mask"))
            cJSON_ReplaceItemInObjectCaseSensitive(params, "mask", cJSON_CreateNull());
        cJSON_AddItemToObject(out, "parameters", params);
    }
    char *info = info_json(job, ts);
    cJSON_AddStringToObject(out, "info", info ? info : "{}");
    free(info);
    return vkd_reply_json(200, out);
}

int vkd_a1111_parse(vkd_server *srv, const char *body, size_t len, int img2img, cJSON **request, vkd_job **job,
                    vkd_req_err *e)
{
    *job = NULL;
    *request = vkd_json_parse_body(body, len, e);
    if (!*request)
        return -1;
    vkd_gen_req r;
    vkd_gen_req_init(&r, srv);
    if (read_gen(srv, *request, img2img, &r, e) == 0)
        *job = vkd_gen_req_job(srv, &r, e);
    vkd_gen_req_free(&r);
    if (!*job) {
        cJSON_Delete(*request);
        *request = NULL;
        return -1;
    }
    return 0;
}

static vkd_reply generate(vkd_server *srv, vkd_http_req *hr, int img2img)
{
    size_t len;
    const char *body = vkd_http_body(hr, &len);
    vkd_req_err e = {0};
    cJSON *j;
    vkd_job *job;
    if (vkd_a1111_parse(srv, body, len, img2img, &j, &job, &e))
        return vkd_reply_a1111_error(e.status, e.msg);
    int rc = vkd_http_run_job(hr, job);
    vkd_reply rep = rc == 429   ? vkd_reply_a1111_error(429, "the queue is full: try again shortly")
                    : rc == 503 ? vkd_reply_a1111_error(503, "the server is shutting down")
                                : job_reply(job, j);
    if (rc == 429)
        rep.retry_after = 2;
    /* the reply borrowed the images' base64 strings: printed by now */
    vkd_job_release(srv->jobs, job);
    cJSON_Delete(j);
    return rep;
}

/* ---- lists, options, progress, interrupt ---- */

static vkd_reply samplers(void)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < vkd_n_sampler_names; i++) {
        const vkd_sampler_name *s = &vkd_sampler_names[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", s->a1111);
        cJSON *al = cJSON_AddArrayToObject(o, "aliases");
        cJSON_AddItemToArray(al, cJSON_CreateString(s->vkdiff));
        for (int k = 0; k < 4 && s->aliases[k]; k++)
            cJSON_AddItemToArray(al, cJSON_CreateString(s->aliases[k]));
        cJSON *opt = cJSON_AddObjectToObject(o, "options");
        if (strcmp(s->auto_schedule, "discrete"))
            cJSON_AddStringToObject(opt, "scheduler", s->auto_schedule);
        cJSON_AddItemToArray(a, o);
    }
    return vkd_reply_json(200, a);
}

static vkd_reply schedulers(void)
{
    cJSON *a = cJSON_CreateArray();
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", "automatic");
    cJSON_AddStringToObject(o, "label", "Automatic");
    cJSON_AddNullToObject(o, "aliases");
    cJSON_AddNumberToObject(o, "default_rho", -1);
    cJSON_AddBoolToObject(o, "need_inner_model", 0);
    cJSON_AddItemToArray(a, o);
    for (int i = 0; i < vkd_n_schedule_names; i++) {
        const vkd_schedule_name *s = &vkd_schedule_names[i];
        if (i > 0 && !strcmp(s->vkdiff, vkd_schedule_names[i - 1].vkdiff))
            continue; /* a second spelling (A1111's alias "SGMUniform") */
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", s->a1111);
        cJSON_AddStringToObject(o, "label", s->label);
        cJSON *al = cJSON_AddArrayToObject(o, "aliases");
        cJSON_AddItemToArray(al, cJSON_CreateString(s->vkdiff));
        cJSON_AddNumberToObject(o, "default_rho", !strcmp(s->vkdiff, "karras") ? 7 : -1);
        cJSON_AddBoolToObject(o, "need_inner_model", 0);
        cJSON_AddItemToArray(a, o);
    }
    return vkd_reply_json(200, a);
}

static vkd_reply listing(vkd_server *srv, int kind)
{
    vkd_model_entry *list;
    int n;
    const char *dir = kind == VKD_LIST_LORAS ? srv->cfg.lora_dir : srv->cfg.model_dir;
    if (vkd_models_list(dir, kind, &list, &n))
        return vkd_reply_a1111_error(500, "cannot read the model folder");
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        if (kind == VKD_LIST_LORAS) {
            cJSON_AddStringToObject(o, "name", list[i].stem);
            cJSON_AddStringToObject(o, "alias", list[i].stem);
            cJSON_AddStringToObject(o, "path", list[i].path);
            cJSON_AddObjectToObject(o, "metadata");
        } else {
            cJSON_AddStringToObject(o, "title", list[i].file);
            cJSON_AddStringToObject(o, "model_name", list[i].stem);
            cJSON_AddNullToObject(o, "hash");
            cJSON_AddNullToObject(o, "sha256");
            cJSON_AddStringToObject(o, "filename", list[i].path);
            cJSON_AddNullToObject(o, "config");
        }
        cJSON_AddItemToArray(a, o);
    }
    free(list);
    return vkd_reply_json(200, a);
}

static vkd_reply options_get(vkd_server *srv)
{
    cJSON *o = cJSON_CreateObject();
    pthread_mutex_lock(&srv->lock);
    cJSON_AddStringToObject(o, "sd_model_checkpoint", srv->opts.model);
    cJSON_AddNumberToObject(o, "CLIP_stop_at_last_layers", srv->opts.clip_skip > 1 ? srv->opts.clip_skip : 1);
    cJSON_AddNumberToObject(o, "show_progress_every_n_steps", srv->opts.preview_every);
    cJSON_AddStringToObject(o, "randn_source", !strcmp(srv->opts.rng, "cuda") ? "GPU" : "CPU");
    pthread_mutex_unlock(&srv->lock);
    cJSON_AddStringToObject(o, "samples_format", "png");
    cJSON_AddStringToObject(o, "sd_vae", "Automatic");
    return vkd_reply_json(200, o);
}

static vkd_reply options_set(vkd_server *srv, vkd_http_req *hr)
{
    size_t len;
    const char *body = vkd_http_body(hr, &len);
    vkd_req_err e = {0};
    cJSON *j = vkd_json_parse_body(body, len, &e);
    if (!j)
        return vkd_reply_a1111_error(e.status, e.msg);
    const char *model = NULL, *rng = NULL;
    long long clip = 0, every = 0;
    char *path = NULL, *file = NULL;
    if (vkd_json_str(j, "sd_model_checkpoint", &model, &e) < 0 ||
        vkd_json_int(j, "CLIP_stop_at_last_layers", 1, 12, &clip, &e) < 0 ||
        vkd_json_int(j, "show_progress_every_n_steps", -1, 1000, &every, &e) < 0 ||
        vkd_json_str(j, "randn_source", &rng, &e) < 0 ||
        (model && vkd_models_resolve(srv, model, &path, &file, &e)) ||
        (rng && strcmp(rng, "CPU") && strcmp(rng, "GPU") &&
         vkd_req_fail(&e, 400, "randn_source", "randn_source: CPU or GPU"))) {
        cJSON_Delete(j);
        return vkd_reply_a1111_error(e.status, e.msg);
    }
    pthread_mutex_lock(&srv->lock);
    if (file)
        snprintf(srv->opts.model, sizeof srv->opts.model, "%s", file);
    if (clip)
        srv->opts.clip_skip = (int)clip;
    if (cJSON_HasObjectItem(j, "show_progress_every_n_steps")) /* -1 (A1111: off) and 0: no previews */
        srv->opts.preview_every = every > 0 ? (int)every : 0;
    if (rng)
        snprintf(srv->opts.rng, sizeof srv->opts.rng, "%s", !strcmp(rng, "GPU") ? "cuda" : "cpu");
    pthread_mutex_unlock(&srv->lock);
    free(path), free(file);
    cJSON_Delete(j);
    return vkd_reply_json(200, cJSON_CreateObject());
}

static vkd_reply progress(vkd_server *srv, vkd_http_req *hr)
{
    const char *id = vkd_http_query(hr, "id_task");
    const char *skip = vkd_http_query(hr, "skip_current_image");
    vkd_progress p;
    vkd_jobs_progress(srv->jobs, id, !(skip && !strcmp(skip, "true")), &p);
    double frac = 0;
    if (p.found && p.state == VKD_JOB_DONE)
        frac = 1;
    else if (p.found && p.count > 0)
        frac = (p.image + (p.steps > 0 ? (double)p.step / p.steps : 0)) / p.count;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "progress", frac);
    cJSON_AddNumberToObject(o, "eta_relative", frac > 0.01 && frac < 1 ? p.elapsed / frac - p.elapsed : 0);
    cJSON *st = cJSON_AddObjectToObject(o, "state");
    cJSON_AddBoolToObject(st, "skipped", 0);
    cJSON_AddBoolToObject(st, "interrupted", p.interrupted);
    cJSON_AddStringToObject(st, "job", p.found ? p.id : "");
    cJSON_AddNumberToObject(st, "job_count", p.job_count);
    cJSON_AddStringToObject(st, "job_timestamp", "");
    cJSON_AddNumberToObject(st, "job_no", p.found ? p.image : 0);
    cJSON_AddNumberToObject(st, "sampling_step", p.step);
    cJSON_AddNumberToObject(st, "sampling_steps", p.steps);
    char *b64 = p.preview ? vkd_b64_encode(p.preview, p.preview_len) : NULL;
    free(p.preview);
    if (b64)
        cJSON_AddStringToObject(o, "current_image", b64);
    else
        cJSON_AddNullToObject(o, "current_image");
    free(b64);
    cJSON_AddNullToObject(o, "textinfo");
    if (p.found && p.state != VKD_JOB_DONE)
        cJSON_AddStringToObject(o, "current_task", p.id);
    else
        cJSON_AddNullToObject(o, "current_task");
    return vkd_reply_json(200, o);
}

vkd_reply vkd_a1111_route(vkd_server *srv, vkd_http_req *r, const char *method, const char *path)
{
    int get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
    const char *p = path + strlen("/sdapi/v1/");
    if (!strcmp(p, "txt2img") || !strcmp(p, "img2img"))
        return post ? generate(srv, r, p[0] == 'i') : vkd_reply_no_route(1, "POST", 0);
    if (!strcmp(p, "interrupt")) {
        if (!post)
            return vkd_reply_no_route(1, "POST", 0);
        vkd_jobs_interrupt(srv->jobs);
        return vkd_reply_json(200, cJSON_CreateObject());
    }
    if (!strcmp(p, "options"))
        return get ? options_get(srv) : post ? options_set(srv, r) : vkd_reply_no_route(1, "GET, POST", 0);
    static const char *const gets[] = {"samplers", "schedulers", "sd-models", "loras", "progress"};
    for (int i = 0; i < 5; i++) {
        if (strcmp(p, gets[i]))
            continue;
        if (!get)
            return vkd_reply_no_route(1, "GET", 0);
        switch (i) {
        case 0: return samplers();
        case 1: return schedulers();
        case 2: return listing(srv, VKD_LIST_CHECKPOINTS);
        case 3: return listing(srv, VKD_LIST_LORAS);
        default: return progress(srv, r);
        }
    }
    return vkd_reply_no_route(0, NULL, 0);
}
