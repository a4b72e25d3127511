#!/usr/bin/python3
"""Goldens for image editing (issue 21): the VAE encoder's posterior, img2img, inpainting
with a 9-channel inpainting UNet and legacy inpainting (latent blending) with an ordinary
4-channel UNet, for tiny SD1, SD2 and SDXL.

    /usr/bin/python3 tools/oracle/make_edit_goldens.py [--check] [--only sd1|sd2|sdxl ...]

writes
    tests/data/tiny-sd1-inpaint.safetensors   tiny SD1 config, UNet in_channels 9, vocab 1024, own seed
    tests/data/tiny-sd2-inpaint.safetensors   tiny SD2 config, UNet in_channels 9, WITH a VAE encoder, eps
    tests/data/tiny-sdxl-inpaint.safetensors  tiny SDXL config, UNet in_channels 9
    tests/data/tiny-sd2-edit.safetensors      tiny SD2 config (v, UNet in 4) WITH a VAE encoder, vocab 1024,
                                              own seed: tiny-sd2 has no encoder, so SD2 img2img / inp4 run on it
    tests/data/golden-edit-sd1.safetensors    i2i_* (tiny-sd1), inp9_* (tiny-sd1-inpaint), inp4_* (tiny-sd1)
    tests/data/golden-edit-sd2.safetensors    i2i_enc_* and inp9_* (tiny-sd2-inpaint), i2i_z and the other
                                              i2i_*, inp4_* (tiny-sd2-edit, v-prediction)
    tests/data/golden-edit-sdxl.safetensors   i2i_* (tiny-sdxl), inp9_* (tiny-sdxl-inpaint), inp4_* (tiny-sdxl)

It reads (never rewrites) tests/data/tiny-{sd1,sdxl}.safetensors and the "context" (and
SDXL's "pipe_y") of tests/data/golden-tiny-<fam>.safetensors, and reuses make_goldens.py
(configs, weight init, safetensors I/O, CFGModel), sd_model.py (the networks) and
sampling_ref.py (schedule, samplers). Every golden tensor is described in the file's
metadata ("tensors", plus the conventions "rng", "encoder", "img2img", "inp9", "inp4").

Sources of the semantics (read with the search tool):
  - posterior: diffusers src/diffusers/models/autoencoders/vae.py DiagonalGaussianDistribution
    (mean, logvar = chunk(moments, 2, dim=1); logvar clamped to [-30, 20]; std =
    exp(0.5 logvar); sample = mean + std * randn_tensor(mean.shape, generator)); CompVis
    ldm/modules/distributions/distributions.py is the same; retrieve_latents (sample_mode
    "sample", the default) and `init_latents = self.vae.config.scaling_factor * init_latents`.
  - img2img latent: diffusers pipeline_stable_diffusion_img2img.py prepare_latents (the image
    is encoded first with the generator, then `noise = randn_tensor(shape, generator=...)`,
    then scheduler.add_noise = z + noise * sigma at the first kept step).
  - img2img steps: AUTOMATIC1111 modules/sd_samplers_common.py setup_img2img_steps with
    img2img_fix_steps off (steps = p.steps, t_enc = int(min(denoising_strength, 0.999) *
    steps)) and modules/sd_samplers_kdiffusion.py sample_img2img (sigmas = get_sigmas(p,
    steps); sigma_sched = sigmas[steps - t_enc - 1:]; xi = x + noise * sigma_sched[0]).
  - 9-channel inpainting: diffusers pipeline_stable_diffusion_inpaint.py (+ _xl): the mask
    processor VaeImageProcessor(do_normalize=False, do_binarize=True,
    do_convert_grayscale=True) binarises at 0.5 (< 0.5 -> 0, >= 0.5 -> 1); masked_image =
    init_image * (mask_condition < 0.5); prepare_latents at strength 1 (is_strength_max):
    noise = randn_tensor(shape, generator) and latents = noise * init_noise_sigma, no image
    encoding for a 9-channel UNet; then prepare_mask_latents: mask =
    F.interpolate(mask, size=(h, w)) (mode "nearest") and masked_image_latents =
    scaling_factor * retrieve_latents(vae.encode(masked_image), generator); the UNet input
    is cat([scale_model_input(latents), mask, masked_image_latents], dim=1): only the noisy
    latent is scaled (in k-diffusion terms c_in * x; A1111 and k-diffusion wrap the whole
    UNet, the concat conditioning passes unscaled: runwayml/stable-diffusion
    ldm/models/diffusion/ddpm.py LatentInpaintDiffusion, conditioning_key "hybrid"
    DiffusionWrapper: xc = torch.cat([x] + c_concat, dim=1)); both CFG rows get the same
    mask and masked latent (prepare_mask_latents: torch.cat([mask] * 2)).
  - SD2-inpainting predicts eps (Stability-AI/stablediffusion
    configs/stable-diffusion/v2-inpainting-inference.yaml has no `parameterization: "v"`),
    so tiny-sd2-inpaint is run as eps although tiny-sd2 is v. tiny-sd2-edit (img2img, inp4)
    is v, as tiny-sd2 and the SD2-768 models (v2-inference-v.yaml: parameterization "v"),
    through sampling_ref's VDenoiser (make_goldens.CFGModel, prediction "v").
  - legacy inpainting (4-channel UNet): the same diffusers pipeline with num_channels_unet
    == 4: prepare_latents with return_image_latents: image_latents =
    _encode_vae_image(image, generator) first, then noise; at strength 1 latents = noise *
    init_noise_sigma; after every scheduler step: init_latents_proper = image_latents,
    noised with the SAME noise to timesteps[i + 1] unless it is the last step, and
    latents = (1 - init_mask) * init_latents_proper + init_mask * latents.
    (diffusers also encodes the masked image with the generator in prepare_mask_latents,
    a third draw the 4-channel path never uses; our convention has no such discarded draw.)
"""
import argparse
import copy
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import make_goldens as mg  # noqa: E402
import sd_model  # noqa: E402
import sampling_ref as sr  # noqa: E402

