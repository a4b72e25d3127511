/* The HTTP side of the server, on GNU libmicrohttpd (chosen over civetweb: Debian's
 * libmicrohttpd-dev is the HTTP library of many daemons, parses multipart/form-data
 * itself (MHD_PostProcessor) and gives each connection a thread of its own, so a
 * handler may block until its job is done while it watches the client's socket).
 * What it adds: the routes, the body limit (413), the API key (401), a deadline for
 * receiving a request (a slow client is cut), and a client's disconnect cancelling its
 * job. */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "serve/http.h"

#define MAX_FIELDS 32

extern const char vkd_page_html[];
extern const unsigned long vkd_page_html_len;

/* A connection, tracked from accept to close so the watchdog can cut one whose request
 * is arriving too slowly (one byte a second keeps libmicrohttpd's idle timeout happy). */
typedef struct conn {
    int fd;
    int receiving;          /* 1 from accept (or the end of the last reply) until a request is whole */
    double since;
    struct conn *prev, *next;
} conn;

typedef struct form_field {
    char name[64];
    char *data;
    size_t len;
} form_field;

struct vkd_http_req {
    vkd_http *h;
    struct MHD_Connection *c;
    conn *cn;
    char *body;
    size_t len, cap;
    int too_large;
    double t0;              /* when its headers were in (the access log's time) */
    struct MHD_PostProcessor *pp;
    int pp_done;            /* the parser stopped (the closing boundary, or a damaged body) */
    form_field fields[MAX_FIELDS];
    int n_fields;
};

struct vkd_http {
    vkd_server *srv;
    struct MHD_Daemon *d;
    pthread_mutex_t lock;   /* guards the connection list */
    conn *conns;
    pthread_t watchdog;
    pthread_mutex_t wd_lock;
    pthread_cond_t wd_cv;
    int wd_stop;
};

/* ---- replies ---- */

static vkd_reply reply_text(int status, char *body, const char *type)
{
    vkd_reply r = {status, body, body ? strlen(body) : 0, type, 0, NULL};
    return r;
}

vkd_reply vkd_reply_json(int status, cJSON *j)
{
    char *s = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    if (!s)
        return reply_text(500, NULL, "application/json");
    return reply_text(status, s, "application/json");
}

static const char *reason(int status)
{
    switch (status) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Internal Server Error";
    }
}

vkd_reply vkd_reply_a1111_error(int status, const char *detail)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", reason(status));
    cJSON_AddStringToObject(o, "detail", detail);
    return vkd_reply_json(status, o);
}

vkd_reply vkd_reply_openai_error(int status, const char *message, const char *param)
{
    cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "message", message);
    cJSON_AddStringToObject(e, "type", status == 401   ? "authentication_error"
                                       : status == 429 ? "rate_limit_error"
                                       : status >= 500 ? "server_error"
                                                       : "invalid_request_error");
    if (param && *param)
        cJSON_AddStringToObject(e, "param", param);
    else
        cJSON_AddNullToObject(e, "param");
    cJSON_AddNullToObject(e, "code");
    return vkd_reply_json(status, o);
}

vkd_reply vkd_reply_no_route(int known_path, const char *allow, int openai)
{
    const char *msg = known_path ? "method not allowed here" : "no such endpoint";
    vkd_reply r = openai ? vkd_reply_openai_error(known_path ? 405 : 404, msg, NULL)
                         : vkd_reply_a1111_error(known_path ? 405 : 404, msg);
    r.allow = allow;
    return r;
}

static enum MHD_Result send_reply(struct MHD_Connection *c, vkd_reply rep)
{
    struct MHD_Response *resp;
    if (rep.body)
        resp = MHD_create_response_from_buffer(rep.len, rep.body, MHD_RESPMEM_MUST_FREE);
    else
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(rep.body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, rep.type ? rep.type : "application/json");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (rep.retry_after > 0) {
        char s[16];
        snprintf(s, sizeof s, "%d", rep.retry_after);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, s);
    }
    if (rep.allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, rep.allow);
    if (rep.status == 401)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)rep.status, resp);
    MHD_destroy_response(resp);
    return ok;
}

/* ---- what handlers see ---- */

