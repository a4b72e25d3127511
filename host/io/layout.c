/* Checkpoint layouts -> internal (CompVis) names; see layout.h. This file holds the
 * weights object: which files a model path stands for (a CompVis single file, one
 * given as a descriptor, a diffusers folder with its components, a VAE that replaces
 * the checkpoint's), the parts of each file and the rule set each is mapped through,
 * the refusal of two sources for one name, and the queries. The rules themselves are
 * layout_tables.c, the engine that applies them layout_rules.c. */
#define _POSIX_C_SOURCE 200809L
#include "io/layout.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "io/layout_impl.h"

/* ---- files ----------------------------------------------------------------------- */

/* Takes ownership of an opened file (closed with w). */
static vkd_result add_opened(vkd_weights *w, vkd_st_file *f)
{
    if (w->nfiles == w->capfiles) {
        size_t cap = w->capfiles ? w->capfiles * 2 : 8;
        vkd_st_file **p = realloc(w->files, cap * sizeof *p);
        if (!p) {
            vkd_st_close(f);
            return VKD_ERR_OUT_OF_HOST_MEMORY;
        }
        w->files = p;
        w->capfiles = cap;
    }
    w->files[w->nfiles++] = f;
    return VKD_OK;
}

vkd_result vkd_layout_add_file(vkd_weights *w, const char *path, vkd_st_file **out)
{
    if (w->nfiles == w->capfiles) {
        size_t cap = w->capfiles ? w->capfiles * 2 : 8;
        vkd_st_file **p = realloc(w->files, cap * sizeof *p);
        if (!p)
            return VKD_ERR_OUT_OF_HOST_MEMORY;
        w->files = p;
        w->capfiles = cap;
    }
    vkd_result r = vkd_st_open(path, out);
    if (r)
        return r;
    w->files[w->nfiles++] = *out;
    return VKD_OK;
}

/* ---- sources ------------------------------------------------------------------- */

static vkd_result map_single_file(vkd_weights *w, vkd_st_file *f, int skip_vae);

static vkd_result open_single_file(vkd_weights *w, const char *path, int skip_vae)
{
    vkd_st_file *f;
    vkd_result r = vkd_layout_add_file(w, path, &f);
    if (r)
        return r;
    return map_single_file(w, f, skip_vae);
}

static vkd_result map_single_file(vkd_weights *w, vkd_st_file *f, int skip_vae)
{
    vkd_result r;
    unsigned char *claimed = calloc(vkd_st_count(f) + 1, 1);
    if (!claimed)
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    /* stable-diffusion.cpp's --convert-name puts SDXL's two encoders at
     * cond_stage_model.transformer. and cond_stage_model.1.transformer. (docs/gguf.md) */
    int sdcpp_xl = vkd_layout_has_prefix(f, "cond_stage_model.1.transformer.");
    if (!(r = vkd_layout_map_part(w, f, claimed, "model.diffusion_model.", &vkd_rs_identity, "model.diffusion_model.")) &&
        !(r = skip_vae ? VKD_OK : vkd_layout_map_vae(w, f, claimed, "first_stage_model.")) &&
        !(r = vkd_layout_map_part(w, f, claimed, "cond_stage_model.1.transformer.", &vkd_rs_hf_clip,
                                  "conditioner.embedders.1.transformer.")) &&
        !(r = vkd_layout_map_part(w, f, claimed, "cond_stage_model.transformer.", &vkd_rs_hf_clip,
                                  sdcpp_xl ? "conditioner.embedders.0.transformer." : "cond_stage_model.transformer.")) &&
        !(r = vkd_layout_map_part(w, f, claimed, "cond_stage_model.model.", &vkd_rs_openclip, "cond_stage_model.transformer.")) &&
        !(r = vkd_layout_map_part(w, f, claimed, "conditioner.embedders.0.transformer.", &vkd_rs_hf_clip,
                       "conditioner.embedders.0.transformer.")) &&
        !(r = vkd_layout_map_part(w, f, claimed, "conditioner.embedders.1.model.", &vkd_rs_openclip,
                       "conditioner.embedders.1.transformer.")))
        r = vkd_layout_ignore_rest(w, f, claimed, skip_vae ? " (unmapped, or VAE replaced by --vae)" : "");
    free(claimed);
    return r;
}

