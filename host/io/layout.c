/* Checkpoint layouts -> internal (CompVis) names; see layout.h.
 *
 * A rule maps a source key to an internal key: `from` is matched against the key
 * (after the part's source prefix is stripped), '#' in `from` matches a decimal
 * number that is copied to the matching '#' in `to`. Prefix rules append the rest of
 * the key; among matching rules the longest `from` wins, so a specific rule
 * ("resnets.#.conv_shortcut.") beats a general one ("resnets.#."). The diffusers
 * tables follow diffusers' scripts/convert_diffusers_to_original_stable_diffusion.py
 * (unet_conversion_map*, vae_conversion_map*) and the OpenCLIP one sd.cpp's model.cpp
 * (open_clip_to_hf_clip_model); block indices that need arithmetic (UNet input/output
 * block numbers, the VAE decoder's reversed levels) are generated from the block
 * counts found in the file. */
#define _POSIX_C_SOURCE 200809L
#include "io/layout.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"

enum {
    RN_EXACT = 1,     /* the whole key must match: nothing appended */
    RN_SPLIT3 = 2,    /* rows split in three: `to` has "%s" for q, k, v */
    RN_TRANSPOSE = 4, /* 2-D source stored transposed */
    RN_CONV1X1 = 8,   /* a rank-2 [C, C] source becomes [C, C, 1, 1] */
};

typedef struct rule {
    const char *from, *to;
    unsigned op;
} rule;

/* ---- static tables ------------------------------------------------------------ */

/* transformers CLIPTextModel(WithProjection) keys, and the older naming without
 * "text_model." seen in early SD1 files. position_ids is a buffer: not matched. */
static const rule hf_clip_rules[] = {
    {"text_model.embeddings.token_embedding.", "text_model.embeddings.token_embedding.", 0},
    {"text_model.embeddings.position_embedding.", "text_model.embeddings.position_embedding.", 0},
    {"text_model.encoder.layers.#.", "text_model.encoder.layers.#.", 0},
    {"text_model.final_layer_norm.", "text_model.final_layer_norm.", 0},
    {"text_projection.weight", "text_projection.weight", RN_EXACT},
    {"embeddings.token_embedding.", "text_model.embeddings.token_embedding.", 0},
    {"embeddings.position_embedding.", "text_model.embeddings.position_embedding.", 0},
    {"encoder.layers.#.", "text_model.encoder.layers.#.", 0},
    {"final_layer_norm.", "text_model.final_layer_norm.", 0},
};

/* open_clip TextTransformer -> CLIPTextModel names (SD2 cond_stage_model.model.,
 * SDXL conditioner.embedders.1.model.). logit_scale is unused by SD: not matched. */
static const rule openclip_rules[] = {
    {"token_embedding.weight", "text_model.embeddings.token_embedding.weight", RN_EXACT},
    {"positional_embedding", "text_model.embeddings.position_embedding.weight", RN_EXACT},
    {"text_projection", "text_projection.weight", RN_EXACT | RN_TRANSPOSE},
    {"ln_final.", "text_model.final_layer_norm.", 0},
    {"transformer.resblocks.#.ln_1.", "text_model.encoder.layers.#.layer_norm1.", 0},
    {"transformer.resblocks.#.ln_2.", "text_model.encoder.layers.#.layer_norm2.", 0},
    {"transformer.resblocks.#.attn.in_proj_weight", "text_model.encoder.layers.#.self_attn.%s_proj.weight", RN_EXACT | RN_SPLIT3},
    {"transformer.resblocks.#.attn.in_proj_bias", "text_model.encoder.layers.#.self_attn.%s_proj.bias", RN_EXACT | RN_SPLIT3},
    {"transformer.resblocks.#.attn.out_proj.", "text_model.encoder.layers.#.self_attn.out_proj.", 0},
    {"transformer.resblocks.#.mlp.c_fc.", "text_model.encoder.layers.#.mlp.fc1.", 0},
    {"transformer.resblocks.#.mlp.c_proj.", "text_model.encoder.layers.#.mlp.fc2.", 0},
};