const char *vkd_http_body(const vkd_http_req *r, size_t *len)
{
    *len = r->len;
    return r->body ? r->body : "";
}

const char *vkd_http_query(const vkd_http_req *r, const char *key)
{
    return MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, key);
}

const char *vkd_http_form(const vkd_http_req *r, const char *name, size_t *len)
{
    for (int i = 0; i < r->n_fields; i++)
        if (!strcmp(r->fields[i].name, name)) {
            if (len)
                *len = r->fields[i].len;
            return r->fields[i].data ? r->fields[i].data : "";
        }
    return NULL;
}

/* Whether the client closed its end: a hang-up, an error, or end-of-file to read. */
static int client_gone(void *user)
{
    vkd_http_req *r = user;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(r->c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return 0;
    struct pollfd p = {ci->connect_fd, POLLIN | POLLRDHUP, 0};
    if (poll(&p, 1, 0) <= 0)
        return 0;
    if (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))
        return 1;
    char b;
    return recv(ci->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

int vkd_http_run_job(vkd_http_req *r, vkd_job *job)
{
    vkd_jobs *q = r->h->srv->jobs;
    int rc = vkd_jobs_submit(q, job);
    if (rc)
        return rc;
    vkd_jobs_wait(q, job, client_gone, r);
    return 0;
}

/* ---- connections and the watchdog ---- */

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    vkd_http *h = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        conn *cn = calloc(1, sizeof *cn);
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!cn || !ci) {
            free(cn);
            return;
        }
        cn->fd = ci->connect_fd, cn->receiving = 1, cn->since = vkd_serve_now();
        pthread_mutex_lock(&h->lock);
        cn->next = h->conns;
        if (h->conns)
            h->conns->prev = cn;
        h->conns = cn;
        pthread_mutex_unlock(&h->lock);
        *socket_context = cn;
    } else if (*socket_context) { /* closed: before libmicrohttpd closes the socket */
        conn *cn = *socket_context;
        pthread_mutex_lock(&h->lock);
        if (cn->prev)
            cn->prev->next = cn->next;
        else
            h->conns = cn->next;
        if (cn->next)
            cn->next->prev = cn->prev;
        pthread_mutex_unlock(&h->lock);
        free(cn);
        *socket_context = NULL;
    }
}

static void set_receiving(vkd_http *h, conn *cn, int receiving)
{
    if (!cn)
        return;
    pthread_mutex_lock(&h->lock);
    cn->receiving = receiving;
    cn->since = vkd_serve_now();
    pthread_mutex_unlock(&h->lock);
}

static void *watchdog(void *arg)
{
    vkd_http *h = arg;
    double limit = h->srv->cfg.read_timeout_s;
    pthread_mutex_lock(&h->wd_lock);
    while (!h->wd_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 250 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000)
            ts.tv_sec++, ts.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&h->wd_cv, &h->wd_lock, &ts);
        double now = vkd_serve_now();
        pthread_mutex_lock(&h->lock);
        for (conn *cn = h->conns; cn; cn = cn->next)
            if (cn->receiving && now - cn->since > limit && cn->fd >= 0) {
                /* the connection's own thread sees the socket fail and closes it */
                shutdown(cn->fd, SHUT_RDWR);
                cn->fd = -1;
            }
        pthread_mutex_unlock(&h->lock);
    }
    pthread_mutex_unlock(&h->wd_lock);
    return NULL;
}

/* ---- requests ---- */

static void req_free(vkd_http_req *r)
{
    if (!r)
        return;
    if (r->pp)
        MHD_destroy_post_processor(r->pp);
    for (int i = 0; i < r->n_fields; i++)
        free(r->fields[i].data);
    free(r->body);
    free(r);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    vkd_http *h = cls;
    req_free(*con_cls);
    *con_cls = NULL;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    if (ci && ci->socket_context) /* a kept-alive connection's next request starts its clock now */
        set_receiving(h, ci->socket_context, 1);
    (void)toe;
}