int vkd_layout_is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

int vkd_layout_is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* The weights file of a diffusers component folder, preferring full precision as
 * diffusers does without `variant`. Returns 1 found, 0 absent, -1 pickle only. */
static int find_component(const char *dir, const char *sub, const char *stem, char *out, size_t cap)
{
    static const char *const suffix[] = {".safetensors", ".fp16.safetensors", ".bin", ".fp16.bin"};
    for (int i = 0; i < 4; i++) {
        snprintf(out, cap, "%s/%s/%s%s", dir, sub, stem, suffix[i]);
        if (vkd_layout_is_file(out))
            return i < 2 ? 1 : -1;
    }
    snprintf(out, cap, "%s/%s/%s.safetensors.index.json", dir, sub, stem);
    if (vkd_layout_is_file(out))
        return -2;
    return 0;
}

static vkd_result open_component(vkd_weights *w, const char *dir, const char *sub, const char *stem, int required,
                                 vkd_st_file **f)
{
    char path[4096];
    *f = NULL;
    int k = find_component(dir, sub, stem, path, sizeof path);
    if (k == 1)
        return vkd_layout_add_file(w, path, f);
    if (k == -1)
        return vkd_st_open(path, f); /* refuses the pickle with its message */
    if (k == -2) {
        VKD_ERROR("%s: sharded weights are not supported yet; merge the shards into one .safetensors", path);
        return VKD_ERR_UNSUPPORTED;
    }
    if (required) {
        VKD_ERROR("%s/%s: no %s.safetensors (not a diffusers model folder?)", dir, sub, stem);
        return VKD_ERR_IO;
    }
    return VKD_OK;
}

static vkd_result map_whole(vkd_weights *w, vkd_st_file *f, vkd_result (*fn)(vkd_weights *, const vkd_st_file *, unsigned char *, const void *),
                            const void *arg)
{
    unsigned char *claimed = calloc(vkd_st_count(f) + 1, 1);
    if (!claimed)
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    vkd_result r = fn(w, f, claimed, arg);
    if (!r)
        r = vkd_layout_ignore_rest(w, f, claimed, "");
    free(claimed);
    return r;
}

static vkd_result fn_unet(vkd_weights *w, const vkd_st_file *f, unsigned char *c, const void *a)
{
    (void)a;
    return vkd_layout_map_diffusers_unet(w, f, c);
}
static vkd_result fn_vae(vkd_weights *w, const vkd_st_file *f, unsigned char *c, const void *a)
{
    vkd_result r = vkd_layout_map_vae(w, f, c, "first_stage_model.");
    return r ? r : vkd_layout_map_vae(w, f, c, (const char *)a);
}
static vkd_result fn_te(vkd_weights *w, const vkd_st_file *f, unsigned char *c, const void *a)
{
    return vkd_layout_map_part(w, f, c, "", &vkd_rs_hf_clip, (const char *)a);
}

static vkd_result open_diffusers(vkd_weights *w, const char *dir, int skip_vae)
{
    vkd_st_file *f;
    vkd_result r;
    if ((r = open_component(w, dir, "unet", "diffusion_pytorch_model", 1, &f)) || (r = map_whole(w, f, fn_unet, NULL)))
        return r;
    if (!skip_vae && ((r = open_component(w, dir, "vae", "diffusion_pytorch_model", 0, &f)) ||
                      (f && (r = map_whole(w, f, fn_vae, "")))))
        return r;
    vkd_st_file *te2;
    if ((r = open_component(w, dir, "text_encoder_2", "model", 0, &te2)))
        return r;
    const char *te1_prefix = te2 ? "conditioner.embedders.0.transformer." : "cond_stage_model.transformer.";
    if (te2 && (r = map_whole(w, te2, fn_te, "conditioner.embedders.1.transformer.")))
        return r;
    if ((r = open_component(w, dir, "text_encoder", "model", 1, &f)) || (r = map_whole(w, f, fn_te, te1_prefix)))
        return r;
    const char *tok[2] = {"tokenizer", "tokenizer_2"};
    for (int i = 0; i < 2; i++) {
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, tok[i]);
        if (vkd_layout_is_dir(p) && !(w->tok_dir[i] = strdup(p)))
            return VKD_ERR_OUT_OF_HOST_MEMORY;
    }
    return VKD_OK;
}

