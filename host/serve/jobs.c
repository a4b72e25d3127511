/* Jobs: the queue and its workers (jobs.h). */
#define _POSIX_C_SOURCE 200809L
#include "serve/jobs.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli/infotext.h"
#include "cli/png_write.h"
#include "cli/preview.h"
#include "serve/b64.h"

#define RECENT 16 /* finished jobs kept for /sdapi/v1/progress?id_task= */

typedef struct worker {
    struct vkd_jobs *q;
    int index, device;
    pthread_t thread;
    int started;
    vkd_ctx *ctx;
    char *model;            /* the model ctx holds */
    pthread_mutex_t log_lock;
    char last_error[256];   /* the library's last ERROR message: a failed job's detail */
} worker;

struct vkd_jobs {
    vkd_server *srv;
    pthread_mutex_t lock;
    pthread_cond_t work_cv, done_cv;
    vkd_job *head, *tail;   /* waiting, oldest first */
    int queued;
    vkd_job *running[VKD_SERVE_MAX_WORKERS];
    vkd_job *recent[RECENT];
    int recent_pos;
    int stop;
    worker workers[VKD_SERVE_MAX_WORKERS];
    int n_workers;
};

double vkd_serve_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

vkd_job *vkd_job_new(void)
{
    static _Atomic uint64_t serial; /* task ids: unique within the process */
    vkd_job *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    vkd_gen_params_init(&j->gp);
    j->refs = 1;
    j->count = 1;
    snprintf(j->id, sizeof j->id, "task(vkd%llu)", (unsigned long long)++serial);
    return j;
}

static void job_free(vkd_job *j)
{
    free(j->prompt), free(j->negative), free(j->model_path), free(j->model_name);
    free(j->init), free(j->mask), free(j->preview_png);
    for (int i = 0; i < j->n_done; i++)
        free(j->images[i].png_b64), free(j->images[i].infotext);
    free(j->images);
    free(j);
}

static void release_locked(vkd_job *j)
{
    if (j && --j->refs == 0)
        job_free(j);
}

void vkd_job_release(vkd_jobs *q, vkd_job *job)
{
    if (!job)
        return;
    if (!q) { /* never submitted: nobody else holds it */
        release_locked(job);
        return;
    }
    pthread_mutex_lock(&q->lock);
    release_locked(job);
    pthread_mutex_unlock(&q->lock);
}

/* ---- the library's log: to stderr, the last error kept for the reply ---- */
static void worker_log(vkd_log_level level, const char *msg, void *user)
{
    worker *w = user;
    if (level == VKD_LOG_ERROR) {
        pthread_mutex_lock(&w->log_lock);
        snprintf(w->last_error, sizeof w->last_error, "%s", msg);
        pthread_mutex_unlock(&w->log_lock);
    }
    static const char *const names[] = {"error", "warning", "info", "debug"};
    fprintf(stderr, "vkdiff serve: worker %d: %s: %s\n", w->index, names[level & 3], msg);
}

static vkd_result load_model(worker *w, const char *path)
{
    vkd_ctx_free(w->ctx);
    w->ctx = NULL;
    free(w->model);
    w->model = NULL;
    const vkd_serve_cfg *cfg = &w->q->srv->cfg;
    vkd_ctx_params cp;
    vkd_ctx_params_init(&cp);
    cp.model_path = path;
    cp.tokenizer_path = cfg->tokenizer;
    char tok[4096];
    struct stat st;
    const char *slash = strrchr(path, '/');
    /* no --tokenizer: a tokenizer/ folder beside a single-file model (the shipped model's) */
    if (!cp.tokenizer_path && snprintf(tok, sizeof tok, "%.*s/tokenizer", slash ? (int)(slash - path) : 1,
                                       slash ? path : ".") < (int)sizeof tok &&
        stat(tok, &st) == 0 && S_ISDIR(st.st_mode) && stat(path, &st) == 0 && S_ISREG(st.st_mode))
        cp.tokenizer_path = tok;
    cp.device_index = w->device;
    cp.cache_dir = cfg->cache_dir;
    cp.log = worker_log;
    cp.log_user = w;
    cp.log_level = cfg->verbose ? VKD_LOG_INFO : VKD_LOG_WARN;
    double t0 = vkd_serve_now();
    vkd_result r = vkd_ctx_create(&cp, &w->ctx);
    if (r == VKD_OK) {
        w->model = strdup(path);
        if (!w->model) {
            vkd_ctx_free(w->ctx);
            w->ctx = NULL;
            return VKD_ERR_OUT_OF_HOST_MEMORY;
        }
        fprintf(stderr, "vkdiff serve: worker %d: %s (%s) loaded on device %d in %.1f s\n", w->index,
                vkd_base_name(path), vkd_ctx_family(w->ctx), w->device, vkd_serve_now() - t0);
    }
    return r;
}