static enum MHD_Result on_form(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
                               const char *content_type, const char *transfer_encoding, const char *data,
                               uint64_t off, size_t size)
{
    vkd_http_req *r = cls;
    (void)kind, (void)filename, (void)content_type, (void)transfer_encoding, (void)off;
    form_field *f = NULL;
    for (int i = 0; i < r->n_fields && !f; i++)
        if (!strcmp(r->fields[i].name, key))
            f = &r->fields[i];
    if (!f) {
        if (r->n_fields == MAX_FIELDS || strlen(key) >= sizeof f->name)
            return MHD_NO;
        f = &r->fields[r->n_fields++];
        snprintf(f->name, sizeof f->name, "%s", key);
    }
    char *grown = realloc(f->data, f->len + size + 1); /* the body's limit bounds the sum */
    if (!grown)
        return MHD_NO;
    memcpy(grown + f->len, data, size);
    f->len += size;
    grown[f->len] = 0;
    f->data = grown;
    return MHD_YES;
}

static int authorized(vkd_http *h, struct MHD_Connection *c)
{
    const char *key = h->srv->cfg.api_key;
    if (!key)
        return 1;
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!auth || strncmp(auth, "Bearer ", 7))
        return 0;
    auth += 7;
    size_t n = strlen(key), m = strlen(auth);
    unsigned diff = (unsigned)(n ^ m); /* compared in constant time */
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned)(key[i] ^ (i < m ? auth[i] : 0));
    return diff == 0;
}

static vkd_reply route(vkd_http *h, vkd_http_req *r, const char *method, const char *url)
{
    vkd_server *srv = h->srv;
    int openai = !strncmp(url, "/v1/", 4);
    if (!strcmp(url, "/") || !strcmp(url, "/index.html")) {
        if (strcmp(method, "GET") && strcmp(method, "HEAD"))
            return vkd_reply_no_route(1, "GET", 0);
        char *page = malloc(vkd_page_html_len + 1);
        if (page)
            memcpy(page, vkd_page_html, vkd_page_html_len), page[vkd_page_html_len] = 0;
        return reply_text(page ? 200 : 500, page, "text/html; charset=utf-8");
    }
    if (!strcmp(url, "/health")) {
        if (strcmp(method, "GET") && strcmp(method, "HEAD"))
            return vkd_reply_no_route(1, "GET", 0);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "status", srv->stopping ? "stopping" : "ok");
        return vkd_reply_json(srv->stopping ? 503 : 200, o);
    }
    if (!openai && strncmp(url, "/sdapi/v1/", 10))
        return vkd_reply_no_route(0, NULL, 0);
    if (!authorized(h, r->c))
        return openai ? vkd_reply_openai_error(401, "a valid API key is needed: Authorization: Bearer KEY", NULL)
                      : vkd_reply_a1111_error(401, "a valid API key is needed: Authorization: Bearer KEY");
    if (srv->stopping)
        return openai ? vkd_reply_openai_error(503, "the server is shutting down", NULL)
                      : vkd_reply_a1111_error(503, "the server is shutting down");
    return openai ? vkd_openai_route(srv, r, method, url) : vkd_a1111_route(srv, r, method, url);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    vkd_http *h = cls;
    vkd_http_req *r = *con_cls;
    (void)version;
    if (!r) { /* the headers are in: set up, refuse a body announced too large */
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        r->h = h, r->c = c;
        r->t0 = vkd_serve_now();
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        r->cn = ci ? ci->socket_context : NULL;
        *con_cls = r;
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > h->srv->cfg.max_body) {
            r->too_large = 1;
            char msg[128];
            snprintf(msg, sizeof msg, "the body is over %zu MiB (--max-body-mb)", h->srv->cfg.max_body >> 20);
            return send_reply(c, !strncmp(url, "/v1/", 4) ? vkd_reply_openai_error(413, msg, NULL)
                                                         : vkd_reply_a1111_error(413, msg));
        }
        if (!strcmp(url, "/v1/images/edits") && !strcmp(method, "POST"))
            r->pp = MHD_create_post_processor(c, 64 * 1024, on_form, r);
        return MHD_YES;
    }
    if (r->too_large) { /* a 413 is queued: the rest is discarded */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        if (r->len + n > h->srv->cfg.max_body)
            return MHD_NO; /* a body without a length grew too large: cut */
        if (r->pp) {
            /* After the closing boundary the parser refuses what follows (the OpenAI node
             * client ends its bodies with an extra CRLF, which RFC 2046 allows): the fields
             * parsed so far stand; missing ones are the handler's 400. */
            if (!r->pp_done && MHD_post_process(r->pp, upload_data, n) != MHD_YES)
                r->pp_done = 1;
            r->len += n;
        } else {
            if (r->len + n + 1 > r->cap) {
                size_t cap = r->cap ? r->cap : 4096;
                while (cap < r->len + n + 1)
                    cap *= 2;
                char *grown = realloc(r->body, cap);
                if (!grown)
                    return MHD_NO;
                r->body = grown, r->cap = cap;
            }
            memcpy(r->body + r->len, upload_data, n);
            r->len += n;
            r->body[r->len] = 0;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    /* the whole request is in */
    set_receiving(h, r->cn, 0);
    if (!strcmp(url, "/v1/images/edits") && !strcmp(method, "POST") && !r->pp)
        return send_reply(c, vkd_reply_openai_error(400, "/v1/images/edits takes multipart/form-data", NULL));
    vkd_reply rep = route(h, r, method, url);
    /* an access log line per request (progress polls, a page's every 400 ms, only with -v) */
    if (h->srv->cfg.verbose || strcmp(url, "/sdapi/v1/progress")) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        char ip[INET6_ADDRSTRLEN] = "?";
        if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)ci->client_addr)->sin_addr, ip, sizeof ip);
        else if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ci->client_addr)->sin6_addr, ip, sizeof ip);
        fprintf(stderr, "vkdiff serve: %s \"%s %.200s\" %d %.2f s\n", ip, method, url, rep.status,
                vkd_serve_now() - r->t0);
    }
    return send_reply(c, rep);
}

