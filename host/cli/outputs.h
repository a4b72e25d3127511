/* What the CLI writes: file names for a batch, the refusal to write over an input,
 * and a growing string for the PNG's parameters text. */
#ifndef VKD_CLI_OUTPUTS_H
#define VKD_CLI_OUTPUTS_H

#include <stddef.h>

/* out itself when count == 1; else the file name's stem numbered, the folders and the
 * extension kept: "a.dir/img.png" -> "a.dir/img-007.png", "a.dir/img" -> "a.dir/img-007".
 * malloc'd (NULL: out of memory). */
char *vkd_cli_batch_path(const char *out, long long index, long long count);

/* Whether writing `out` would replace `input` (a file, or a file up to two folders
 * deep in a folder input such as a diffusers model): compared by device and inode, so
 * symlinks, hard links and "./" spellings are caught. 1 yes (message printed), 0 no. */
int vkd_cli_output_is_input(const char *out, const char *input, const char *what);

/* A string that grows as text is appended (A1111's infotext has no length limit). */
typedef struct vkd_strbuf {
    char *s;
    size_t len, cap;
    int failed; /* an allocation failed: s holds what fitted before */
} vkd_strbuf;
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void vkd_strbuf_printf(vkd_strbuf *b, const char *fmt, ...);
void vkd_strbuf_free(vkd_strbuf *b);

#endif
