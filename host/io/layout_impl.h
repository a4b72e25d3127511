/* What the layout modules share (nothing outside host/io/ includes it): the rule
 * that maps a source key to an internal name, rule sets, and struct vkd_weights.
 *
 *   layout_rules.c   the rule engine: matching a key, building the internal name,
 *                    mapping every tensor of a file part through a rule set
 *   layout_tables.c  the key tables (CompVis VAE, transformers CLIP, OpenCLIP, the
 *                    diffusers VAE and UNet) and the rules generated from block counts
 *   layout.c         the weights object: which files a model path means (single file,
 *                    descriptor, diffusers folder, VAE override), and the queries
 *
 * A rule maps a source key to an internal key: `from` is matched against the key
 * (after the part's source prefix is stripped), '#' in `from` matches a decimal
 * number that is copied to the matching '#' in `to`. Prefix rules append the rest of
 * the key; among matching rules the longest `from` wins, so a specific rule
 * ("resnets.#.conv_shortcut.") beats a general one ("resnets.#."). */
#ifndef VKD_IO_LAYOUT_IMPL_H
#define VKD_IO_LAYOUT_IMPL_H

#include "io/layout.h"

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

typedef struct ruleset {
    const rule *fixed;
    size_t nfixed;
    rule *gen; /* generated; strings owned */
    size_t ngen, capgen;
} ruleset;

void vkd_ruleset_free(ruleset *rs);
/* Appends a generated rule (strings copied). Returns 1, or 0 when out of memory. */
int vkd_ruleset_add(ruleset *rs, unsigned op, const char *from, const char *to);

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

/* Map every tensor of `f` whose key starts with `src_prefix` through `rs`, naming it
 * under `dst_prefix`. Keys outside src_prefix are left for other parts; `claimed`
 * marks the keys some part has taken. */
vkd_result vkd_layout_map_part(vkd_weights *w, const vkd_st_file *f, unsigned char *claimed, const char *src_prefix,
                               const ruleset *rs, const char *dst_prefix);
/* Lists the keys of f no part claimed as ignored, each with `why` appended. */
vkd_result vkd_layout_ignore_rest(vkd_weights *w, const vkd_st_file *f, const unsigned char *claimed, const char *why);
/* Largest N+1 over keys "<prefix>N." of a file (0 when none). */
int vkd_layout_count_index(const vkd_st_file *f, const char *prefix);
/* Whether some key of f starts with prefix. */
int vkd_layout_has_prefix(const vkd_st_file *f, const char *prefix);
/* A safetensors file opened and owned by w (layout.c; the TAESD layouts use it too). */
vkd_result vkd_layout_add_file(vkd_weights *w, const char *path, vkd_st_file **out);
int vkd_layout_is_dir(const char *p);
int vkd_layout_is_file(const char *p);

/* layout_tables.c: the fixed rule sets, and the parts whose rules are generated */
extern const ruleset vkd_rs_identity; /* a CompVis UNet: already internal naming */
extern const ruleset vkd_rs_hf_clip;  /* transformers CLIPTextModel */
extern const ruleset vkd_rs_openclip; /* open_clip TextTransformer */
/* The VAE under src_prefix (CompVis or diffusers keys, told apart by the file). */
vkd_result vkd_layout_map_vae(vkd_weights *w, const vkd_st_file *f, unsigned char *claimed, const char *src_prefix);
/* A diffusers UNet file. */
vkd_result vkd_layout_map_diffusers_unet(vkd_weights *w, const vkd_st_file *f, unsigned char *claimed);

#endif