/* A CompVis UNet is already in internal naming. */
static const rule identity_rules[] = {{"", "", 0}};

/* CompVis VAE keys (in a checkpoint or a standalone VAE file); some converted files
 * store the mid attention as [C, C] linears. */
static const rule compvis_vae_rules[] = {
    {"encoder.", "encoder.", 0}, {"decoder.", "decoder.", 0},
    {"quant_conv.", "quant_conv.", 0}, {"post_quant_conv.", "post_quant_conv.", 0},
    {"encoder.mid.attn_1.q.weight", "encoder.mid.attn_1.q.weight", RN_EXACT | RN_CONV1X1},
    {"encoder.mid.attn_1.k.weight", "encoder.mid.attn_1.k.weight", RN_EXACT | RN_CONV1X1},
    {"encoder.mid.attn_1.v.weight", "encoder.mid.attn_1.v.weight", RN_EXACT | RN_CONV1X1},
    {"encoder.mid.attn_1.proj_out.weight", "encoder.mid.attn_1.proj_out.weight", RN_EXACT | RN_CONV1X1},
    {"decoder.mid.attn_1.q.weight", "decoder.mid.attn_1.q.weight", RN_EXACT | RN_CONV1X1},
    {"decoder.mid.attn_1.k.weight", "decoder.mid.attn_1.k.weight", RN_EXACT | RN_CONV1X1},
    {"decoder.mid.attn_1.v.weight", "decoder.mid.attn_1.v.weight", RN_EXACT | RN_CONV1X1},
    {"decoder.mid.attn_1.proj_out.weight", "decoder.mid.attn_1.proj_out.weight", RN_EXACT | RN_CONV1X1},
};

/* diffusers AutoencoderKL; the decoder's up_blocks are generated (reversed order). */
#define VAE_MID(X)                                                                              \
    {X ".mid_block.resnets.0.", X ".mid.block_1.", 0}, {X ".mid_block.resnets.1.", X ".mid.block_2.", 0}, \
    {X ".mid_block.attentions.0.group_norm.", X ".mid.attn_1.norm.", 0},                        \
    {X ".mid_block.attentions.0.to_q.", X ".mid.attn_1.q.", RN_CONV1X1},                       \
    {X ".mid_block.attentions.0.to_k.", X ".mid.attn_1.k.", RN_CONV1X1},                       \
    {X ".mid_block.attentions.0.to_v.", X ".mid.attn_1.v.", RN_CONV1X1},                       \
    {X ".mid_block.attentions.0.to_out.0.", X ".mid.attn_1.proj_out.", RN_CONV1X1},            \
    {X ".mid_block.attentions.0.query.", X ".mid.attn_1.q.", RN_CONV1X1},                      \
    {X ".mid_block.attentions.0.key.", X ".mid.attn_1.k.", RN_CONV1X1},                        \
    {X ".mid_block.attentions.0.value.", X ".mid.attn_1.v.", RN_CONV1X1},                      \
    {X ".mid_block.attentions.0.proj_attn.", X ".mid.attn_1.proj_out.", RN_CONV1X1},           \
    {X ".conv_in.", X ".conv_in.", 0}, {X ".conv_out.", X ".conv_out.", 0},                     \
    {X ".conv_norm_out.", X ".norm_out.", 0}
static const rule diffusers_vae_rules[] = {
    VAE_MID("encoder"),
    VAE_MID("decoder"),
    {"quant_conv.", "quant_conv.", 0},
    {"post_quant_conv.", "post_quant_conv.", 0},
    {"encoder.down_blocks.#.resnets.#.", "encoder.down.#.block.#.", 0},
    {"encoder.down_blocks.#.resnets.#.conv_shortcut.", "encoder.down.#.block.#.nin_shortcut.", 0},
    {"encoder.down_blocks.#.downsamplers.0.", "encoder.down.#.downsample.", 0},
};

