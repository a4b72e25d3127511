/* TAESD key layouts -> internal names (layout_taesd.h). The rules are generated per
 * Sequential index because diffusers' DecoderTiny numbers its layers one lower than
 * taesd.py's Decoder (no Clamp module), which a '#' copy cannot express. */
#define _POSIX_C_SOURCE 200809L
#include "io/layout_taesd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "io/layout_impl.h"

/* taesd.py's Sequentials have 20 (decoder) and 15 (encoder) entries; a little more
 * lets a file with extra layers be mapped and then refused by the shape check,
 * naming what is wrong, rather than silently ignored */
#define MAX_INDEX 64

/* rules "<src><i>." -> "<dst><i + shift>." for every index */
static int add_index_rules(ruleset *rs, const char *src, const char *dst, int shift)
{
    char from[96], to[96];
    for (int i = 0; i < MAX_INDEX; i++) {
        snprintf(from, sizeof from, "%s%d.", src, i);
        snprintf(to, sizeof to, "%s%d.", dst, i + shift);
        if (!vkd_ruleset_add(rs, 0, from, to))
            return 0;
    }
    return 1;
}

/* One file: which layout its keys are in, mapped through the matching rules. */
static vkd_result map_file(vkd_weights *w, const vkd_st_file *f)
{
    ruleset rs = {0};
    int ok = 1;
    if (vkd_layout_has_prefix(f, "decoder.layers.") || vkd_layout_has_prefix(f, "encoder.layers.")) {
        ok = add_index_rules(&rs, "decoder.layers.", VKD_TAESD_DEC, 1) &&
             add_index_rules(&rs, "encoder.layers.", VKD_TAESD_ENC, 0);
    } else if (vkd_layout_has_prefix(f, "taesd_decoder.") || vkd_layout_has_prefix(f, "taesd_encoder.")) {
        ok = add_index_rules(&rs, "taesd_decoder.", VKD_TAESD_DEC, 0) &&
             add_index_rules(&rs, "taesd_encoder.", VKD_TAESD_ENC, 0);
    } else if (vkd_layout_has_prefix(f, "0.")) {
        ok = add_index_rules(&rs, "", VKD_TAESD_ENC, 0); /* only the encoder has a layer 0 */
    } else {
        ok = add_index_rules(&rs, "", VKD_TAESD_DEC, 0);
    }
    vkd_result r = ok ? VKD_OK : VKD_ERR_OUT_OF_HOST_MEMORY;
    unsigned char *claimed = calloc(vkd_st_count(f) + 1, 1);
    if (!claimed)
        r = VKD_ERR_OUT_OF_HOST_MEMORY;
    if (!r)
        r = vkd_layout_map_part(w, f, claimed, "", &rs, "");
    if (!r)
        r = vkd_layout_ignore_rest(w, f, claimed, " (not a TAESD key)");
    free(claimed);
    vkd_ruleset_free(&rs);
    return r;
}

static vkd_result open_and_map(vkd_weights *w, const char *path)
{
    vkd_st_file *f = NULL;
    vkd_result r = vkd_layout_add_file(w, path, &f);
    return r ? r : map_file(w, f);
}

static vkd_result open_folder(vkd_weights *w, const char *dir)
{
    static const char *const diffusers[] = {"diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors"};
    static const char *const pair[] = {"taesd_decoder.safetensors", "taesd_encoder.safetensors",
                                       "taesdxl_decoder.safetensors", "taesdxl_encoder.safetensors"};
    char p[4096];
    for (size_t i = 0; i < sizeof diffusers / sizeof diffusers[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, diffusers[i]);
        if (vkd_layout_is_file(p))
            return open_and_map(w, p);
    }
    int found = 0;
    for (size_t i = 0; i < sizeof pair / sizeof pair[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, pair[i]);
        if (!vkd_layout_is_file(p))
            continue;
        vkd_result r = open_and_map(w, p);
        if (r)
            return r;
        found++;
    }
    if (!found) {
        VKD_ERROR("%s: no TAESD file in this folder (diffusion_pytorch_model.safetensors, vae/ or "
                  "taesd[xl]_decoder/_encoder.safetensors)", dir);
        return VKD_ERR_IO;
    }
    return VKD_OK;
}

static int cmp_wt(const void *a, const void *b)
{
    return strcmp(((const vkd_wtensor *)a)->name, ((const vkd_wtensor *)b)->name);
}

/* Sort by internal name; refuse two sources of one tensor and a file with none. */
static vkd_result finish(vkd_weights *w, const char *path)
{
    if (w->n)
        qsort(w->t, w->n, sizeof *w->t, cmp_wt);
    for (size_t i = 1; i < w->n; i++)
        if (strcmp(w->t[i - 1].name, w->t[i].name) == 0) {
            VKD_ERROR("%s: '%s' (in %s) and '%s' (in %s) are the same TAESD tensor", path, w->t[i - 1].src->name,
                      w->t[i - 1].file, w->t[i].src->name, w->t[i].file);
            return VKD_ERR_FORMAT;
        }
    if (w->n == 0) {
        VKD_ERROR("%s: not a TAESD file (no key of taesd.py's or diffusers' AutoencoderTiny layout)", path);
        return VKD_ERR_UNSUPPORTED;
    }
    return VKD_OK;
}

vkd_result vkd_weights_open_taesd(const char *path, vkd_weights **out)
{
    if (!out || !path)
        return VKD_ERR_INVALID_ARG;
    *out = NULL;
    vkd_weights *w = calloc(1, sizeof *w);
    if (!w)
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    w->layout = vkd_layout_is_dir(path) ? VKD_LAYOUT_DIFFUSERS : VKD_LAYOUT_COMPVIS;
    vkd_result r = vkd_layout_is_dir(path) ? open_folder(w, path) : open_and_map(w, path);
    if (!r)
        r = finish(w, path);
    if (r) {
        vkd_weights_close(w);
        return r;
    }
    *out = w;
    return VKD_OK;
}

vkd_result vkd_weights_open_taesd_memory(const void *data, size_t size, const char *label, vkd_weights **out)
{
    if (!out || !data)
        return VKD_ERR_INVALID_ARG;
    *out = NULL;
    vkd_weights *w = calloc(1, sizeof *w);
    if (!w)
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    vkd_st_file *f = NULL;
    vkd_result r = VKD_ERR_OUT_OF_HOST_MEMORY;
    if ((w->files = calloc(1, sizeof *w->files))) {
        w->capfiles = 1;
        r = vkd_st_open_memory(data, size, label, &f);
    }
    if (!r) {
        w->files[w->nfiles++] = f;
        r = map_file(w, f);
    }
    if (!r)
        r = finish(w, label);
    if (r) {
        vkd_weights_close(w);
        return r;
    }
    *out = w;
    return VKD_OK;
}