static vkd_result open_vae_override(vkd_weights *w, const char *path)
{
    vkd_st_file *f = NULL;
    vkd_result r;
    if (vkd_layout_is_dir(path)) { /* a diffusers vae/ folder, or a model folder holding one */
        char sub[4096];
        snprintf(sub, sizeof sub, "%s/vae", path);
        r = open_component(w, path, vkd_layout_is_dir(sub) ? "vae" : ".", "diffusion_pytorch_model", 1, &f);
    } else {
        r = vkd_layout_add_file(w, path, &f);
    }
    if (r)
        return r;
    return map_whole(w, f, fn_vae, "");
}

static int cmp_wt(const void *a, const void *b)
{
    return strcmp(((const vkd_wtensor *)a)->name, ((const vkd_wtensor *)b)->name);
}

void vkd_weights_close(vkd_weights *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n; i++)
        free((char *)w->t[i].name);
    free(w->t);
    for (size_t i = 0; i < w->nign; i++)
        free(w->ignored[i]);
    free(w->ignored);
    for (size_t i = 0; i < w->nfiles; i++)
        vkd_st_close(w->files[i]);
    free(w->files);
    free(w->tok_dir[0]);
    free(w->tok_dir[1]);
    free(w);
}

static vkd_result finish(vkd_weights *w, const char *model_path);

vkd_result vkd_weights_open(const char *model_path, const char *vae_path, vkd_weights **out)
{
    if (!out || !model_path)
        return VKD_ERR_INVALID_ARG;
    *out = NULL;
    vkd_weights *w = calloc(1, sizeof *w);
    if (!w)
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    vkd_result r;
    if (vkd_layout_is_dir(model_path)) {
        w->layout = VKD_LAYOUT_DIFFUSERS;
        r = open_diffusers(w, model_path, vae_path != NULL);
    } else {
        w->layout = VKD_LAYOUT_COMPVIS;
        r = open_single_file(w, model_path, vae_path != NULL);
    }
    if (!r && vae_path)
        r = open_vae_override(w, vae_path);
    if (r)
        goto fail;
    r = finish(w, model_path);
    if (r)
        goto fail;
    *out = w;
    return VKD_OK;
fail:
    vkd_weights_close(w);
    return r;
}

vkd_result vkd_weights_open_fd(int fd, uint64_t offset, size_t length, const char *label, vkd_weights **out)
{
    if (!out)
        return VKD_ERR_INVALID_ARG;
    *out = NULL;
    vkd_weights *w = calloc(1, sizeof *w);
    if (!w)
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    w->layout = VKD_LAYOUT_COMPVIS;
    vkd_st_file *f = NULL;
    vkd_result r = vkd_st_open_fd(fd, offset, length, label ? label : "(file descriptor)", &f);
    if (!r)
        r = add_opened(w, f);
    if (!r)
        r = map_single_file(w, f, 0);
    if (!r)
        r = finish(w, label ? label : "(file descriptor)");
    if (r) {
        vkd_weights_close(w);
        return r;
    }
    *out = w;
    return VKD_OK;
}

/* Sort by internal name and refuse two sources for one name. */
static vkd_result finish(vkd_weights *w, const char *model_path)
{
    vkd_result r = VKD_OK;
    if (w->n)
        qsort(w->t, w->n, sizeof *w->t, cmp_wt);
    for (size_t i = 1; i < w->n; i++)
        if (strcmp(w->t[i - 1].name, w->t[i].name) == 0) {
            VKD_ERROR("'%s' (in %s) and '%s' (in %s) both map to '%s'", w->t[i - 1].src->name, w->t[i - 1].file,
                      w->t[i].src->name, w->t[i].file, w->t[i].name);
            r = VKD_ERR_FORMAT;
            goto fail;
        }
    if (w->n == 0) {
        VKD_ERROR("%s: no Stable Diffusion weights found (no key matches a known layout)", model_path);
        r = VKD_ERR_UNSUPPORTED;
        goto fail;
    }
    VKD_DEBUG("%s: %zu tensors mapped, %zu ignored", model_path, w->n, w->nign);
    return VKD_OK;
fail:
    return r;
}

