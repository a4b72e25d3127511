/* vkd_info_print; see info.h. Prints to a caller-given stream (the CLI passes stdout). */
#include "models/info.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "io/layout.h"
#include "models/check.h"
#include "models/detect.h"

enum { PART_UNET, PART_VAE, PART_TE0, PART_TE1, PART_COUNT };
static const char *const part_name[PART_COUNT] = {"UNet", "VAE", "text encoder", "text encoder 2"};

static int part_of(const char *name)
{
    if (!strncmp(name, "model.diffusion_model.", 22))
        return PART_UNET;
    if (!strncmp(name, "first_stage_model.", 18))
        return PART_VAE;
    if (!strncmp(name, "conditioner.embedders.1.", 24))
        return PART_TE1;
    return PART_TE0;
}

/* a finding of vkd_model_check_weights, as a line of the report */
static void say_line(void *user, const char *line) { fprintf((FILE *)user, "  %s\n", line); }

static void print_ints(FILE *out, const int *v, int n)
{
    fputc('[', out);
    for (int i = 0; i < n; i++)
        fprintf(out, "%s%d", i ? ", " : "", v[i]);
    fputc(']', out);
}

/* Metadata is untrusted text: print printable ASCII, escape the rest, cut long values. */
static void print_safe(FILE *out, const char *s, size_t max)
{
    size_t n = 0;
    for (; *s && n < max; s++, n++) {
        unsigned char ch = (unsigned char)*s;
        if (ch >= 0x20 && ch < 0x7f)
            fputc(ch, out);
        else if (ch == '\n')
            fputs("\\n", out);
        else
            fprintf(out, "\\x%02x", ch);
    }
    if (*s)
        fprintf(out, "... (%zu bytes)", n + strlen(s));
}

static void print_config(FILE *out, const vkd_model_config *c)
{
    const vkd_unet_config *u = &c->unet;
    fprintf(out, "family: %s%s\n", vkd_family_name(c->family), c->inpaint ? " (inpainting)" : "");
    fprintf(out, "unet: in %d, out %d, model channels %d, channel mult ", u->in_channels, u->out_channels,
            u->model_channels);
    print_ints(out, u->channel_mult, u->num_levels);
    fprintf(out, ", res blocks %d, transformer depth ", u->num_res_blocks);
    print_ints(out, u->transformer_depth, u->num_levels);
    fprintf(out, ", middle depth %d, context %d, ", u->mid_depth, u->context_dim);
    if (u->head_dim)
        fprintf(out, "head dim %d, ", u->head_dim);
    else
        fprintf(out, "heads %d, ", u->num_heads);
    fprintf(out, "proj_in %s", u->linear_proj ? "linear" : "1x1 conv");
    if (u->adm_in_channels)
        fprintf(out, ", adm in %d", u->adm_in_channels);
    fprintf(out, ", time embed %d\n", u->time_embed_dim);
    const vkd_vae_config *v = &c->vae;
    fprintf(out, "vae: ch %d, ch mult ", v->ch);
    print_ints(out, v->ch_mult, v->num_levels);
    fprintf(out, ", res blocks %d, z %d, scale factor %.5f, encoder %s\n", v->num_res_blocks, v->z_channels,
            v->scale_factor, v->has_encoder ? "yes" : "no");
    for (int k = 0; k < c->n_text; k++) {
        const vkd_text_config *t = &c->text[k];
        fprintf(out, "%s (%s): width %d, layers %d, heads %d, mlp %d, vocab %d, positions %d, projection %d, %s\n",
                part_name[PART_TE0 + k], t->prefix, t->width, t->layers, t->heads, t->mlp, t->vocab, t->positions,
                t->proj_dim, t->quick_gelu ? "quick_gelu" : "gelu");
    }
}

