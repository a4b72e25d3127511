#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>

/* Per thread, so contexts used on different threads each reach their own sink (the
 * API installs a context's sink for the duration of each call, see vkdiff.h). */
static _Thread_local vkd_log_fn g_fn;
static _Thread_local void *g_user;
static _Thread_local vkd_log_level g_max = VKD_LOG_WARN;

void vkd_log_set(vkd_log_fn fn, void *user, vkd_log_level max_level)
{
    g_fn = fn;
    g_user = user;
    g_max = max_level;
}

vkd_log_level vkd_log_level_get(void) { return g_max; }

void vkd_log_get(vkd_log_fn *fn, void **user, vkd_log_level *max_level)
{
    *fn = g_fn;
    *user = g_user;
    *max_level = g_max;
}

void vkd_log(vkd_log_level level, const char *fmt, ...)
{
    if (level > g_max)
        return;
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (g_fn) {
        g_fn(level, buf, g_user);
        return;
    }
    static const char *const tag[] = {"error", "warning", "info", "debug"};
    fprintf(stderr, "vkdiff: %s: %s\n", tag[level], buf);
}