/* ---- queries ---------------------------------------------------------------------- */

vkd_layout vkd_weights_layout(const vkd_weights *w) { return w ? w->layout : VKD_LAYOUT_COMPVIS; }
const char *vkd_layout_name(vkd_layout l) { return l == VKD_LAYOUT_DIFFUSERS ? "diffusers folder" : "CompVis single file"; }
size_t vkd_weights_count(const vkd_weights *w) { return w ? w->n : 0; }
const vkd_wtensor *vkd_weights_at(const vkd_weights *w, size_t i) { return w && i < w->n ? &w->t[i] : NULL; }
size_t vkd_weights_file_count(const vkd_weights *w) { return w ? w->nfiles : 0; }
const vkd_st_file *vkd_weights_file(const vkd_weights *w, size_t i) { return w && i < w->nfiles ? w->files[i] : NULL; }
size_t vkd_weights_ignored_count(const vkd_weights *w) { return w ? w->nign : 0; }
const char *vkd_weights_ignored(const vkd_weights *w, size_t i) { return w && i < w->nign ? w->ignored[i] : NULL; }
const char *vkd_weights_tokenizer_dir(const vkd_weights *w, int which)
{
    return w && (which == 0 || which == 1) ? w->tok_dir[which] : NULL;
}

const vkd_wtensor *vkd_weights_find(const vkd_weights *w, const char *name)
{
    if (!w || !name)
        return NULL;
    size_t lo = 0, hi = w->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(w->t[mid].name, name);
        if (c == 0)
            return &w->t[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

int vkd_weights_shape(const vkd_weights *w, const char *name, int64_t shape[VKD_ST_MAX_RANK])
{
    const vkd_wtensor *t = vkd_weights_find(w, name);
    if (!t)
        return -1;
    memcpy(shape, t->shape, sizeof t->shape);
    return t->rank;
}

vkd_result vkd_wtensor_read_f32(const vkd_wtensor *t, float *dst)
{
    if (!t || (!dst && t->nelem))
        return VKD_ERR_INVALID_ARG;
    if (!(t->flags & VKD_WT_TRANSPOSE))
        return vkd_st_convert_f32(t->src->dtype, t->src->data, t->first, t->nelem, dst);
    /* internal [a, b] from source [b, a]: convert one source row, scatter it to a column */
    size_t a = (size_t)t->shape[0], b = (size_t)t->shape[1];
    float *row = malloc((a ? a : 1) * sizeof *row);
    if (!row)
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    vkd_result r = VKD_OK;
    for (size_t i = 0; i < b && !r; i++) {
        r = vkd_st_convert_f32(t->src->dtype, t->src->data, t->first + i * a, a, row);
        for (size_t j = 0; j < a && !r; j++)
            dst[j * b + i] = row[j];
    }
    free(row);
    return r;
}

vkd_result vkd_wtensor_read_f16(const vkd_wtensor *t, uint16_t *dst)
{
    if (!t || (!dst && t->nelem))
        return VKD_ERR_INVALID_ARG;
    if (!(t->flags & VKD_WT_TRANSPOSE))
        return vkd_st_convert_f16(t->src->dtype, t->src->data, t->first, t->nelem, dst);
    size_t a = (size_t)t->shape[0], b = (size_t)t->shape[1];
    uint16_t *row = malloc((a ? a : 1) * sizeof *row);
    if (!row)
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    vkd_result r = VKD_OK;
    for (size_t i = 0; i < b && !r; i++) {
        r = vkd_st_convert_f16(t->src->dtype, t->src->data, t->first + i * a, a, row);
        for (size_t j = 0; j < a && !r; j++)
            dst[j * b + i] = row[j];
    }
    free(row);
    return r;
}