int vkd_http_start(vkd_server *srv, vkd_http **out, int *bound_port)
{
    *out = NULL;
    vkd_http *h = calloc(1, sizeof *h);
    if (!h)
        return -1;
    h->srv = srv;
    pthread_mutex_init(&h->lock, NULL);
    pthread_mutex_init(&h->wd_lock, NULL);
    pthread_cond_init(&h->wd_cv, NULL);
    struct sockaddr_in a4;
    struct sockaddr_in6 a6;
    struct sockaddr *addr;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    memset(&a4, 0, sizeof a4), memset(&a6, 0, sizeof a6);
    if (inet_pton(AF_INET, srv->cfg.listen, &a4.sin_addr) == 1) {
        a4.sin_family = AF_INET, a4.sin_port = htons((uint16_t)srv->cfg.port);
        addr = (struct sockaddr *)&a4;
    } else if (inet_pton(AF_INET6, srv->cfg.listen, &a6.sin6_addr) == 1) {
        a6.sin6_family = AF_INET6, a6.sin6_port = htons((uint16_t)srv->cfg.port);
        addr = (struct sockaddr *)&a6;
        flags |= MHD_USE_IPv6;
    } else {
        fprintf(stderr, "vkdiff serve: --listen %s is not an IPv4 or IPv6 address\n", srv->cfg.listen);
        free(h);
        return -1;
    }
    h->d = MHD_start_daemon(flags, (uint16_t)srv->cfg.port, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR, addr,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)srv->cfg.read_timeout_s,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
                            MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
                            MHD_OPTION_END);
    if (!h->d) {
        fprintf(stderr, "vkdiff serve: cannot listen on %s port %d (in use? no permission?)\n", srv->cfg.listen,
                srv->cfg.port);
        free(h);
        return -1;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    *bound_port = di ? di->port : srv->cfg.port;
    if (pthread_create(&h->watchdog, NULL, watchdog, h)) {
        MHD_stop_daemon(h->d);
        free(h);
        return -1;
    }
    *out = h;
    return 0;
}

void vkd_http_stop(vkd_http *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->d); /* waits for the connections' threads */
    pthread_mutex_lock(&h->wd_lock);
    h->wd_stop = 1;
    pthread_cond_signal(&h->wd_cv);
    pthread_mutex_unlock(&h->wd_lock);
    pthread_join(h->watchdog, NULL);
    pthread_mutex_destroy(&h->lock);
    pthread_mutex_destroy(&h->wd_lock);
    pthread_cond_destroy(&h->wd_cv);
    free(h);
}
