/* The key tables: transformers CLIP, OpenCLIP, the CompVis and diffusers VAE, the
 * diffusers UNet, as internal (CompVis) names. The diffusers tables follow diffusers'
 * scripts/convert_diffusers_to_original_stable_diffusion.py (unet_conversion_map*,
 * vae_conversion_map*) and the OpenCLIP one sd.cpp's model.cpp
 * (open_clip_to_hf_clip_model); block indices that need arithmetic (UNet input/output
 * block numbers, the VAE decoder's reversed levels) are generated from the block
 * counts found in the file. The rule engine that reads them is layout_rules.c. */
#include <stdio.h>

#include "io/layout_impl.h"

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
    /* OpenCLIP towers renamed by stable-diffusion.cpp's --convert-name (name_conversion.cpp
     * convert_open_clip_to_hf_clip_name): transformers names, but q/k/v still fused in
     * in_proj and the projection still [width, proj] under its OpenCLIP name */
    {"text_model.encoder.layers.#.self_attn.in_proj.weight", "text_model.encoder.layers.#.self_attn.%s_proj.weight",
     RN_EXACT | RN_SPLIT3},
    {"text_model.encoder.layers.#.self_attn.in_proj.bias", "text_model.encoder.layers.#.self_attn.%s_proj.bias",
     RN_EXACT | RN_SPLIT3},
    {"text_model.text_projection", "text_projection.weight", RN_EXACT | RN_TRANSPOSE},
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

/* ---- VAE ---------------------------------------------------------------------- */

vkd_result vkd_layout_map_vae(vkd_weights *w, const vkd_st_file *f, unsigned char *claimed, const char *src_prefix)
{
    char key[128];
    snprintf(key, sizeof key, "%sencoder.mid_block.", src_prefix);
    int diffusers = vkd_layout_has_prefix(f, key);
    snprintf(key, sizeof key, "%sdecoder.mid_block.", src_prefix);
    diffusers |= vkd_layout_has_prefix(f, key);
    ruleset rs = {0};
    vkd_result r = VKD_ERR_OUT_OF_HOST_MEMORY;
    if (!diffusers) {
        rs.fixed = compvis_vae_rules;
        rs.nfixed = sizeof compvis_vae_rules / sizeof compvis_vae_rules[0];
    } else {
        rs.fixed = diffusers_vae_rules;
        rs.nfixed = sizeof diffusers_vae_rules / sizeof diffusers_vae_rules[0];
        snprintf(key, sizeof key, "%sdecoder.up_blocks.", src_prefix);
        int L = vkd_layout_count_index(f, key);
        for (int i = 0; i < L; i++) {
            char from[96], to[96];
            int j = L - 1 - i; /* diffusers up_blocks.0 is the deepest level, CompVis up.(L-1) */
            snprintf(from, sizeof from, "decoder.up_blocks.%d.resnets.#.", i);
            snprintf(to, sizeof to, "decoder.up.%d.block.#.", j);
            if (!vkd_ruleset_add(&rs, 0, from, to))
                goto done;
            snprintf(from, sizeof from, "decoder.up_blocks.%d.resnets.#.conv_shortcut.", i);
            snprintf(to, sizeof to, "decoder.up.%d.block.#.nin_shortcut.", j);
            if (!vkd_ruleset_add(&rs, 0, from, to))
                goto done;
            snprintf(from, sizeof from, "decoder.up_blocks.%d.upsamplers.0.", i);
            snprintf(to, sizeof to, "decoder.up.%d.upsample.", j);
            if (!vkd_ruleset_add(&rs, 0, from, to))
                goto done;
        }
    }
    r = vkd_layout_map_part(w, f, claimed, src_prefix, &rs, "first_stage_model.");
done:
    vkd_ruleset_free(&rs);
    return r;
}

/* ---- UNet (diffusers) ------------------------------------------------------------ */

