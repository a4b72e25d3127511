/* vkdiff bench model --plan: the memory plan as a table (bench.h). */
#include "pipeline/bench.h"

#include "pipeline/denoise_stage.h"
#include "pipeline/memplan.h"
#include "text/prompt.h"

vkd_result vkd_pipe_plan_report(vkd_pipe *c, int width, int height, int tiling, bool record, FILE *f)
{
    if (width % 8 || height % 8 || width < 8 || height < 8)
        return VKD_ERR_INVALID_ARG;
    fprintf(f, "memory plan, %s, %dx%d, %s storage, device %s: dry runs of the recordings, nothing allocated\n\n",
            vkd_family_name(c->cfg.family), width, height, c->dt == VKD_F16 ? "fp16" : "fp32", c->d->caps.name);
    fprintf(f, "| UNet batch | budget MiB | weights text / UNet / VAE MiB | activations text / UNet / VAE MiB | "
               "VAE | UNet between images | resident text / UNet / VAE MiB | peak MiB | fits |\n");
    fprintf(f, "| ---: | ---: | --- | --- | --- | --- | --- | ---: | --- |\n");
    for (int batch = 1; batch <= 2; batch++) {
        vkd_memplan p;
        vkd_memplan_in in = {.d = c->d, .ws = c->ws, .dt = c->dt, .cfg = &c->cfg, .h = height / 8, .w = width / 8,
                             .batch = batch, .ctx_len = VKD_PROMPT_CHUNK_LEN, .budget = c->memory_budget,
                             .tiling = tiling, .text_chunks = batch};
        vkd_result r = vkd_memplan_make(&in, &p);
        if (r)
            return r;
        const double M = 1048576.0;
        char vae[64];
        if (p.vae_tile)
            snprintf(vae, sizeof vae, "%d-px tiles", 8 * p.vae_tile);
        else
            snprintf(vae, sizeof vae, "whole");
        fprintf(f, "| %d | %.0f | %.1f / %.1f / %.1f | %.1f / %.1f / %.1f | %s | %s | %.1f / %.1f / %.1f | %.1f | %s |\n",
                batch, p.budget / M, p.w_text / M, p.w_unet / M, p.w_vae / M, p.a_text / M, p.a_unet / M, p.a_vae / M,
                vae, p.keep_unet ? "kept" : "freed", p.stage_text / M, p.stage_unet / M, p.stage_vae / M,
                p.peak / M, p.fits ? "yes" : "no");
        if (batch == 2) {
            double floor = (double)p.w_unet + 2.0 * (double)p.unet_act_written;
            fprintf(f, "\nUNet evaluation (batch 2): %u ops; activations written %.1f MiB; weights read %.1f MiB; "
                       "floor of bytes moved (weights once + every activation written and read once) %.1f MiB\n",
                    p.unet_ops, p.unet_act_written / M, p.w_unet / M, floor / M);
            /* the real recording (nothing submitted): its dispatches and the bytes they bind */
            if (record) {
                vkd_memory_expect(c->d, p.w_unet); /* as vkdiff allocates it */
                r = vkd_denoise_stage_prepare(c->denoise, 2, height / 8, width / 8, VKD_PROMPT_CHUNK_LEN, p.a_unet);
                vkd_memory_expect(c->d, 0);
            }
            if (record && r == VKD_OK) {
                double bound = vkd_cmd_bytes_bound(vkd_denoise_stage_cmd(c->denoise));
                vkd_memory_stats ms;
                vkd_memory_stats_get(c->d, &ms);
                fprintf(f, "recorded: %u dispatches, bytes bound %.1f MiB = %.2f x the floor; pool %.1f MiB planned\n",
                        vkd_cmd_dispatch_count(vkd_denoise_stage_cmd(c->denoise)), bound / M, floor > 0 ? bound / floor : 0,
                        p.a_unet / M);
                fprintf(f, "device memory held with the UNet recorded: %.1f MiB (%u weight blocks; planned UNet stage "
                           "%.1f MiB)\n",
                        ms.reserved / M, ms.blocks, (p.w_unet + p.a_unet) / M);
                vkd_denoise_stage_forget(c->denoise);
            }
            if (r)
                return r;
            if (c->cfg.vae.has_encoder) { /* img2img, inpainting and the hires fix's Lanczos pass */
                vkd_memplan pe;
                in.encode = true;
                if ((r = vkd_memplan_make(&in, &pe)))
                    return r;
                fprintf(f, "with an image in (img2img, inpainting, a hires pass at this size): the VAE encoder's "
                           "weights %.1f MiB + activations %.1f MiB, resident %.1f MiB while it runs; peak %.1f MiB%s\n",
                        pe.w_enc / M, pe.a_enc / M, pe.stage_enc / M, pe.peak / M, pe.fits ? "" : " (does not fit)");
            }
        }
    }
    return VKD_OK;
}
