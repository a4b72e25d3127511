/* LoRA module names for every tensor a LoRA may change (see lora_names.h).
 *
 * Conventions (docs/lora.md has the sources):
 *   kohya sd-scripts, SD1/SD2   lora_unet_<diffusers path>, lora_te_<HF CLIP path>
 *   kohya sd-scripts, SDXL      lora_unet_<sgm path>, lora_te1_ / lora_te2_
 *   PEFT / diffusers            unet.<diffusers path>, text_encoder(_2).<HF CLIP path>
 * with '.' -> '_' in the kohya forms. Both UNet paths are offered for every family (as
 * stable-diffusion.cpp accepts both); they never collide (input_blocks vs down_blocks). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lora/lora_names.h"

#define UNET_PREFIX "model.diffusion_model."

static const char *const resnet_pairs[][2] = {
    {"in_layers.0", "norm1"}, {"in_layers.2", "conv1"}, {"emb_layers.1", "time_emb_proj"},
    {"out_layers.0", "norm2"}, {"out_layers.3", "conv2"}, {"skip_connection", "conv_shortcut"},
};

static int resnet_inner(const char *rest, char *out, size_t cap, const char *head)
{
    for (size_t k = 0; k < sizeof resnet_pairs / sizeof resnet_pairs[0]; k++) {
        size_t n = strlen(resnet_pairs[k][0]);
        if (!strncmp(rest, resnet_pairs[k][0], n) && (rest[n] == '.' || !rest[n]))
            return snprintf(out, cap, "%s%s%s", head, resnet_pairs[k][1], rest + n) < (int)cap;
    }
    return 0;
}

/* The inverse of layout_tables.c's diffusers UNet rules (diffusers'
 * convert_diffusers_to_original_stable_diffusion.py unet_conversion_map). */
int vkd_unet_diffusers_path(const vkd_unet_config *u, const char *path, char *out, size_t cap)
{
    static const char *const fixed[][2] = {
        {"time_embed.0", "time_embedding.linear_1"}, {"time_embed.2", "time_embedding.linear_2"},
        {"label_emb.0.0", "add_embedding.linear_1"}, {"label_emb.0.2", "add_embedding.linear_2"},
        {"input_blocks.0.0", "conv_in"},             {"out.0", "conv_norm_out"},
        {"out.2", "conv_out"},
    };
    for (size_t k = 0; k < sizeof fixed / sizeof fixed[0]; k++) {
        size_t n = strlen(fixed[k][0]);
        if (!strncmp(path, fixed[k][0], n) && (path[n] == '.' || !path[n]))
            return snprintf(out, cap, "%s%s", fixed[k][1], path + n) < (int)cap;
    }
    int R = u->num_res_blocks + 1, n = -1, sub = -1, len = 0;
    char head[64];
    if (sscanf(path, "input_blocks.%d.%d.%n", &n, &sub, &len) == 2 && len > 0 && n >= 1) {
        const char *rest = path + len;
        int i = (n - 1) / R, j = (n - 1) % R;
        if (j == R - 1) {
            if (strncmp(rest, "op", 2) || (rest[2] && rest[2] != '.'))
                return 0;
            return snprintf(out, cap, "down_blocks.%d.downsamplers.0.conv%s", i, rest + 2) < (int)cap;
        }
        if (sub == 0) {
            snprintf(head, sizeof head, "down_blocks.%d.resnets.%d.", i, j);
            return resnet_inner(rest, out, cap, head);
        }
        return snprintf(out, cap, "down_blocks.%d.attentions.%d.%s", i, j, rest) < (int)cap;
    }
    if (sscanf(path, "middle_block.%d.%n", &sub, &len) == 1 && len > 0) {
        const char *rest = path + len;
        if (sub == 1)
            return snprintf(out, cap, "mid_block.attentions.0.%s", rest) < (int)cap;
        snprintf(head, sizeof head, "mid_block.resnets.%d.", sub / 2);
        return (sub == 0 || sub == 2) && resnet_inner(rest, out, cap, head);
    }
    if (sscanf(path, "output_blocks.%d.%d.%n", &n, &sub, &len) == 2 && len > 0 && n >= 0) {
        const char *rest = path + len;
        int i = n / R, j = n % R;
        if (!strncmp(rest, "conv", 4) && (rest[4] == '.' || !rest[4]))
            return snprintf(out, cap, "up_blocks.%d.upsamplers.0.%s", i, rest) < (int)cap;
        if (sub == 0) {
            snprintf(head, sizeof head, "up_blocks.%d.resnets.%d.", i, j);
            return resnet_inner(rest, out, cap, head);
        }
        return snprintf(out, cap, "up_blocks.%d.attentions.%d.%s", i, j, rest) < (int)cap;
    }
    return 0;
}