vkd_result vkd_info_print(FILE *out, const char *model_path, const char *vae_path)
{
    vkd_weights *w = NULL;
    unsigned char *used = NULL;
    fprintf(out, "model: %s\n", model_path ? model_path : "(none)");
    if (vae_path)
        fprintf(out, "vae: %s\n", vae_path);
    vkd_result r = vkd_weights_open(model_path, vae_path, &w);
    if (r) {
        fprintf(out, "error: cannot read the weights: %s (details above)\n", vkd_result_str(r));
        return r;
    }
    int verbose = vkd_log_level_get() >= VKD_LOG_DEBUG;
    size_t limit = verbose ? SIZE_MAX : 20;
    fprintf(out, "layout: %s\n", vkd_layout_name(vkd_weights_layout(w)));
    for (size_t i = 0; i < vkd_weights_file_count(w); i++) {
        const vkd_st_file *f = vkd_weights_file(w, i);
        uint64_t bytes = 0;
        for (size_t k = 0; k < vkd_st_count(f); k++)
            bytes += vkd_st_at(f, k)->nbytes;
        fprintf(out, "file: %s (%s, %zu tensors, %.1f MiB of tensor data)\n", vkd_st_label(f), vkd_st_format(f),
                vkd_st_count(f), bytes / 1048576.0);
    }
    for (int i = 0; i < 2; i++)
        if (vkd_weights_tokenizer_dir(w, i))
            fprintf(out, "tokenizer: %s\n", vkd_weights_tokenizer_dir(w, i));

    vkd_model_config cfg;
    char why[256];
    vkd_result dr = vkd_model_detect(w, &cfg, why, sizeof why);
    print_config(out, &cfg);
    if (dr)
        fprintf(out, "not supported: %s\n", why);

    /* parameters and dtypes over every mapped tensor */
    uint64_t params[PART_COUNT] = {0}, dtype_n[VKD_ST_COUNT] = {0}, total = 0;
    size_t n = vkd_weights_count(w);
    for (size_t i = 0; i < n; i++) {
        const vkd_wtensor *t = vkd_weights_at(w, i);
        params[part_of(t->name)] += t->nelem;
        dtype_n[t->src->dtype]++;
        total += t->nelem;
    }
    fprintf(out, "parameters:");
    for (int p = 0; p < PART_COUNT; p++)
        if (params[p])
            fprintf(out, " %s %.2f M,", part_name[p], params[p] / 1e6);
    fprintf(out, " total %.2f M (%llu)\n", total / 1e6, (unsigned long long)total);
    fprintf(out, "source dtypes:");
    for (int d = 0; d < VKD_ST_COUNT; d++)
        if (dtype_n[d])
            fprintf(out, " %s x %llu", vkd_st_dtype_name((vkd_st_dtype)d), (unsigned long long)dtype_n[d]);
    fputc('\n', out);

    /* what the model reads: missing, wrong-shape, wrong-dtype and unused tensors, and
     * NaN/Inf values (the same check as generation's, plus a pass over every value) */
    if (!(used = calloc(n + 1, 1))) {
        r = VKD_ERR_OUT_OF_HOST_MEMORY;
        goto done;
    }
    vkd_weight_check cc = {.used = used, .scan_values = 1, .limit = verbose ? 0 : 20, .say = say_line, .user = out};
    if (!dr) {
        vkd_result cr = vkd_model_check_weights(w, &cfg, &cc);
        size_t unused = 0;
        for (size_t i = 0; i < n; i++)
            if (!used[i] && unused++ < limit)
                fprintf(out, "  unused: %s\n", vkd_weights_at(w, i)->name);
        fprintf(out,
                "tensors: %zu mapped, %zu missing, %zu wrong shape, %zu wrong dtype, %zu with NaN/Inf, %zu unused, "
                "%zu ignored\n",
                n, cc.missing, cc.wrong_shape, cc.wrong_dtype, cc.non_finite, unused, vkd_weights_ignored_count(w));
        fprintf(out, "device memory for weights: fp16 %.1f MiB, fp32 %.1f MiB\n", cc.elems * 2.0 / 1048576.0,
                cc.elems * 4.0 / 1048576.0);
        if (cr)
            dr = cr;
    }
    size_t nign = vkd_weights_ignored_count(w);
    for (size_t i = 0; i < nign && i < limit; i++)
        fprintf(out, "  ignored: %s\n", vkd_weights_ignored(w, i));
    if (nign > limit)
        fprintf(out, "  ... %zu more ignored (-v lists all)\n", nign - limit);

    for (size_t i = 0; i < vkd_weights_file_count(w); i++) {
        const vkd_st_file *f = vkd_weights_file(w, i);
        const char *k, *v;
        for (size_t j = 0; vkd_st_metadata_at(f, j, &k, &v); j++) {
            fprintf(out, "metadata (%s): ", vkd_st_label(f));
            print_safe(out, k, 64);
            fprintf(out, " = ");
            print_safe(out, v, verbose ? SIZE_MAX : 200);
            fputc('\n', out);
        }
    }
    r = dr;
done:
    free(used);
    vkd_weights_close(w);
    return r;
}