/* ---- callbacks during a generation ---- */
typedef struct run_state {
    vkd_jobs *q;
    vkd_job *job;
} run_state;

static int on_progress(void *user, int step, int total)
{
    run_state *rs = user;
    pthread_mutex_lock(&rs->q->lock);
    rs->job->step = step, rs->job->steps = total;
    if (!rs->job->cancel && vkd_serve_now() > rs->job->deadline)
        rs->job->timed_out = rs->job->cancel = 1;
    int stop = rs->job->cancel;
    pthread_mutex_unlock(&rs->q->lock);
    return stop;
}

static int on_preview(void *user, int step, int total, const uint8_t *rgb, int width, int height)
{
    run_state *rs = user;
    uint8_t *png = NULL;
    size_t len = 0;
    if (vkd_png_encode(rgb, width, height, NULL, &png, &len)) /* no preview this time: not fatal */
        return on_progress(user, step, total);
    pthread_mutex_lock(&rs->q->lock);
    free(rs->job->preview_png);
    rs->job->preview_png = png, rs->job->preview_len = len;
    pthread_mutex_unlock(&rs->q->lock);
    return on_progress(user, step, total);
}

static void job_fail(vkd_job *job, vkd_result r, const char *fmt, ...)
{
    job->result = r;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(job->error, sizeof job->error, fmt, ap);
    va_end(ap);
}