static const rule diffusers_unet_fixed[] = {
    {"time_embedding.linear_1.", "time_embed.0.", 0}, {"time_embedding.linear_2.", "time_embed.2.", 0},
    {"add_embedding.linear_1.", "label_emb.0.0.", 0}, {"add_embedding.linear_2.", "label_emb.0.2.", 0},
    {"conv_in.", "input_blocks.0.0.", 0},             {"conv_norm_out.", "out.0.", 0},
    {"conv_out.", "out.2.", 0},                       {"mid_block.attentions.0.", "middle_block.1.", 0},
};
/* diffusers ResnetBlock2D member -> CompVis ResBlock member */
static const char *const resnet_pairs[][2] = {
    {"norm1.", "in_layers.0."}, {"conv1.", "in_layers.2."}, {"time_emb_proj.", "emb_layers.1."},
    {"norm2.", "out_layers.0."}, {"conv2.", "out_layers.3."}, {"conv_shortcut.", "skip_connection."},
};

/* ---- rule sets ---------------------------------------------------------------- */

typedef struct ruleset {
    const rule *fixed;
    size_t nfixed;
    rule *gen; /* generated; strings owned */
    size_t ngen, capgen;
} ruleset;

static void ruleset_free(ruleset *rs)
{
    for (size_t i = 0; i < rs->ngen; i++) {
        free((char *)rs->gen[i].from);
        free((char *)rs->gen[i].to);
    }
    free(rs->gen);
    memset(rs, 0, sizeof *rs);
}

static int ruleset_add(ruleset *rs, unsigned op, const char *from, const char *to)
{
    if (rs->ngen == rs->capgen) {
        size_t cap = rs->capgen ? rs->capgen * 2 : 64;
        rule *g = realloc(rs->gen, cap * sizeof *g);
        if (!g)
            return 0;
        rs->gen = g;
        rs->capgen = cap;
    }
    char *f = strdup(from), *t = strdup(to);
    if (!f || !t) {
        free(f);
        free(t);
        return 0;
    }
    rs->gen[rs->ngen++] = (rule){f, t, op};
    return 1;
}

/* Match `from` against `key`. Returns the number of key bytes consumed, or -1; caps
 * receives the '#' numbers (as offsets/lengths into key). */
typedef struct { size_t off[4], len[4]; int n; } captures;

static long rule_match(const rule *r, const char *key, captures *cap)
{
    const char *f = r->from, *k = key;
    cap->n = 0;
    while (*f) {
        if (*f == '#') {
            const char *s = k;
            while (*k >= '0' && *k <= '9')
                k++;
            if (k == s || cap->n == 4)
                return -1;
            cap->off[cap->n] = (size_t)(s - key);
            cap->len[cap->n++] = (size_t)(k - s);
            f++;
        } else if (*f++ != *k++) {
            return -1;
        }
    }
    if ((r->op & RN_EXACT) && *k)
        return -1;
    return (long)(k - key);
}

static const rule *ruleset_match(const ruleset *rs, const char *key, captures *best_cap, long *consumed)
{
    const rule *best = NULL;
    long best_len = -1;
    for (int pass = 0; pass < 2; pass++) {
        const rule *rr = pass ? rs->gen : rs->fixed;
        size_t n = pass ? rs->ngen : rs->nfixed;
        for (size_t i = 0; i < n; i++) {
            captures c;
            long m = rule_match(&rr[i], key, &c);
            /* longest `from` wins; compare pattern length so "a.#." < "a.#.b." */
            if (m >= 0 && (long)strlen(rr[i].from) > best_len) {
                best = &rr[i];
                best_len = (long)strlen(rr[i].from);
                *best_cap = c;
                *consumed = m;
            }
        }
    }
    return best;
}

/* ---- the weights object --------------------------------------------------------- */