DATA = mg.DATA
FAMILIES = ("sd1", "sd2", "sdxl")
INPAINT_SEEDS = {"sd1": 110, "sd2": 111, "sdxl": 112}
EDIT_SEED_SD2 = 113           # tiny-sd2-edit: the i2i / inp4 base for SD2 (tiny-sd2 has no encoder)
INPAINT_VOCAB = 1024          # the C tests feed the context from the goldens; the text encoders never run
IMG_HW = (mg.PIPE_HW[0] * 8, mg.PIPE_HW[1] * 8)   # 48 x 64 image, latent 6 x 8
SEED, STEPS, CFG = mg.PIPE_SEED, mg.PIPE_STEPS, mg.PIPE_CFG   # 1234, 4, 7.0
STRENGTH = 0.6
I2I_SAMPLERS = ["euler", "euler_a", "heun", "dpm++2m", "lcm"]   # ddim excluded (A1111 timesteps sampler)
INP_SAMPLERS = ["euler", "euler_a"]
IMAGE_SEED, UNET_SEED = 2101, 2102
INP9_UNET_T = 621.5


def key(s):
    return s.replace("++", "pp")


# -------------------------------------------------------------------- inputs ----
def make_image():
    """[1, 3, 48, 64] smooth test image: per channel two low-frequency sinusoids plus a
    little Gaussian noise (generator seeded IMAGE_SEED), clamped to [-1, 1] and quantised
    to 8 bits as an RGB8 file would be read: value = (k / 255) * 2 - 1 in float32 with k =
    round((v + 1) * 127.5) an integer 0..255 (diffusers VaeImageProcessor: /255 then
    normalize 2x - 1; A1111: astype(float32) / 255, then 2x - 1)."""
    g = torch.Generator().manual_seed(IMAGE_SEED)
    H, W = IMG_HW
    yy = torch.arange(H, dtype=torch.float64)[:, None] / H
    xx = torch.arange(W, dtype=torch.float64)[None, :] / W
    freqs = [(1.0, 0.5), (0.5, 1.5), (1.5, 1.0)]
    chans = []
    for c, (fx, fy) in enumerate(freqs):
        ph = torch.rand(2, generator=g, dtype=torch.float64) * 2 * np.pi
        v = 0.6 * torch.sin(2 * np.pi * (fx * xx + fy * yy) + ph[0]) + 0.3 * torch.cos(2 * np.pi * (2 * fy * xx - fx * yy) + ph[1])
        chans.append(v + 0.05 * torch.randn((H, W), generator=g, dtype=torch.float64))
    img = torch.stack(chans)[None].clamp(-1, 1)
    k = torch.round((img + 1) * 127.5).clamp(0, 255)
    return (k.float() / 255.0) * 2.0 - 1.0


