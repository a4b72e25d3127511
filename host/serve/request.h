/* What every generation request passes through, whichever API it came by: its JSON
 * fields read with their types checked (a string where a number belongs is refused, not
 * coerced), then the limits of the server (--max-side, --max-steps, --max-images,
 * --max-prompt) and the library's own check (vkd_gen_params_check), then a job. */
#ifndef VKD_SERVE_REQUEST_H
#define VKD_SERVE_REQUEST_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "cli/image_read.h"
#include "serve/jobs.h"
#include "serve/serve.h"

/* Why a request is refused: an HTTP status, a message and the field it concerns. */
typedef struct vkd_req_err {
    int status;
    char msg[512];
    char param[64];
} vkd_req_err;

#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
int vkd_req_fail(vkd_req_err *e, int status, const char *param, const char *fmt, ...); /* returns -1 */

/* Field getters: 0 when the field is absent or null (out untouched), 1 when read, -1 when
 * it has the wrong type or is out of [lo, hi] (e says so: 400). */
int vkd_json_str(const cJSON *o, const char *name, const char **out, vkd_req_err *e);
int vkd_json_int(const cJSON *o, const char *name, long long lo, long long hi, long long *out, vkd_req_err *e);
int vkd_json_num(const cJSON *o, const char *name, double lo, double hi, double *out, vkd_req_err *e);
int vkd_json_bool(const cJSON *o, const char *name, bool *out, vkd_req_err *e);

/* A body as JSON: refused (400) when it is not JSON, nests deeper than 32 or is not an object. */
cJSON *vkd_json_parse_body(const char *body, size_t len, vkd_req_err *e);

/* A generation request, API-neutral. Strings are borrowed from the request. */
typedef struct vkd_gen_req {
    const char *prompt, *negative, *sampler, *scheduler, *model, *task_id, *hires_upscaler, *rng;
    long long width, height, steps, seed, count, clip_skip, mask_blur, hires_steps;
    double cfg, strength, hires_scale;
    int strength_set;           /* denoising_strength given (the hires fix's default is 0.7, img2img's 0.75) */
    vkd_cli_image init, mask;   /* decoded input images (owned: vkd_gen_req_free) */
} vkd_gen_req;

/* Defaults: the server's options (model, clip skip, RNG) and the library's. */
void vkd_gen_req_init(vkd_gen_req *r, vkd_server *srv);
void vkd_gen_req_free(vkd_gen_req *r);

/* Base64 PNG/JPEG (a data URL allowed) into img: channels 3 (RGB), 1 (grey mask) or 2
 * (the OpenAI alpha mask). -1 with e (400) when it does not decode. */
int vkd_req_image_b64(const char *b64, int channels, const char *param, vkd_cli_image *img, vkd_req_err *e);

/* The request checked and made a job (NULL with e set). */
vkd_job *vkd_gen_req_job(vkd_server *srv, vkd_gen_req *r, vkd_req_err *e);

#endif