struct vkd_weights {
    vkd_layout layout;
    vkd_st_file **files;
    size_t nfiles, capfiles;
    vkd_wtensor *t;
    size_t n, cap;
    char **ignored;
    size_t nign, capign;
    char *tok_dir[2];
};

static int push_ignored(vkd_weights *w, const char *file, const char *key, const char *why)
{
    if (w->nign == w->capign) {
        size_t cap = w->capign ? w->capign * 2 : 32;
        char **p = realloc(w->ignored, cap * sizeof *p);
        if (!p)
            return 0;
        w->ignored = p;
        w->capign = cap;
    }
    size_t len = strlen(file) + strlen(key) + strlen(why) + 8;
    char *s = malloc(len);
    if (!s)
        return 0;
    snprintf(s, len, "%s: %s%s", file, key, why);
    w->ignored[w->nign++] = s;
    VKD_DEBUG("ignored %s", s);
    return 1;
}

static vkd_wtensor *push_tensor(vkd_weights *w)
{
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 1024;
        vkd_wtensor *p = realloc(w->t, cap * sizeof *p);
        if (!p)
            return NULL;
        w->t = p;
        w->cap = cap;
    }
    vkd_wtensor *t = &w->t[w->n++];
    memset(t, 0, sizeof *t);
    return t;
}

/* Build internal name: prefix + rule.to (captures substituted, %s -> qkv) + rest. */
static char *make_name(const char *prefix, const rule *r, const char *key, const captures *c, long consumed,
                       const char *qkv)
{
    size_t cap = strlen(prefix) + strlen(r->to) + strlen(key) + 64;
    char *s = malloc(cap), *o = s;
    if (!s)
        return NULL;
    o += sprintf(o, "%s", prefix);
    int ci = 0;
    for (const char *p = r->to; *p; p++) {
        if (*p == '#' && ci < c->n) {
            memcpy(o, key + c->off[ci], c->len[ci]);
            o += c->len[ci++];
        } else if (p[0] == '%' && p[1] == 's' && qkv) {
            o += sprintf(o, "%s", qkv);
            p++;
        } else {
            *o++ = *p;
        }
    }
    o += sprintf(o, "%s", key + consumed);
    return s;
}

/* Map every tensor of `f` whose key starts with `src_prefix` through `rs`, naming it
 * under `dst_prefix`. Keys outside src_prefix are left for other parts; `claimed`
 * marks the keys some part has taken. */
static vkd_result map_part(vkd_weights *w, const vkd_st_file *f, unsigned char *claimed, const char *src_prefix,
                           const ruleset *rs, const char *dst_prefix)
{
    size_t plen = strlen(src_prefix);
    for (size_t i = 0; i < vkd_st_count(f); i++) {
        const vkd_st_tensor *s = vkd_st_at(f, i);
        if (claimed[i] || strncmp(s->name, src_prefix, plen) != 0)
            continue;
        const char *key = s->name + plen;
        captures c = {{0}, {0}, 0};
        long consumed = 0;
        const rule *r = ruleset_match(rs, key, &c, &consumed);
        if (!r)
            continue;
        claimed[i] = 1;
        /* a tensor of a non-float dtype is mapped all the same: the model check
         * (models/check.h) then names it as of the wrong dtype, not as missing */
        int parts = (r->op & RN_SPLIT3) ? 3 : 1;
        if (parts == 3 && (s->rank < 1 || s->shape[0] % 3 != 0)) {
            VKD_ERROR("%s: tensor '%s' has %lld rows, which do not split into q, k, v", vkd_st_label(f), s->name,
                      s->rank ? (long long)s->shape[0] : 0LL);
            return VKD_ERR_FORMAT;
        }
        if ((r->op & RN_TRANSPOSE) && s->rank != 2) {
            VKD_ERROR("%s: tensor '%s' should be 2-D, is rank %d", vkd_st_label(f), s->name, s->rank);
            return VKD_ERR_FORMAT;
        }
        static const char *const qkv[3] = {"q", "k", "v"};
        for (int p = 0; p < parts; p++) {
            vkd_wtensor *t = push_tensor(w);
            if (!t)
                return VKD_ERR_OUT_OF_HOST_MEMORY;
            if (!(t->name = make_name(dst_prefix, r, key, &c, consumed, parts == 3 ? qkv[p] : NULL))) {
                w->n--;
                return VKD_ERR_OUT_OF_HOST_MEMORY;
            }
            t->src = s;
            t->file = vkd_st_label(f);
            t->rank = s->rank;
            memcpy(t->shape, s->shape, sizeof t->shape);
            t->nelem = s->nelem;
            if (parts == 3) {
                t->shape[0] = s->shape[0] / 3;
                t->nelem = s->nelem / 3;
                t->first = (size_t)p * t->nelem;
            }
            if (r->op & RN_TRANSPOSE) {
                t->shape[0] = s->shape[1];
                t->shape[1] = s->shape[0];
                t->flags |= VKD_WT_TRANSPOSE;
            }
            if ((r->op & RN_CONV1X1) && s->rank == 2) {
                t->rank = 4;
                t->shape[2] = t->shape[3] = 1;
            }
        }
    }
    return VKD_OK;
}