def make_mask():
    """[1, 1, 48, 64] in {0, 1} (1 = repaint): a soft-edged rectangle (rows 13..36, cols
    21..50, a 4-pixel linear ramp across the edge, the edges wobbling by a sinusoid) then
    binarised as diffusers' mask processor does (soft < 0.5 -> 0, >= 0.5 -> 1)."""
    H, W = IMG_HW
    y = torch.arange(H, dtype=torch.float64)[:, None] + 0.5
    x = torch.arange(W, dtype=torch.float64)[None, :] + 0.5
    wob_x = 1.5 * torch.sin(x / 3.0)          # top / bottom edges move with x
    wob_y = 1.5 * torch.cos(y / 2.5)          # left / right edges move with y
    d = torch.minimum(torch.minimum(y - (13 + wob_x), (37 + wob_x) - y),
                      torch.minimum(x - (21 + wob_y), (51 + wob_y) - x))
    soft = (0.5 + d / 4.0).clamp(0, 1)
    m = torch.zeros_like(soft)
    m[soft >= 0.5] = 1.0
    return m[None, None].float()


def latent_mask(mask):
    """diffusers prepare_mask_latents: F.interpolate(mask, size=(H // 8, W // 8)), mode
    "nearest": latent cell (i, j) takes image pixel (8 i, 8 j) (torch nearest: src =
    floor(dst * in / out))."""
    return F.interpolate(mask, size=(mask.shape[2] // 8, mask.shape[3] // 8))


# -------------------------------------------------------------------- models ----
def inpaint_config(fam):
    """the family's tiny config (make_goldens.CONFIGS) with a 9-channel UNet input, a VAE
    encoder (SD2's tiny file has none) and a reduced token table; SD2-inpaint is eps."""
    cfg = copy.deepcopy(mg.CONFIGS[fam])
    cfg["unet"]["in_channels"] = 9
    cfg["vae"]["with_encoder"] = True
    for t in ("text", "text_g"):
        if t in cfg:
            cfg[t]["vocab"] = INPAINT_VOCAB
    if fam == "sd2":
        cfg["prediction"] = "eps"
    return cfg


def edit_config_sd2():
    """tiny-sd2-edit: the tiny SD2 config (v-prediction, linear proj, 16-wide UNet heads,
    OpenCLIP text, UNet in_channels 4) with a VAE encoder and a reduced token table."""
    cfg = copy.deepcopy(mg.CONFIGS["sd2"])
    cfg["vae"]["with_encoder"] = True
    cfg["text"]["vocab"] = INPAINT_VOCAB
    assert cfg["prediction"] == "v" and cfg["unet"]["in_channels"] == 4
    return cfg


def load_model(cfg, path):
    sd, _ = mg.read_safetensors(path)
    m = sd_model.StableDiffusion(cfg).eval()
    m.load_state_dict({k: (v.float() if v.dtype == torch.float16 else v)
                       for k, v in sd.items() if k != "alphas_cumprod"}, strict=True)
    return m


def write_inpaint_checkpoint(fam, cfg, path, seed=None):
    model = mg.build(cfg, seed=INPAINT_SEEDS[fam] if seed is None else seed, used_ids={0}, f16=True)
    sd = mg.checkpoint_tensors(model, True)
    cj = mg.config_json_sdxl(cfg) if fam == "sdxl" else mg.config_json(cfg)
    mg.write_safetensors(path, sd, {"format": "pt", "vkdiff.oracle": "tools/oracle/make_edit_goldens.py",
                                    "vkdiff.config": cj})
    return sd


class ConcatCFGModel(mg.CFGModel):
    """make_goldens.CFGModel whose UNet also gets the inpainting concat conditioning:
    unet(cat([c_in * x, concat], dim 1), t, ctx, y), concat [1, 5, h, w] (mask latent,
    masked-image latent) repeated for both CFG rows, not scaled by c_in."""
    def __init__(self, unet, prediction, acp, ctx, scale, concat, y=None):
        super().__init__(unet, prediction, acp, ctx, scale, y)
        cc = torch.cat([concat, concat])
        self.wrap.inner = lambda x, t, c: self.unet(torch.cat([x, cc], dim=1), t.reshape(-1).expand(x.shape[0]),
                                                    self.ctx, self.y)


def sample(model_fn, x, sigmas, name, g, shape, blend=None):
    """sampling_ref sampler `name` from x over sigmas; ancestral noise from g. blend(i, x):
    applied after step i (sigma_i -> sigma_{i+1}); then the loop runs one step at a time
    (exact for the single-step samplers euler / euler_a, the only ones used with it)."""
    noise = lambda: torch.randn(shape, generator=g)
    if blend is None:
        return sr.SAMPLERS[name](model_fn, x, sigmas, noise)
    assert name in ("euler", "euler_a")
    for i in range(len(sigmas) - 1):
        x = sr.SAMPLERS[name](model_fn, x, sigmas[i:i + 2], noise)
        x = blend(i, x)
    return x


# ------------------------------------------------------------------- goldens ----
def goldens(fam, base, inp, ctx, y):
    """base: the family's ordinary 4-channel model with an encoder (sd2: tiny-sd2-edit),
    inp: its 9-channel model. i2i_enc_* come from base's encoder, for sd2 from inp's
    (tiny-sd2-inpaint; the goldens predate tiny-sd2-edit); i2i_z / inp4_z always from
    base's. Returns (goldens, model calls per run)."""
    acp = sr.compvis_alphas_cumprod()
    sched = sr.DiscreteSchedule(((1 - acp) / acp) ** 0.5)
    sigmas = sched.get_sigmas(STEPS)
    shape = (1, 4) + mg.PIPE_HW
    G, calls = {}, {}
    G["context"] = ctx
    if y is not None:
        G["y"] = y
    img = make_image()
    G["i2i_image_in"] = img
    enc = inp if fam == "sd2" else base
    G["i2i_enc_mean"], G["i2i_enc_logvar"] = enc.vae.encode_posterior(img)
    # the posterior img2img and inp4 sample from (sd2: tiny-sd2-edit's, itself not written)
    mean, logvar = base.vae.encode_posterior(img) if enc is not base else (G["i2i_enc_mean"], G["i2i_enc_logvar"])
    std = torch.exp(0.5 * logvar)

    # ---- img2img (diffusers prepare_latents draw order, A1111 step cut)
    for tag, strength in (("i2i", STRENGTH), ("i2i_s1", 1.0)):
        t_enc = int(min(strength, 0.999) * STEPS)
        cut = sigmas[STEPS - t_enc - 1:]
        runs = I2I_SAMPLERS if tag == "i2i" else ["euler"]
        for name in runs:
            g = torch.Generator().manual_seed(SEED)
            eps = torch.randn(shape, generator=g)
            z = (mean + std * eps) * base.scale_factor
            noise = torch.randn(shape, generator=g)
            if tag == "i2i" and name == runs[0]:
                G["i2i_z"], G["i2i_noise"], G["i2i_sigmas"] = z, noise, cut.clone()
            if tag == "i2i_s1":
                G["i2i_s1_sigmas"] = cut.clone()
            m = mg.CFGModel(base.unet, base.cfg["prediction"], acp, ctx, CFG, y)
            x = sample(m, z + noise * cut[0], cut, name, g, shape)
            calls[f"{tag}_{key(name)}"] = m.calls
            G[f"{tag}_{key(name)}_latent"] = x
            G[f"{tag}_{key(name)}_image"] = base.vae.decode(x / base.scale_factor)

    # ---- inpainting with the 9-channel UNet (strength 1)
    mask = make_mask()
    ml = latent_mask(mask)
    masked = img * (mask < 0.5)
    G["inp9_mask"], G["inp9_mask_latent"], G["inp9_masked_image"] = mask, ml, masked
    mmean, mlogvar = inp.vae.encode_posterior(masked)
    mstd = torch.exp(0.5 * mlogvar)
    for name in INP_SAMPLERS:
        g = torch.Generator().manual_seed(SEED)
        noise = torch.randn(shape, generator=g)
        mlat = (mmean + mstd * torch.randn(shape, generator=g)) * inp.scale_factor
        if name == INP_SAMPLERS[0]:
            G["inp9_noise"], G["inp9_masked_latent"] = noise, mlat
        m = ConcatCFGModel(inp.unet, inp.cfg["prediction"], acp, ctx, CFG, torch.cat([ml, mlat], dim=1), y)
        x = sample(m, noise * sigmas[0], sigmas, name, g, shape)
        calls[f"inp9_{key(name)}"] = m.calls
        G[f"inp9_{key(name)}_latent"] = x
        G[f"inp9_{key(name)}_image"] = inp.vae.decode(x / inp.scale_factor)
    # UNet-only stage golden: rows 0 / 1 with different noisy latents, the same concat
    g = torch.Generator().manual_seed(UNET_SEED)
    ux = torch.cat([torch.randn((2, 4) + mg.PIPE_HW, generator=g),
                    torch.cat([ml, G["inp9_masked_latent"]], dim=1).expand(2, 5, *mg.PIPE_HW)], dim=1)
    G["inp9_unet_x"], G["inp9_unet_t"] = ux, torch.tensor([INP9_UNET_T])
    G["inp9_unet_out"] = inp.unet(ux, torch.full((2,), INP9_UNET_T), ctx, y)

    # ---- legacy inpainting with the ordinary 4-channel UNet (strength 1)
    G["inp4_mask"], G["inp4_mask_latent"] = mask, ml
    for name in INP_SAMPLERS:
        g = torch.Generator().manual_seed(SEED)
        z = (mean + std * torch.randn(shape, generator=g)) * base.scale_factor
        noise = torch.randn(shape, generator=g)
        if name == INP_SAMPLERS[0]:
            G["inp4_z"], G["inp4_noise"] = z, noise

        def blend(i, x, z=z, noise=noise):
            return (1 - ml) * (z + noise * sigmas[i + 1]) + ml * x
        m = mg.CFGModel(base.unet, base.cfg["prediction"], acp, ctx, CFG, y)
        x = sample(m, noise * sigmas[0], sigmas, name, g, shape, blend)
        calls[f"inp4_{key(name)}"] = m.calls
        G[f"inp4_{key(name)}_latent"] = x
        G[f"inp4_{key(name)}_image"] = base.vae.decode(x / base.scale_factor)
    return G, calls


# ------------------------------------------------------------------ metadata ----
def describe(fam, G, sf, sf_inp, pred, pred_inp):
    h, w = mg.PIPE_HW
    H, W = IMG_HW
    t_enc = int(min(STRENGTH, 0.999) * STEPS)
    d = {
        "context": f"[2, 77, C] copy of 'context' of tests/data/golden-tiny-{fam}.safetensors (row 0 cond, "
                   "row 1 uncond); the context of every UNet call here (the checkpoints' own text encoders "
                   "are never run)",
        "y": "[2, 1584] copy of 'pipe_y' of tests/data/golden-tiny-sdxl.safetensors: the SDXL vector "
             "conditioning of every UNet call here (row 0 cond, row 1 uncond)",
        "i2i_image_in": f"[1, 3, {H}, {W}] input image, NCHW, values (k / 255) * 2 - 1 for integers k in 0..255 "
                        "(k = round((v + 1) * 127.5)): an RGB8 image normalised as diffusers / A1111 do",
        "i2i_enc_mean": f"[1, 4, {h}, {w}] posterior mean of i2i_image_in: first 4 channels of "
                        "quant_conv(encoder(x)); NOT multiplied by the scale factor",
        "i2i_enc_logvar": f"[1, 4, {h}, {w}] posterior log-variance: last 4 channels of quant_conv(encoder(x)), "
                          "clamped to [-30, 20]; std = exp(0.5 * logvar)",
        "i2i_z": f"[1, 4, {h}, {w}] (i2i_enc_mean + std * eps) * {sf}, eps = draw 1 of the generator",
        "i2i_noise": f"[1, 4, {h}, {w}] draw 2 of the generator",
        "i2i_sigmas": f"[{t_enc + 2}] sigmas[{STEPS} - t_enc - 1:] of the {STEPS}-step discrete schedule "
                      f"(get_sigmas({STEPS}) with the final 0) for strength {STRENGTH}: t_enc = "
                      f"int(min({STRENGTH}, 0.999) * {STEPS}) = {t_enc}, t_enc + 1 = {t_enc + 1} sampler steps",
        "i2i_s1_sigmas": f"[{STEPS + 1}] the same for strength 1.0: t_enc = int(0.999 * {STEPS}) = {STEPS - 1}, "
                         "the whole schedule (= pipe_sigmas)",
        "inp9_mask": f"[1, 1, {H}, {W}] image-size mask in {{0, 1}}, 1 = repaint (a binarised soft rectangle)",
        "inp9_mask_latent": f"[1, 1, {h}, {w}] F.interpolate(inp9_mask, size=({h}, {w})), mode nearest: "
                            "latent cell (i, j) = inp9_mask pixel (8 i, 8 j)",
        "inp9_masked_image": f"[1, 3, {H}, {W}] i2i_image_in * (inp9_mask < 0.5): zero where repainted",
        "inp9_noise": f"[1, 4, {h}, {w}] draw 1 of the generator; x0 = inp9_noise * sigma_0 (full schedule)",
        "inp9_masked_latent": f"[1, 4, {h}, {w}] (mean + exp(0.5 logvar) * eps) * {sf_inp} of the inpainting "
                              "checkpoint's posterior of inp9_masked_image, eps = draw 2 of the generator",
        "inp9_unet_x": f"[2, 9, {h}, {w}] raw UNet input: channels 0..3 = a random noisy latent (row 0 and row 1 "
                       "differ, already c_in-scaled), channel 4 = inp9_mask_latent, 5..8 = inp9_masked_latent "
                       "(the same in both rows)",
        "inp9_unet_t": f"[1] timestep {INP9_UNET_T} (fractional), for both rows",
        "inp9_unet_out": f"[2, 4, {h}, {w}] raw UNet output ({pred_inp}) for inp9_unet_x, inp9_unet_t and "
                         "context (rows 0 / 1)" + (" and y" if fam == "sdxl" else ""),
        "inp4_mask": "[1, 1, %d, %d] = inp9_mask" % (H, W),
        "inp4_mask_latent": "[1, 1, %d, %d] = inp9_mask_latent" % (h, w),
        "inp4_z": f"[1, 4, {h}, {w}] (i2i_enc_mean + std * eps) * {sf}, eps = draw 1 (the same as i2i_z)",
        "inp4_noise": f"[1, 4, {h}, {w}] draw 2 (the same as i2i_noise); x0 = inp4_noise * sigma_0",
    }
    on = ""
    if fam == "sd2":   # two checkpoints with an encoder: say which one each golden comes from
        edit, inpf = "tests/data/tiny-sd2-edit.safetensors", "tests/data/tiny-sd2-inpaint.safetensors"
        d["i2i_enc_mean"] += f"; the encoder of {inpf} (NOT {edit}, whose posterior i2i_z samples)"
        d["i2i_enc_logvar"] += f"; the encoder of {inpf} (NOT {edit})"
        d["i2i_z"] = (f"[1, 4, {h}, {w}] (mean + exp(0.5 * logvar) * eps) * {sf}, mean / logvar = the posterior of "
                      f"i2i_image_in under the encoder of {edit} (NOT i2i_enc_mean / i2i_enc_logvar, which are "
                      f"{inpf}'s; that posterior is not in this file), eps = draw 1 of the generator")
        d["inp4_z"] = (f"[1, 4, {h}, {w}] {edit}'s posterior sample of i2i_image_in, eps = draw 1: the same "
                       "as i2i_z")
        on = f"; {edit}, prediction {pred}"
    for s in I2I_SAMPLERS:
        d[f"i2i_{key(s)}_latent"] = (f"[1, 4, {h}, {w}] final latent of sampler {s}, strength {STRENGTH}: x = i2i_z + "
                                     f"i2i_noise * i2i_sigmas[0], then the sampler over i2i_sigmas, cfg {CFG}{on}")
        d[f"i2i_{key(s)}_image"] = f"[1, 3, {H}, {W}] decode(i2i_{key(s)}_latent / {sf}) before clamp"
    d["i2i_s1_euler_latent"] = (f"[1, 4, {h}, {w}] euler at strength 1.0: x = i2i_z + i2i_noise * sigma_0, the "
                                f"whole schedule i2i_s1_sigmas{on}")
    d["i2i_s1_euler_image"] = f"[1, 3, {H}, {W}] decode(i2i_s1_euler_latent / {sf}) before clamp"
    for s in INP_SAMPLERS:
        d[f"inp9_{key(s)}_latent"] = (f"[1, 4, {h}, {w}] {s} with the 9-channel UNet, strength 1, full "
                                      f"{STEPS}-step schedule, cfg {CFG}, from x0 = inp9_noise * sigma_0")
        d[f"inp9_{key(s)}_image"] = f"[1, 3, {H}, {W}] decode(inp9_{key(s)}_latent / {sf_inp}) before clamp"
        d[f"inp4_{key(s)}_latent"] = (f"[1, 4, {h}, {w}] {s} with the ordinary UNet, strength 1, from x0 = "
                                      "inp4_noise * sigma_0; after each step i: x = (1 - m) * (inp4_z + inp4_noise * "
                                      "sigma_{i+1}) + m * x, m = inp4_mask_latent (the last step: sigma 0, so the "
                                      "unmasked cells equal inp4_z exactly)" + on)
        d[f"inp4_{key(s)}_image"] = f"[1, 3, {H}, {W}] decode(inp4_{key(s)}_latent / {sf}) before clamp"
    return {k: v for k, v in d.items() if k in G}


def metadata(fam, G, calls, base_cfg, inp_cfg):
    sf_inp = inp_cfg.get("scale_factor", mg.SCALE_FACTOR)
    sf = base_cfg.get("scale_factor", mg.SCALE_FACTOR)
    pred, pred_inp = base_cfg["prediction"], inp_cfg["prediction"]
    cj = mg.config_json_sdxl if fam == "sdxl" else mg.config_json
    h, w = mg.PIPE_HW
    ydoc = " and y" if fam == "sdxl" else ""
    t_enc = int(min(STRENGTH, 0.999) * STEPS)
    meta = {
        "generated_by": "tools/oracle/make_edit_goldens.py (torch %s)" % torch.__version__,
        "checkpoint_i2i": "tests/data/tiny-sd2-edit.safetensors (img2img, inp4: i2i_z, inp4_z and every "
                          "i2i_* / inp4_* run; NOT i2i_enc_*), prediction v" if fam == "sd2" else
                          f"tests/data/tiny-{fam}.safetensors (img2img, inp4, i2i_enc_*)",
        "checkpoint_inp9": f"tests/data/tiny-{fam}-inpaint.safetensors (inp9_*"
                           + (", i2i_enc_mean, i2i_enc_logvar), prediction eps" if fam == "sd2" else ")"),
        "config_i2i": cj(base_cfg),
        "config_inp9": cj(inp_cfg),
        "layout": "PyTorch NCHW, F32 (C side is channels-last: transpose); batch row 0 cond, row 1 uncond",
        "rng": f"one torch CPU generator per run, torch.Generator().manual_seed({SEED}); every draw is "
               f"torch.randn([1, 4, {h}, {w}], generator=g); the draws named per tensor, then the ancestral "
               "samplers' (euler_a, lcm) draws from the same generator, one per step with sigma_{i+1} > 0",
        "encoder": "posterior (diffusers DiagonalGaussianDistribution): moments = quant_conv(encoder(x)); mean = "
                   "moments[:, :4], logvar = clamp(moments[:, 4:], -30, 20), std = exp(0.5 * logvar), sample = "
                   "mean + std * eps; latent = sample * scale factor" + (
                       "; i2i_enc_mean / i2i_enc_logvar are the encoder of tests/data/tiny-sd2-inpaint.safetensors, "
                       "i2i_z / inp4_z sample the posterior of the encoder of tests/data/tiny-sd2-edit.safetensors "
                       "(a different VAE; its mean / logvar are not in this file)" if fam == "sd2" else ""),
        "img2img": f"{STEPS} steps, strength {STRENGTH} (also 1.0: i2i_s1_*), cfg {CFG}, prediction {pred}; "
                   "draw 1 = posterior eps, draw 2 = noise (diffusers img2img prepare_latents order); t_enc = "
                   f"int(min(strength, 0.999) * steps) = {t_enc}; sigmas = get_sigmas({STEPS}) (k-diffusion "
                   f"discrete, + 0)[{STEPS} - t_enc - 1:] (A1111 setup_img2img_steps, img2img_fix_steps off, "
                   "sample_img2img); x = z + noise * sigmas[0]; k-diffusion sampler over those sigmas with CFG "
                   f"uncond + {CFG} * (cond - uncond) on the denoised output; UNet batch 2 on context{ydoc}; "
                   f"samplers {', '.join(I2I_SAMPLERS)} (ddim not covered)" + (
                       f"; checkpoint tests/data/tiny-sd2-edit.safetensors, v-prediction through k-diffusion's "
                       "DiscreteVDDPMDenoiser (sampling_ref.VDenoiser): denoised = c_skip * x + c_out * v(c_in * x), "
                       "c_skip = 1 / (sigma^2 + 1), c_out = -sigma / sqrt(sigma^2 + 1), c_in = 1 / sqrt(sigma^2 + 1)"
                       if fam == "sd2" else ""),
        "inp9": f"9-channel inpainting UNet, strength 1, {STEPS} steps, cfg {CFG}, prediction {pred_inp}: draw 1 "
                "= noise, x0 = noise * sigma_0; draw 2 = eps of the masked image's posterior; UNet input = "
                "cat([c_in * x, inp9_mask_latent, inp9_masked_latent], dim 1): only the noisy latent is scaled "
                "by c_in = 1 / sqrt(sigma^2 + 1), the concat is the same in both CFG rows and at every step; "
                f"samplers {', '.join(INP_SAMPLERS)}",
        "inp4": f"legacy inpainting with the ordinary 4-channel UNet (diffusers StableDiffusionInpaintPipeline with "
                f"num_channels_unet 4), strength 1, {STEPS} steps, cfg {CFG}, prediction {pred}: draw 1 = posterior "
                "eps of the (unmasked) image, draw 2 = noise, x0 = noise * sigma_0; after sampler step i (sigma_i "
                "-> sigma_{i+1}, ancestral noise included) x = (1 - m) * (inp4_z + inp4_noise * sigma_{i+1}) + "
                "m * x with m = inp4_mask_latent; no blend before the first step" + (
                    "; checkpoint tests/data/tiny-sd2-edit.safetensors, v-prediction (as img2img)"
                    if fam == "sd2" else ""),
        "tensors": json.dumps(describe(fam, G, sf, sf_inp, pred, pred_inp)),
        "model_calls": json.dumps(calls),
    }
    return {k: v for k, v in meta.items() if v != ""}


# ---------------------------------------------------------------------- main ----
def run_family(fam, out, check):
    t0 = time.time()
    base_cfg = edit_config_sd2() if fam == "sd2" else mg.CONFIGS[fam]
    inp_cfg = inpaint_config(fam)
    ck = os.path.join(out, f"tiny-{fam}-inpaint.safetensors")
    sd = write_inpaint_checkpoint(fam, inp_cfg, ck)
    if check:
        mg.check_names(inp_cfg, sd, vocab=INPAINT_VOCAB, inpaint=True)
    if fam == "sd2":   # tiny-sd2 has no encoder: img2img / inp4 run on their own checkpoint
        base_ck = os.path.join(out, "tiny-sd2-edit.safetensors")
        sd_e = write_inpaint_checkpoint(fam, base_cfg, base_ck, seed=EDIT_SEED_SD2)
        if check:
            mg.check_names(base_cfg, sd_e, vocab=INPAINT_VOCAB)
    else:
        base_ck = os.path.join(DATA, f"tiny-{fam}.safetensors")
    gt, _ = mg.read_safetensors(os.path.join(DATA, f"golden-tiny-{fam}.safetensors"))
    ctx = gt["context"]
    y = gt["pipe_y"] if fam == "sdxl" else None
    inp = load_model(inp_cfg, ck)
    base = load_model(base_cfg, base_ck)
    with torch.no_grad():
        G, calls = goldens(fam, base, inp, ctx, y)
    gp = os.path.join(out, f"golden-edit-{fam}.safetensors")
    mg.write_safetensors(gp, {k: v.contiguous() for k, v in G.items()}, metadata(fam, G, calls, base_cfg, inp_cfg))
    print(f"{fam}: {ck} {os.path.getsize(ck)} B, {gp} {os.path.getsize(gp)} B, {time.time() - t0:.1f} s"
          + (f", {base_ck} {os.path.getsize(base_ck)} B" if fam == "sd2" else ""))
    for k in ("i2i_enc_logvar", "i2i_euler_image", "inp9_euler_image", "inp4_euler_latent", "inp4_euler_image"):
        if k in G:
            print(f"  {k}: shape {tuple(G[k].shape)} std {G[k].std():.3f} absmax {G[k].abs().max():.3f}")
    if check:
        inp2 = load_model(inp_cfg, ck)
        base2 = load_model(base_cfg, base_ck)
        with torch.no_grad():
            G2, _ = goldens(fam, base2, inp2, ctx, y)
        Gr, _ = mg.read_safetensors(gp)
        assert set(G2) == set(Gr), sorted(set(G2) ^ set(Gr))
        for k in G2:
            assert torch.equal(G2[k].float(), Gr[k]), k
        assert torch.equal(Gr["i2i_z"], Gr["inp4_z"]) and torch.equal(Gr["i2i_noise"], Gr["inp4_noise"])
        # the unmasked latent cells of a legacy inpaint end at the image latents
        for s in INP_SAMPLERS:
            keep = (Gr["inp4_mask_latent"] < 0.5).expand(1, 4, *mg.PIPE_HW)
            assert torch.equal(Gr[f"inp4_{key(s)}_latent"][keep], Gr["inp4_z"][keep]), s
        print("  check: the written checkpoint(s) round-trip, the goldens recompute bit-exactly")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true",
                    help="also: key names vs tools/make_checkpoint.py --inpaint, recompute from the written files")
    ap.add_argument("--out", default=DATA)
    ap.add_argument("--only", action="append", choices=FAMILIES, help="one family (repeatable; default: all)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(a.out, exist_ok=True)
    for fam in FAMILIES:
        if not a.only or fam in a.only:
            run_family(fam, a.out, a.check)


if __name__ == "__main__":
    main()
