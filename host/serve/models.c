/* Models and LoRAs in their folders (models.h). */
#define _POSIX_C_SOURCE 200809L
#include "serve/models.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/infotext.h"

/* What a .safetensors file holds, from the key names in its header: 1 a checkpoint,
 * 2 a LoRA, 0 something else (a TAESD, a VAE) or not a safetensors file. Only the
 * header is read (at most 8 MiB of it). */
static int probe(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    uint8_t le[8];
    int kind = 0;
    if (fread(le, 1, 8, f) == 8) {
        uint64_t n = 0;
        for (int i = 7; i >= 0; i--)
            n = n << 8 | le[i];
        if (n > 8u << 20)
            n = 8u << 20;
        char *h = n ? malloc(n + 1) : NULL;
        if (h && fread(h, 1, n, f) == n) {
            h[n] = 0;
            if (strstr(h, "lora_up") || strstr(h, "lora_down") || strstr(h, "lora_A") || strstr(h, "hada_w1") ||
                strstr(h, "lokr_w1"))
                kind = 2;
            else if (strstr(h, "model.diffusion_model."))
                kind = 1;
        }
        free(h);
    }
    fclose(f);
    return kind;
}

static int by_file(const void *a, const void *b)
{
    return strcmp(((const vkd_model_entry *)a)->file, ((const vkd_model_entry *)b)->file);
}

int vkd_models_list(const char *dir, int kind, vkd_model_entry **out, int *n)
{
    *out = NULL, *n = 0;
    DIR *d = dir ? opendir(dir) : NULL;
    if (!d)
        return -1;
    vkd_model_entry *list = NULL;
    int count = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *name = de->d_name;
        size_t len = strlen(name);
        if (name[0] == '.' || len >= sizeof list->file)
            continue;
        vkd_model_entry e;
        memset(&e, 0, sizeof e);
        if (snprintf(e.path, sizeof e.path, "%s/%s", dir, name) >= (int)sizeof e.path)
            continue;
        struct stat st;
        if (stat(e.path, &st))
            continue;
        int is_st = len > 12 && !strcmp(name + len - 12, ".safetensors") && S_ISREG(st.st_mode);
        int hit = 0;
        if (is_st)
            hit = probe(e.path) == (kind == VKD_LIST_LORAS ? 2 : 1);
        else if (kind == VKD_LIST_CHECKPOINTS && S_ISDIR(st.st_mode)) { /* a diffusers folder */
            char idx[4200];
            snprintf(idx, sizeof idx, "%s/model_index.json", e.path);
            hit = stat(idx, &st) == 0;
        }
        if (!hit)
            continue;
        snprintf(e.file, sizeof e.file, "%s", name);
        snprintf(e.stem, sizeof e.stem, "%.*s", is_st ? (int)len - 12 : (int)len, name);
        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            vkd_model_entry *grown = realloc(list, (size_t)cap * sizeof *list);
            if (!grown)
                break;
            list = grown;
        }
        list[count++] = e;
    }
    closedir(d);
    if (count)
        qsort(list, (size_t)count, sizeof *list, by_file);
    *out = list, *n = count;
    return 0;
}

int vkd_models_resolve(vkd_server *srv, const char *name, char **path, char **file, vkd_req_err *e)
{
    *path = *file = NULL;
    char want[256];
    if (!name || !*name) {
        pthread_mutex_lock(&srv->lock);
        snprintf(want, sizeof want, "%s", srv->opts.model);
        pthread_mutex_unlock(&srv->lock);
    } else {
        size_t len = strlen(name);
        const char *br = strstr(name, " [");
        if (br && name[len - 1] == ']') /* A1111's title: "name.safetensors [1a2b3c4d5e]" */
            len = (size_t)(br - name);
        if (len == 0 || len >= sizeof want)
            return vkd_req_fail(e, 400, "model", "model name too long or empty");
        snprintf(want, sizeof want, "%.*s", (int)len, name);
        if (strchr(want, '/') || strchr(want, '\\') || want[0] == '.' || strstr(want, ".."))
            return vkd_req_fail(e, 400, "model", "model names are file names in the model folder: no paths");
    }
    const vkd_serve_cfg *cfg = &srv->cfg;
    /* the default model may live outside --model-dir: it is found by its file name */
    const char *def = vkd_base_name(cfg->model);
    char cand[4096];
    struct stat st;
    for (int k = 0; k < 3; k++) {
        if (k == 0)
            snprintf(cand, sizeof cand, "%s/%s", cfg->model_dir, want);
        else if (k == 1)
            snprintf(cand, sizeof cand, "%s/%s.safetensors", cfg->model_dir, want);
        else if (!strcmp(want, def) || (!strncmp(def, want, strlen(want)) && !strcmp(def + strlen(want), ".safetensors")))
            snprintf(cand, sizeof cand, "%s", cfg->model);
        else
            break;
        if (stat(cand, &st) == 0 && (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))) {
            *path = strdup(cand);
            *file = strdup(vkd_base_name(cand));
            if (!*path || !*file) {
                free(*path), free(*file);
                *path = *file = NULL;
                return vkd_req_fail(e, 500, NULL, "out of memory");
            }
            return 0;
        }
    }
    return vkd_req_fail(e, 404, "model", "no model '%s' (GET /sdapi/v1/sd-models lists them)", want);
}
