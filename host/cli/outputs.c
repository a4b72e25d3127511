/* See outputs.h. */
#define _POSIX_C_SOURCE 200809L
#include "cli/outputs.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

char *vkd_cli_batch_path(const char *out, long long index, long long count)
{
    size_t n = strlen(out) + 32;
    char *p = malloc(n);
    if (!p)
        return NULL;
    if (count <= 1) {
        snprintf(p, n, "%s", out);
        return p;
    }
    const char *slash = strrchr(out, '/');
    const char *base = slash ? slash + 1 : out;
    const char *dot = strrchr(base, '.');
    if (!dot || dot == base) /* no extension (".hidden" is a name, not an extension) */
        dot = base + strlen(base);
    snprintf(p, n, "%.*s-%03lld%s", (int)(dot - out), out, index, dot);
    return p;
}

static int same_inode(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* whether `o` is `path` or a file under it (folders followed `depth` more levels) */
static int contains(const struct stat *o, const char *path, int depth)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return 0;
    if (same_inode(o, &st))
        return 1;
    if (!S_ISDIR(st.st_mode) || depth <= 0)
        return 0;
    DIR *d = opendir(path);
    if (!d)
        return 0;
    int found = 0;
    struct dirent *e;
    while (!found && (e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        size_t n = strlen(path) + strlen(e->d_name) + 2;
        char *sub = malloc(n);
        if (!sub)
            break;
        snprintf(sub, n, "%s/%s", path, e->d_name);
        found = contains(o, sub, depth - 1);
        free(sub);
    }
    closedir(d);
    return found;
}

int vkd_cli_output_is_input(const char *out, const char *input, const char *what)
{
    struct stat o;
    if (!input || stat(out, &o) != 0) /* an output that does not exist yet replaces nothing */
        return 0;
    if (!contains(&o, input, 2))
        return 0;
    struct stat in;
    int folder = stat(input, &in) == 0 && S_ISDIR(in.st_mode);
    fprintf(stderr, "vkdiff: the output '%s' is the same file as %s %s '%s': refusing to write over it\n", out,
            folder ? "a file in the" : "the", what, input);
    return 1;
}

void vkd_strbuf_printf(vkd_strbuf *b, const char *fmt, ...)
{
    if (b->failed)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        return;
    }
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = (b->len + (size_t)n + 1) * 2;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->failed = 1;
            return;
        }
        b->s = s, b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void vkd_strbuf_free(vkd_strbuf *b)
{
    free(b->s);
    memset(b, 0, sizeof *b);
}