static vkd_result ignore_rest(vkd_weights *w, const vkd_st_file *f, const unsigned char *claimed, const char *why)
{
    for (size_t i = 0; i < vkd_st_count(f); i++)
        if (!claimed[i] && !push_ignored(w, vkd_st_label(f), vkd_st_at(f, i)->name, why))
            return VKD_ERR_OUT_OF_HOST_MEMORY;
    return VKD_OK;
}

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

static vkd_result add_file(vkd_weights *w, const char *path, vkd_st_file **out)
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

/* Largest N+1 over keys "<prefix>N." of a file (0 when none). */
static int count_index(const vkd_st_file *f, const char *prefix)
{
    size_t plen = strlen(prefix);
    int best = 0;
    for (size_t i = 0; i < vkd_st_count(f); i++) {
        const char *k = vkd_st_at(f, i)->name;
        if (strncmp(k, prefix, plen) != 0)
            continue;
        char *end;
        long v = strtol(k + plen, &end, 10);
        if (end != k + plen && *end == '.' && v >= 0 && v < 1000 && v + 1 > best)
            best = (int)v + 1;
    }
    return best;
}

static int has_prefix_key(const vkd_st_file *f, const char *prefix)
{
    size_t plen = strlen(prefix);
    for (size_t i = 0; i < vkd_st_count(f); i++)
        if (strncmp(vkd_st_at(f, i)->name, prefix, plen) == 0)
            return 1;
    return 0;
}

/* ---- VAE ---------------------------------------------------------------------- */

static vkd_result map_vae(vkd_weights *w, const vkd_st_file *f, unsigned char *claimed, const char *src_prefix)
{
    char key[128];
    snprintf(key, sizeof key, "%sencoder.mid_block.", src_prefix);
    int diffusers = has_prefix_key(f, key);
    snprintf(key, sizeof key, "%sdecoder.mid_block.", src_prefix);
    diffusers |= has_prefix_key(f, key);
    ruleset rs = {0};
    vkd_result r = VKD_ERR_OUT_OF_HOST_MEMORY;
    if (!diffusers) {
        rs.fixed = compvis_vae_rules;
        rs.nfixed = sizeof compvis_vae_rules / sizeof compvis_vae_rules[0];
    } else {
        rs.fixed = diffusers_vae_rules;
        rs.nfixed = sizeof diffusers_vae_rules / sizeof diffusers_vae_rules[0];
        snprintf(key, sizeof key, "%sdecoder.up_blocks.", src_prefix);
        int L = count_index(f, key);
        for (int i = 0; i < L; i++) {
            char from[96], to[96];
            int j = L - 1 - i; /* diffusers up_blocks.0 is the deepest level, CompVis up.(L-1) */
            snprintf(from, sizeof from, "decoder.up_blocks.%d.resnets.#.", i);
            snprintf(to, sizeof to, "decoder.up.%d.block.#.", j);
            if (!ruleset_add(&rs, 0, from, to))
                goto done;
            snprintf(from, sizeof from, "decoder.up_blocks.%d.resnets.#.conv_shortcut.", i);
            snprintf(to, sizeof to, "decoder.up.%d.block.#.nin_shortcut.", j);
            if (!ruleset_add(&rs, 0, from, to))
                goto done;
            snprintf(from, sizeof from, "decoder.up_blocks.%d.upsamplers.0.", i);
            snprintf(to, sizeof to, "decoder.up.%d.upsample.", j);
            if (!ruleset_add(&rs, 0, from, to))
                goto done;
        }
    }
    r = map_part(w, f, claimed, src_prefix, &rs, "first_stage_model.");
done:
    ruleset_free(&rs);
    return r;
}

