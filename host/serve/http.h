/* What the API handlers see of an HTTP request (http.c owns the connection). */
#ifndef VKD_SERVE_HTTP_H
#define VKD_SERVE_HTTP_H

#include <stddef.h>

#include "serve/jobs.h"
#include "serve/request.h"
#include "serve/serve.h"

typedef struct vkd_http_req vkd_http_req;

/* The request's body (NUL-terminated; len excludes the NUL). */
const char *vkd_http_body(const vkd_http_req *r, size_t *len);
/* A query-string argument; NULL when absent. */
const char *vkd_http_query(const vkd_http_req *r, const char *key);
/* A multipart/form-data field (a file's bytes or a value), NUL-terminated; NULL when absent. */
const char *vkd_http_form(const vkd_http_req *r, const char *name, size_t *len);
/* Submits the job and waits for it, cancelling it when the client disconnects.
 * 0 when it ran (finished, failed or was stopped: see the job), else 429 (queue full) or 503. */
int vkd_http_run_job(vkd_http_req *r, vkd_job *job);

/* Replies: JSON (the cJSON is printed and deleted), errors in each API's shape. */
struct cJSON;
vkd_reply vkd_reply_json(int status, struct cJSON *j);
vkd_reply vkd_reply_a1111_error(int status, const char *detail);
vkd_reply vkd_reply_openai_error(int status, const char *message, const char *param);

/* The handlers: api_a1111.c, api_openai.c. */
vkd_reply vkd_a1111_route(vkd_server *srv, vkd_http_req *r, const char *method, const char *path);
vkd_reply vkd_openai_route(vkd_server *srv, vkd_http_req *r, const char *method, const char *path);
/* The generation requests' parsers (fuzz_serve calls them too): a job ready to submit,
 * or -1 with e set. The A1111 one also hands back the parsed request (the reply echoes it). */
int vkd_a1111_parse(vkd_server *srv, const char *body, size_t len, int img2img, struct cJSON **request,
                    vkd_job **job, vkd_req_err *e);
int vkd_openai_parse(vkd_server *srv, const char *body, size_t len, vkd_job **job, vkd_req_err *e);
/* 405 for a known path, 404 else: the status a route answers when it has no handler. */
vkd_reply vkd_reply_no_route(int known_path, const char *allow, int openai);

#endif