static int push(vkd_lora_names *ns, const char *a, const char *b, int underscore, const vkd_wtensor *t)
{
    if (ns->n == ns->cap) {
        size_t cap = ns->cap ? ns->cap * 2 : 1024;
        vkd_lora_name *v = realloc(ns->v, cap * sizeof *v);
        if (!v)
            return 0;
        ns->v = v;
        ns->cap = cap;
    }
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 1);
    if (!s)
        return 0;
    memcpy(s, a, la);
    for (size_t i = 0; i < lb; i++)
        s[la + i] = underscore && b[i] == '.' ? '_' : b[i];
    s[la + lb] = 0;
    ns->v[ns->n++] = (vkd_lora_name){s, t};
    return 1;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const vkd_lora_name *)a)->module, ((const vkd_lora_name *)b)->module);
}

vkd_result vkd_lora_names_build(const vkd_weights *w, const vkd_model_config *cfg, vkd_lora_names *ns)
{
    memset(ns, 0, sizeof *ns);
    int sdxl = cfg->family == VKD_FAMILY_SDXL;
    char stem[512], dp[512];
    for (size_t i = 0; i < vkd_weights_count(w); i++) {
        const vkd_wtensor *t = vkd_weights_at(w, i);
        size_t len = strlen(t->name);
        if ((t->rank != 2 && t->rank != 4) || len < 7 || len >= sizeof stem || strcmp(t->name + len - 7, ".weight"))
            continue;
        memcpy(stem, t->name, len - 7);
        stem[len - 7] = 0;
        int ok = 1;
        if (!strncmp(stem, UNET_PREFIX, strlen(UNET_PREFIX))) {
            const char *p = stem + strlen(UNET_PREFIX);
            ok = push(ns, "lora_unet_", p, 1, t);
            if (ok && vkd_unet_diffusers_path(&cfg->unet, p, dp, sizeof dp))
                ok = push(ns, "lora_unet_", dp, 1, t) && push(ns, "unet.", dp, 0, t);
        } else {
            for (int k = 0; k < cfg->n_text && k < 2; k++) {
                const char *pre = cfg->text[k].prefix;
                if (!pre || strncmp(stem, pre, strlen(pre)) || strncmp(stem + strlen(pre), "text_model.encoder.", 19))
                    continue;
                const char *hf = stem + strlen(pre);
                const char *kohya = sdxl ? (k ? "lora_te2_" : "lora_te1_") : "lora_te_";
                ok = push(ns, kohya, hf, 1, t) && push(ns, k ? "text_encoder_2." : "text_encoder.", hf, 0, t);
            }
        }
        if (!ok) {
            vkd_lora_names_free(ns);
            return VKD_ERR_OUT_OF_HOST_MEMORY;
        }
    }
    if (ns->n)
        qsort(ns->v, ns->n, sizeof *ns->v, cmp_name);
    return VKD_OK;
}

void vkd_lora_names_free(vkd_lora_names *ns)
{
    for (size_t i = 0; i < ns->n; i++)
        free(ns->v[i].module);
    free(ns->v);
    memset(ns, 0, sizeof *ns);
}

const vkd_wtensor *vkd_lora_names_find(const vkd_lora_names *ns, const char *module)
{
    size_t lo = 0, hi = ns->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(ns->v[mid].module, module);
        if (!c)
            return ns->v[mid].target;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}