/* ---- UNet (diffusers) ------------------------------------------------------------ */

static vkd_result map_diffusers_unet(vkd_weights *w, const vkd_st_file *f, unsigned char *claimed)
{
    ruleset rs = {diffusers_unet_fixed, sizeof diffusers_unet_fixed / sizeof diffusers_unet_fixed[0], NULL, 0, 0};
    vkd_result r = VKD_ERR_OUT_OF_HOST_MEMORY;
    char from[128], to[128];
    int L = count_index(f, "down_blocks.");
    int R = count_index(f, "down_blocks.0.resnets.");
    for (int k = 0; k < 6; k++) { /* mid resnets -> middle_block.0 / .2 */
        for (int j = 0; j < 2; j++) {
            snprintf(from, sizeof from, "mid_block.resnets.%d.%s", j, resnet_pairs[k][0]);
            snprintf(to, sizeof to, "middle_block.%d.%s", 2 * j, resnet_pairs[k][1]);
            if (!ruleset_add(&rs, 0, from, to))
                goto done;
        }
    }
    for (int i = 0; i < L; i++) {
        for (int j = 0; j < R; j++) {
            int n = (R + 1) * i + j + 1;
            for (int k = 0; k < 6; k++) {
                snprintf(from, sizeof from, "down_blocks.%d.resnets.%d.%s", i, j, resnet_pairs[k][0]);
                snprintf(to, sizeof to, "input_blocks.%d.0.%s", n, resnet_pairs[k][1]);
                if (!ruleset_add(&rs, 0, from, to))
                    goto done;
            }
            snprintf(from, sizeof from, "down_blocks.%d.attentions.%d.", i, j);
            snprintf(to, sizeof to, "input_blocks.%d.1.", n);
            if (!ruleset_add(&rs, 0, from, to))
                goto done;
        }
        snprintf(from, sizeof from, "down_blocks.%d.downsamplers.0.conv.", i);
        snprintf(to, sizeof to, "input_blocks.%d.0.op.", (R + 1) * (i + 1));
        if (!ruleset_add(&rs, 0, from, to))
            goto done;
        /* up_blocks.i: R + 1 resnets; its upsampler follows the attention if any */
        snprintf(from, sizeof from, "up_blocks.%d.attentions.", i);
        int attn = has_prefix_key(f, from);
        for (int j = 0; j <= R; j++) {
            int n = (R + 1) * i + j;
            for (int k = 0; k < 6; k++) {
                snprintf(from, sizeof from, "up_blocks.%d.resnets.%d.%s", i, j, resnet_pairs[k][0]);
                snprintf(to, sizeof to, "output_blocks.%d.0.%s", n, resnet_pairs[k][1]);
                if (!ruleset_add(&rs, 0, from, to))
                    goto done;
            }
            snprintf(from, sizeof from, "up_blocks.%d.attentions.%d.", i, j);
            snprintf(to, sizeof to, "output_blocks.%d.1.", n);
            if (!ruleset_add(&rs, 0, from, to))
                goto done;
        }
        snprintf(from, sizeof from, "up_blocks.%d.upsamplers.0.", i);
        snprintf(to, sizeof to, "output_blocks.%d.%d.", (R + 1) * i + R, attn ? 2 : 1);
        if (!ruleset_add(&rs, 0, from, to))
            goto done;
    }
    r = map_part(w, f, claimed, "", &rs, "model.diffusion_model.");
done:
    ruleset_free(&rs);
    return r;
}

