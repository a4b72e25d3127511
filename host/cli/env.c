/* The CLI's environment switches (env.h). The pipeline-cache folder: first runs on
 * lavapipe and phone drivers are dominated by shader compilation (issue 6), so every
 * run after the first reuses what the driver compiled. */
#define _POSIX_C_SOURCE 200809L /* getpid, mkdir */
#include "cli/env.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int make_dir(const char *p)
{
    return mkdir(p, 0755) == 0 || errno == EEXIST ? 0 : -1;
}

static const char *cache_dir(char *buf, size_t n)
{
    const char *env = getenv("VKD_CACHE_DIR");
    if (env) /* VKD_CACHE_DIR= (empty): no cache */
        return env[0] && make_dir(env) == 0 ? env : NULL;
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (xdg && xdg[0]) {
        snprintf(buf, n, "%s", xdg);
    } else if (home && home[0]) {
        snprintf(buf, n, "%s/.cache", home);
        if (make_dir(buf))
            return NULL;
    } else {
        return NULL;
    }
    size_t k = strlen(buf);
    if (k + 8 >= n)
        return NULL;
    snprintf(buf + k, n - k, "/vkdiff");
    return make_dir(buf) ? NULL : buf;
}

void vkd_cli_env_read(vkd_cli_env *e)
{
    e->cache_dir = cache_dir(e->cache_buf, sizeof e->cache_buf);
    e->coopmat = getenv("VKD_COOPMAT");
    e->bench_passes = getenv("VKD_BENCH_PASSES") != NULL;
    const char *pause = getenv("VKD_TEST_WRITE_PAUSE_MS");
    e->write_pause_ms = pause ? atoi(pause) : 0;
}