/* Makes the job's images, one after the other; state changes under the lock. */
static void run_job(worker *w, vkd_job *job)
{
    vkd_jobs *q = w->q;
    w->last_error[0] = 0;
    if (!w->ctx || strcmp(w->model, job->model_path)) {
        vkd_result r = load_model(w, job->model_path);
        if (r) {
            job_fail(job, r, "cannot load %s: %s%s%s", job->model_name, vkd_result_str(r),
                     w->last_error[0] ? ": " : "", w->last_error);
            return;
        }
    }
    vkd_gen_params gp = job->gp;
    run_state rs = {q, job};
    gp.progress = on_progress, gp.progress_user = &rs;
    pthread_mutex_lock(&q->srv->lock);
    int preview_every = q->srv->opts.preview_every;
    pthread_mutex_unlock(&q->srv->lock);
    char taesd[4096];
    if (q->srv->cfg.taesd)
        snprintf(taesd, sizeof taesd, "%s", q->srv->cfg.taesd);
    else if (!vkd_cli_taesd_beside(job->model_path, taesd, sizeof taesd))
        taesd[0] = 0;
    if (taesd[0] && preview_every > 0) /* the live preview of /sdapi/v1/progress */
        gp.preview = on_preview, gp.preview_user = &rs, gp.preview_taesd = taesd, gp.preview_every = preview_every;
    int w_out, h_out;
    vkd_image_size(&gp, &w_out, &h_out);
    uint8_t *rgb = malloc(vkd_image_bytes(&gp));
    job->images = calloc((size_t)job->count, sizeof *job->images);
    if (!rgb || !job->images) {
        free(rgb);
        job_fail(job, VKD_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        return;
    }
    int64_t seed0 = gp.seed;
    for (int i = 0; i < job->count; i++) {
        pthread_mutex_lock(&q->lock);
        job->image = i, job->step = 0;
        int cancel = job->cancel;
        pthread_mutex_unlock(&q->lock);
        if (cancel) {
            job->result = VKD_ERR_CANCELLED;
            break;
        }
        gp.seed = seed0 < 0 ? (i == 0 ? -1 : gp.seed_used + 1) : seed0 + i;
        vkd_result r = vkd_generate(w->ctx, &gp, rgb);
        if (r) {
            job_fail(job, r, "%s%s%s", vkd_result_str(r), w->last_error[0] ? ": " : "", w->last_error);
            if (r != VKD_ERR_CANCELLED && r != VKD_ERR_INVALID_ARG && r != VKD_ERR_NON_FINITE &&
                r != VKD_ERR_UNSUPPORTED && r != VKD_ERR_IO && r != VKD_ERR_FORMAT) {
                vkd_ctx_free(w->ctx); /* the device may be in a bad state: a fresh context next time */
                w->ctx = NULL;
            }
            break;
        }
        vkd_strbuf info = {0};
        vkd_infotext(&info, &gp, job->model_name, NULL, NULL, 0);
        uint8_t *png = NULL;
        size_t len = 0;
        char *b64 = NULL;
        if (!info.failed && !vkd_png_encode(rgb, w_out, h_out, info.s, &png, &len))
            b64 = vkd_b64_encode(png, len);
        free(png);
        if (!b64) {
            vkd_strbuf_free(&info);
            job_fail(job, VKD_ERR_OUT_OF_HOST_MEMORY, "out of host memory encoding the PNG");
            break;
        }
        pthread_mutex_lock(&q->lock);
        job->images[i] = (vkd_job_image){b64, info.s, gp.seed_used};
        job->n_done = i + 1;
        pthread_mutex_unlock(&q->lock);
    }
    free(rgb);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    vkd_jobs *q = w->q;
    pthread_mutex_lock(&q->lock);
    for (;;) {
        while (!q->stop && !q->head)
            pthread_cond_wait(&q->work_cv, &q->lock);
        if (q->stop)
            break;
        vkd_job *job = q->head;
        q->head = job->next;
        if (!q->head)
            q->tail = NULL;
        q->queued--;
        job->next = NULL;
        job->state = VKD_JOB_RUNNING;
        job->t_started = vkd_serve_now();
        q->running[w->index] = job;
        int skip = job->cancel; /* its client left while it waited */
        pthread_mutex_unlock(&q->lock);
        if (skip)
            job->result = VKD_ERR_CANCELLED;
        else
            run_job(w, job);
        pthread_mutex_lock(&q->lock);
        q->running[w->index] = NULL;
        job->state = VKD_JOB_DONE;
        job->t_done = vkd_serve_now();
        /* kept a while for /sdapi/v1/progress?id_task= (the queue's reference moves there) */
        release_locked(q->recent[q->recent_pos]);
        q->recent[q->recent_pos] = job;
        q->recent_pos = (q->recent_pos + 1) % RECENT;
        pthread_cond_broadcast(&q->done_cv);
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

int vkd_jobs_create(vkd_server *srv, vkd_jobs **out)
{
    *out = NULL;
    vkd_jobs *q = calloc(1, sizeof *q);
    if (!q)
        return -1;
    q->srv = srv;
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->work_cv, NULL);
    pthread_cond_init(&q->done_cv, NULL);
    for (int i = 0; i < srv->cfg.n_devices; i++) {
        worker *w = &q->workers[i];
        w->q = q, w->index = i, w->device = srv->cfg.devices[i];
        pthread_mutex_init(&w->log_lock, NULL);
        q->n_workers = i + 1;
        /* the default model loaded now: the first request does not wait for it */
        vkd_result r = load_model(w, srv->cfg.model);
        if (r) {
            fprintf(stderr, "vkdiff serve: worker %d cannot load %s on device %d: %s\n", i, srv->cfg.model,
                    w->device, vkd_result_str(r));
            vkd_jobs_destroy(q);
            return -1;
        }
        if (pthread_create(&w->thread, NULL, worker_main, w)) {
            vkd_jobs_destroy(q);
            return -1;
        }
        w->started = 1;
    }
    *out = q;
    return 0;
}

void vkd_jobs_stop(vkd_jobs *q)
{
    if (!q)
        return;
    pthread_mutex_lock(&q->lock);
    q->stop = 1;
    for (int i = 0; i < q->n_workers; i++)
        if (q->running[i])
            q->running[i]->cancel = 1;
    /* jobs still waiting end as cancelled: their handlers answer 503 */
    for (vkd_job *j = q->head, *next; j; j = next) {
        next = j->next;
        j->state = VKD_JOB_DONE, j->result = VKD_ERR_CANCELLED, j->cancel = 1, j->next = NULL;
        release_locked(j);
    }
    q->head = q->tail = NULL, q->queued = 0;
    pthread_cond_broadcast(&q->work_cv);
    pthread_cond_broadcast(&q->done_cv);
    pthread_mutex_unlock(&q->lock);
    for (int i = 0; i < q->n_workers; i++) {
        worker *w = &q->workers[i];
        if (w->started)
            pthread_join(w->thread, NULL);
        w->started = 0;
        vkd_ctx_free(w->ctx);
        w->ctx = NULL;
        free(w->model);
        w->model = NULL;
    }
}

void vkd_jobs_destroy(vkd_jobs *q)
{
    if (!q)
        return;
    vkd_jobs_stop(q);
    for (int i = 0; i < q->n_workers; i++)
        pthread_mutex_destroy(&q->workers[i].log_lock);
    for (int i = 0; i < RECENT; i++)
        release_locked(q->recent[i]);
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->work_cv);
    pthread_cond_destroy(&q->done_cv);
    free(q);
}

int vkd_jobs_submit(vkd_jobs *q, vkd_job *job)
{
    pthread_mutex_lock(&q->lock);
    int rc = 0;
    if (q->stop)
        rc = 503;
    else if (q->queued >= q->srv->cfg.queue_max)
        rc = 429;
    else {
        job->refs++; /* the queue's */
        job->state = VKD_JOB_QUEUED;
        job->t_queued = vkd_serve_now();
        if (q->tail)
            q->tail->next = job;
        else
            q->head = job;
        q->tail = job;
        q->queued++;
        pthread_cond_signal(&q->work_cv);
    }
    pthread_mutex_unlock(&q->lock);
    return rc;
}

void vkd_jobs_wait(vkd_jobs *q, vkd_job *job, int (*client_gone)(void *), void *user)
{
    pthread_mutex_lock(&q->lock);
    while (job->state != VKD_JOB_DONE) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000)
            ts.tv_sec++, ts.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&q->done_cv, &q->lock, &ts);
        if (job->state != VKD_JOB_DONE && !job->cancel) {
            pthread_mutex_unlock(&q->lock);
            int gone = client_gone && client_gone(user);
            pthread_mutex_lock(&q->lock);
            if (gone)
                job->client_gone = job->cancel = 1;
            else if (vkd_serve_now() > job->deadline) /* waited in the queue past its deadline */
                job->timed_out = job->cancel = 1;
        }
    }
    pthread_mutex_unlock(&q->lock);
}