/* ---- sources ------------------------------------------------------------------- */

static const ruleset RS_IDENTITY = {identity_rules, 1, NULL, 0, 0};
static const ruleset RS_HF_CLIP = {hf_clip_rules, sizeof hf_clip_rules / sizeof hf_clip_rules[0], NULL, 0, 0};
static const ruleset RS_OPENCLIP = {openclip_rules, sizeof openclip_rules / sizeof openclip_rules[0], NULL, 0, 0};

static vkd_result map_single_file(vkd_weights *w, vkd_st_file *f, int skip_vae);

static vkd_result open_single_file(vkd_weights *w, const char *path, int skip_vae)
{
    vkd_st_file *f;
    vkd_result r = add_file(w, path, &f);
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
    if (!(r = map_part(w, f, claimed, "model.diffusion_model.", &RS_IDENTITY, "model.diffusion_model.")) &&
        !(r = skip_vae ? VKD_OK : map_vae(w, f, claimed, "first_stage_model.")) &&
        !(r = map_part(w, f, claimed, "cond_stage_model.transformer.", &RS_HF_CLIP, "cond_stage_model.transformer.")) &&
        !(r = map_part(w, f, claimed, "cond_stage_model.model.", &RS_OPENCLIP, "cond_stage_model.transformer.")) &&
        !(r = map_part(w, f, claimed, "conditioner.embedders.0.transformer.", &RS_HF_CLIP,
                       "conditioner.embedders.0.transformer.")) &&
        !(r = map_part(w, f, claimed, "conditioner.embedders.1.model.", &RS_OPENCLIP,
                       "conditioner.embedders.1.transformer.")))
        r = ignore_rest(w, f, claimed, skip_vae ? " (unmapped, or VAE replaced by --vae)" : "");
    free(claimed);
    return r;
}

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *p)
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
        if (is_file(out))
            return i < 2 ? 1 : -1;
    }
    snprintf(out, cap, "%s/%s/%s.safetensors.index.json", dir, sub, stem);
    if (is_file(out))
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
        return add_file(w, path, f);
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
        r = ignore_rest(w, f, claimed, "");
    free(claimed);
    return r;
}

static vkd_result fn_unet(vkd_weights *w, const vkd_st_file *f, unsigned char *c, const void *a)
{
    (void)a;
    return map_diffusers_unet(w, f, c);
}
static vkd_result fn_vae(vkd_weights *w, const vkd_st_file *f, unsigned char *c, const void *a)
{
    vkd_result r = map_vae(w, f, c, "first_stage_model.");
    return r ? r : map_vae(w, f, c, (const char *)a);
}
static vkd_result fn_te(vkd_weights *w, const vkd_st_file *f, unsigned char *c, const void *a)
{
    return map_part(w, f, c, "", &RS_HF_CLIP, (const char *)a);
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
        if (is_dir(p) && !(w->tok_dir[i] = strdup(p)))
            return VKD_ERR_OUT_OF_HOST_MEMORY;
    }
    return VKD_OK;
}

static vkd_result open_vae_override(vkd_weights *w, const char *path)
{
    vkd_st_file *f = NULL;
    vkd_result r;
    if (is_dir(path)) { /* a diffusers vae/ folder, or a model folder holding one */
        char sub[4096];
        snprintf(sub, sizeof sub, "%s/vae", path);
        r = open_component(w, path, is_dir(sub) ? "vae" : ".", "diffusion_pytorch_model", 1, &f);
    } else {
        r = add_file(w, path, &f);
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
    if (is_dir(model_path)) {
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
