/* Logging: one process-wide sink (a callback), set by the API or CLI.
 * Library code never prints to stdout/stderr directly and never exits. */
#ifndef VKD_LOG_H
#define VKD_LOG_H

#include "vkdiff.h" /* vkd_log_level, vkd_log_fn */

/* Install a sink for the calling thread (NULL restores the default: messages to
 * stderr) and the most verbose level that reaches it. */
void vkd_log_set(vkd_log_fn fn, void *user, vkd_log_level max_level);
vkd_log_level vkd_log_level_get(void);
void vkd_log_get(vkd_log_fn *fn, void **user, vkd_log_level *max_level);

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void vkd_log(vkd_log_level level, const char *fmt, ...);

#define VKD_ERROR(...) vkd_log(VKD_LOG_ERROR, __VA_ARGS__)
#define VKD_WARN(...) vkd_log(VKD_LOG_WARN, __VA_ARGS__)
#define VKD_INFO(...) vkd_log(VKD_LOG_INFO, __VA_ARGS__)
#define VKD_DEBUG(...) vkd_log(VKD_LOG_DEBUG, __VA_ARGS__)

#endif
