/* The CLI's environment switches, read once (vkd_cli_env_read) and passed on as options;
 * the library itself reads no environment.
 *   VKD_CACHE_DIR      pipeline-cache folder (empty: none); else $XDG_CACHE_HOME/vkdiff,
 *                      else ~/.cache/vkdiff (created)
 *   VKD_COOPMAT        off|nv|khr: which cooperative-matrix GEMM kernels a device may take
 *                      (vkd_device_opts.coopmat)
 *   VKD_BENCH_PASSES   bench ops: print each group-norm pass's GPU time
 *   VKD_TEST_WRITE_PAUSE_MS  tests only: hold a written PNG's temporary file this long
 *                      before its rename (tests/cli_hardening.sh sends SIGINT then) */
#ifndef VKD_CLI_ENV_H
#define VKD_CLI_ENV_H

#include <stdbool.h>

typedef struct vkd_cli_env {
    const char *cache_dir; /* NULL when there is none */
    const char *coopmat;   /* NULL: the device's best */
    bool bench_passes;
    int write_pause_ms;
    char cache_buf[4096];
} vkd_cli_env;

void vkd_cli_env_read(vkd_cli_env *e);

#endif