void vkd_jobs_interrupt(vkd_jobs *q)
{
    pthread_mutex_lock(&q->lock);
    for (int i = 0; i < q->n_workers; i++)
        if (q->running[i])
            q->running[i]->interrupted = q->running[i]->cancel = 1;
    pthread_mutex_unlock(&q->lock);
}

void vkd_jobs_progress(vkd_jobs *q, const char *id, int want_preview, vkd_progress *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&q->lock);
    vkd_job *job = NULL;
    out->job_count = q->queued;
    for (int i = 0; i < q->n_workers; i++) {
        vkd_job *r = q->running[i];
        if (!r)
            continue;
        out->job_count++;
        if (id && *id ? !strcmp(r->id, id) : (!job || r->t_started > job->t_started))
            job = r;
    }
    if (id && *id && !job) {
        for (vkd_job *j = q->head; j && !job; j = j->next)
            if (!strcmp(j->id, id))
                job = j;
        for (int i = 0; i < RECENT && !job; i++)
            if (q->recent[i] && !strcmp(q->recent[i]->id, id))
                job = q->recent[i];
    }
    if (job) {
        out->found = 1;
        out->state = job->state, out->image = job->image, out->count = job->count;
        out->step = job->step, out->steps = job->steps, out->interrupted = job->interrupted;
        out->t_started = job->t_started;
        out->elapsed = job->state == VKD_JOB_QUEUED ? 0 : (job->state == VKD_JOB_DONE ? job->t_done : vkd_serve_now()) -
                                                          job->t_started;
        snprintf(out->id, sizeof out->id, "%s", job->id);
        if (want_preview && job->preview_png && job->state == VKD_JOB_RUNNING) {
            out->preview = malloc(job->preview_len);
            if (out->preview) {
                memcpy(out->preview, job->preview_png, job->preview_len);
                out->preview_len = job->preview_len;
            }
        }
    }
    pthread_mutex_unlock(&q->lock);
}
