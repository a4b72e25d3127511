/* A1111 infotext (infotext.h). */
#include "cli/infotext.h"

#include <string.h>

#include "cli/names.h"

const char *vkd_base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

void vkd_infotext(vkd_strbuf *b, const vkd_gen_params *gp, const char *model, const char *vae,
                  const vkd_lora_spec *loras, int n_loras)
{
    /* the prompt keeps its <lora:..> tags, as A1111's does; other LoRAs are written as tags too */
    vkd_strbuf_printf(b, "%s", gp->prompt ? gp->prompt : "");
    for (int k = 0; k < n_loras; k++) {
        const char *name = vkd_base_name(loras[k].path), *ext = strstr(name, ".safetensors");
        vkd_strbuf_printf(b, " <lora:%.*s:%g>", ext ? (int)(ext - name) : (int)strlen(name), name,
                          (double)loras[k].weight);
    }
    vkd_strbuf_printf(b, "\n");
    if (gp->negative && *gp->negative)
        vkd_strbuf_printf(b, "Negative prompt: %s\n", gp->negative);
    vkd_strbuf_printf(b, "Steps: %d, Sampler: %s, ", gp->steps, vkd_sampler_a1111(gp->sampler));
    /* A1111 writes the scheduler unless it is "Automatic"; reading an infotext without one
     * gives the sampler's default, so it is written whenever it differs from that */
    const char *automatic = NULL;
    if (gp->schedule && (vkd_schedule_lookup("automatic", gp->sampler, &automatic) != 0 ||
                         strcmp(automatic, gp->schedule)))
        vkd_strbuf_printf(b, "Schedule type: %s, ", vkd_schedule_a1111_label(gp->schedule));
    vkd_strbuf_printf(b, "CFG scale: %g, Seed: %lld, Size: %dx%d, Model: %s", gp->cfg, (long long)gp->seed_used,
                      gp->width, gp->height, model);
    if (gp->clip_skip > 1)
        vkd_strbuf_printf(b, ", Clip skip: %d", gp->clip_skip);
    if (gp->init_image) /* A1111 create_infotext */
        vkd_strbuf_printf(b, ", Denoising strength: %g", gp->strength);
    if (gp->hires_scale > 1) {
        vkd_strbuf_printf(b, ", Denoising strength: %g, Hires upscale: %g", gp->hires_strength, gp->hires_scale);
        if (gp->hires_steps)
            vkd_strbuf_printf(b, ", Hires steps: %d", gp->hires_steps);
        vkd_strbuf_printf(b, ", Hires upscaler: %s",
                          gp->hires_upscale && !strcmp(gp->hires_upscale, "lanczos") ? "Lanczos" : "Latent");
    }
    if (gp->mask)
        vkd_strbuf_printf(b, ", Mask blur: %d", gp->mask_blur);
    if (vae) /* A1111 writes the loaded VAE's name the same way */
        vkd_strbuf_printf(b, ", VAE: %s", vae);
    if (gp->rng && !strcmp(gp->rng, "cpu"))
        vkd_strbuf_printf(b, ", RNG: CPU");
    /* A1111 and ComfyUI draw these samplers' noise from a Brownian tree (torchsde); vkdiff
     * draws a fresh normal vector per step (docs/samplers.md): said, so nobody expects the
     * same image from the same seed */
    if (gp->sampler && strstr(gp->sampler, "sde"))
        vkd_strbuf_printf(b, ", SDE noise: per step (not Brownian tree)");
}