vkd_result vkd_layout_map_diffusers_unet(vkd_weights *w, const vkd_st_file *f, unsigned char *claimed)
{
    ruleset rs = {diffusers_unet_fixed, sizeof diffusers_unet_fixed / sizeof diffusers_unet_fixed[0], NULL, 0, 0};
    vkd_result r = VKD_ERR_OUT_OF_HOST_MEMORY;
    char from[128], to[128];
    int L = vkd_layout_count_index(f, "down_blocks.");
    int R = vkd_layout_count_index(f, "down_blocks.0.resnets.");
    for (int k = 0; k < 6; k++) { /* mid resnets -> middle_block.0 / .2 */
        for (int j = 0; j < 2; j++) {
            snprintf(from, sizeof from, "mid_block.resnets.%d.%s", j, resnet_pairs[k][0]);
            snprintf(to, sizeof to, "middle_block.%d.%s", 2 * j, resnet_pairs[k][1]);
            if (!vkd_ruleset_add(&rs, 0, from, to))
                goto done;
        }
    }
    for (int i = 0; i < L; i++) {
        for (int j = 0; j < R; j++) {
            int n = (R + 1) * i + j + 1;
            for (int k = 0; k < 6; k++) {
                snprintf(from, sizeof from, "down_blocks.%d.resnets.%d.%s", i, j, resnet_pairs[k][0]);
                snprintf(to, sizeof to, "input_blocks.%d.0.%s", n, resnet_pairs[k][1]);
                if (!vkd_ruleset_add(&rs, 0, from, to))
                    goto done;
            }
            snprintf(from, sizeof from, "down_blocks.%d.attentions.%d.", i, j);
            snprintf(to, sizeof to, "input_blocks.%d.1.", n);
            if (!vkd_ruleset_add(&rs, 0, from, to))
                goto done;
        }
        snprintf(from, sizeof from, "down_blocks.%d.downsamplers.0.conv.", i);
        snprintf(to, sizeof to, "input_blocks.%d.0.op.", (R + 1) * (i + 1));
        if (!vkd_ruleset_add(&rs, 0, from, to))
            goto done;
        /* up_blocks.i: R + 1 resnets; its upsampler follows the attention if any */
        snprintf(from, sizeof from, "up_blocks.%d.attentions.", i);
        int attn = vkd_layout_has_prefix(f, from);
        for (int j = 0; j <= R; j++) {
            int n = (R + 1) * i + j;
            for (int k = 0; k < 6; k++) {
                snprintf(from, sizeof from, "up_blocks.%d.resnets.%d.%s", i, j, resnet_pairs[k][0]);
                snprintf(to, sizeof to, "output_blocks.%d.0.%s", n, resnet_pairs[k][1]);
                if (!vkd_ruleset_add(&rs, 0, from, to))
                    goto done;
            }
            snprintf(from, sizeof from, "up_blocks.%d.attentions.%d.", i, j);
            snprintf(to, sizeof to, "output_blocks.%d.1.", n);
            if (!vkd_ruleset_add(&rs, 0, from, to))
                goto done;
        }
        snprintf(from, sizeof from, "up_blocks.%d.upsamplers.0.", i);
        snprintf(to, sizeof to, "output_blocks.%d.%d.", (R + 1) * i + R, attn ? 2 : 1);
        if (!vkd_ruleset_add(&rs, 0, from, to))
            goto done;
    }
    r = vkd_layout_map_part(w, f, claimed, "", &rs, "model.diffusion_model.");
done:
    vkd_ruleset_free(&rs);
    return r;
}

/* ---- fixed rule sets -------------------------------------------------------------- */

const ruleset vkd_rs_identity = {identity_rules, 1, NULL, 0, 0};
const ruleset vkd_rs_hf_clip = {hf_clip_rules, sizeof hf_clip_rules / sizeof hf_clip_rules[0], NULL, 0, 0};
const ruleset vkd_rs_openclip = {openclip_rules, sizeof openclip_rules / sizeof openclip_rules[0], NULL, 0, 0};
