/* The CLI's pipeline-cache folder: $VKD_CACHE_DIR (empty: none), else
 * $XDG_CACHE_HOME/vkdiff, else ~/.cache/vkdiff (created). NULL when there is none. */
#ifndef VKD_CLI_CACHE_DIR_H
#define VKD_CLI_CACHE_DIR_H

#include <stddef.h>

const char *vkd_cli_cache_dir(char *buf, size_t n);

#endif
