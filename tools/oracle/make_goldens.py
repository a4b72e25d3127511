#!/usr/bin/python3
"""Tiny SD1-like / SD2-like / SDXL-like checkpoints and the goldens the C tests compare against.

    /usr/bin/python3 tools/oracle/make_goldens.py [--check] [--only sd1|sd2|sdxl ...]

writes
    tests/data/tiny-sd1.safetensors         CompVis single-file checkpoint, F16 (+ I64 position_ids)
    tests/data/tiny-sd2.safetensors
    tests/data/tiny-sdxl.safetensors        sgm single-file names (conditioner.embedders.{0,1}.*)
    tests/data/golden-tiny-sd1.safetensors  F32 / I32 tensors, see tools/oracle/README.md
    tests/data/golden-tiny-sd2.safetensors
    tests/data/golden-tiny-sdxl.safetensors

The networks come from sd_model.py (written from the CompVis / Stability-AI / HF /
open_clip sources), the schedules and samplers from sampling_ref.py (k-diffusion and
A1111). Everything is deterministic: weights from numpy generators keyed by
(seed, tensor name), inputs and noise from seeded torch CPU generators.
--check also reloads each written checkpoint, compares its key set with
tools/make_checkpoint.py's independent key list for the same config, and recomputes.
"""
import argparse
import hashlib
import json
import math
import os
import struct
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
DATA = os.path.join(ROOT, "tests", "data")
sys.path.insert(0, HERE)

import sd_model  # noqa: E402
import sampling_ref as sr  # noqa: E402

VOCAB, POSITIONS = 49408, 77
BOS, EOS = 49406, 49407
SCALE_FACTOR = 0.18215

# Tiny configs. GroupNorm(32) needs multiples of 32 channels, and the files must stay
# small (random weights do not compress), hence 32 channels at both UNet levels. The
# head split is not in the weights: SD1 keeps its family's 8 heads; the SD2-like UNet
# uses 16-wide heads (SD2 proper: 64) and the text encoders 4 heads, so a C test must
# take heads from the metadata ("config" in the golden, "vkdiff.config" in the
# checkpoint) rather than from the family defaults.
# The VAE keeps 4 levels (factor 8 between image and latent, as SD's VAE). SD1's has an
# encoder; SD2's is decoder-only (no encoder.*, no quant_conv) and changes channel count
# at level 0 so the decoder's nin_shortcut is exercised.
CONFIGS = {
    "sd1": dict(
        family="sd1", prediction="eps",
        unet=dict(in_channels=4, out_channels=4, model_channels=32, channel_mult=(1, 1), num_res_blocks=1,
                  attention_levels=(0, 1), num_heads=8, num_head_channels=-1, transformer_depth=1,
                  context_dim=32, use_linear_in_transformer=False),
        vae=dict(ch=32, ch_mult=(1, 1, 1, 1), num_res_blocks=1, z_channels=4, with_encoder=True),
        text=dict(width=32, layers=2, heads=4, mlp=128, vocab=VOCAB, positions=POSITIONS)),
    "sd2": dict(
        family="sd2", prediction="v",
        unet=dict(in_channels=4, out_channels=4, model_channels=32, channel_mult=(1, 1), num_res_blocks=1,
                  attention_levels=(0, 1), num_heads=-1, num_head_channels=16, transformer_depth=1,
                  context_dim=64, use_linear_in_transformer=True),
        vae=dict(ch=32, ch_mult=(2, 1, 1, 1), num_res_blocks=1, z_channels=4, with_encoder=False),
        text=dict(width=64, layers=3, heads=4, mlp=256, vocab=VOCAB, positions=POSITIONS, proj=64)),
    # SDXL-like (Stability-AI generative-models configs/inference/sd_xl_base.yaml, scaled
    # down): 3 UNet levels, no transformer on level 0 (attention_resolutions [4, 2]),
    # per-level depth (0, 1, 2) and middle depth 2 (sgm: transformer_depth[-1]), linear
    # proj, 16-wide heads (SDXL: 64), context = CLIP-L hidden (32) + bigG penultimate (64),
    # adm = pooled (48) + 6 size embeddings of 256. bigG's projection is non-square on
    # purpose (48 != 64) so a transposed text_projection shows. Both encoders 2 heads.
    "sdxl": dict(
        family="sdxl", prediction="eps", scale_factor=0.13025,
        unet=dict(in_channels=4, out_channels=4, model_channels=32, channel_mult=(1, 1, 2), num_res_blocks=1,
                  attention_levels=(1, 2), num_heads=-1, num_head_channels=16, transformer_depth=(0, 1, 2),
                  transformer_depth_middle=2, context_dim=32 + 64, use_linear_in_transformer=True,
                  adm_in_channels=48 + 6 * 256),
        vae=dict(ch=32, ch_mult=(1, 1, 1, 1), num_res_blocks=1, z_channels=4, with_encoder=True),
        text=dict(width=32, layers=3, heads=2, mlp=128, vocab=VOCAB, positions=POSITIONS),
        text_g=dict(width=64, layers=3, heads=2, mlp=256, vocab=VOCAB, positions=POSITIONS, proj=48)),
}
SEEDS = {"sd1": 100, "sd2": 101, "sdxl": 102}

PROMPT_LEN = 12            # tokens between BOS and EOS in the conditional prompt
UNET_HW = (12, 16)         # latent h, w of the UNet goldens (non-square on purpose)
UNET_T = [999.0, 500.0, 1.0, 261.75]
VAE_HW = (6, 10)           # latent h, w of the VAE goldens -> image 48 x 80
PIPE_HW = (6, 8)           # latent of the full pipeline -> image 48 x 64
PIPE_SEED, PIPE_STEPS, PIPE_CFG = 1234, 4, 7.0
# SDXL size conditioning of the UNet goldens (h, w order; all six values differ so an
# order mistake shows) and of the pipeline goldens (the image size, no crop, as diffusers
# and A1111 pass by default)
SDXL_UNET_SIZES = dict(original_size=(1024, 768), crop_coords_top_left=(16, 32), target_size=(96, 128))
SDXL_PIPE_SIZES = dict(original_size=(PIPE_HW[0] * 8, PIPE_HW[1] * 8), crop_coords_top_left=(0, 0),
                       target_size=(PIPE_HW[0] * 8, PIPE_HW[1] * 8))
TURBO_STEPS = (1, 4)
TEMPLATE_ROWS = 61


# ----------------------------------------------------------------- safetensors ----
DT = {torch.float32: ("F32", np.float32), torch.float16: ("F16", np.float16),
      torch.int64: ("I64", np.int64), torch.int32: ("I32", np.int32)}


def write_safetensors(path, tensors, metadata):
    """tensors: dict name -> torch tensor (F32 / I64 / I32), written in insertion order.
    Format: u64 LE header length, JSON header (space padded to 8 bytes), raw LE data."""
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        code, npt = DT[t.dtype]
        b = np.ascontiguousarray(t.detach().cpu().numpy().astype(npt, copy=False)).astype("<" + np.dtype(npt).str[1:]).tobytes()
        header[name] = {"dtype": code, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    inv = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32}
    out = {}
    for name, h in header.items():
        a, b = h["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(data[a:b], dtype=inv[h["dtype"]]).reshape(h["shape"]).copy())
    return out, meta


# -------------------------------------------------------------------- weights ----
def name_rng(seed, name):
    h = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")
    return np.random.default_rng([seed, h])


def init_weights(model, seed, used_ids, f16):
    """Deterministic weights with O(1) activations and nothing zero: linears / convs
    N(0, 1/fan_in), biases N(0, 0.1^2), norm scales 1 + N(0, 0.1^2), norm shifts
    N(0, 0.1^2), embeddings N(0, 0.5^2). The 49408-row token table gives a unique row
    to every id the goldens use and repeats 61 template rows elsewhere, so the file
    compresses in git (the rows the goldens never read cannot change a result)."""
    norm_params = set()
    for mname, m in model.named_modules():
        if isinstance(m, (torch.nn.GroupNorm, torch.nn.LayerNorm)):
            norm_params.update({mname + ".weight", mname + ".bias"})
    sd = model.state_dict()
    with torch.no_grad():
        for name, t in sd.items():
            if t.dtype == torch.int64:        # position_ids: a buffer, keeps its arange
                continue
            rng = name_rng(seed, name)
            shape = tuple(t.shape)
            g = lambda: rng.standard_normal(shape).astype(np.float32)
            if name in norm_params:
                v = (1.0 + 0.1 * g()) if name.endswith("weight") else 0.1 * g()
            elif name.endswith("logit_scale"):
                v = np.full(shape, math.log(1 / 0.07), np.float32)
            elif name.endswith("token_embedding.weight"):
                tmpl = 0.5 * rng.standard_normal((TEMPLATE_ROWS, shape[1])).astype(np.float32)
                v = tmpl[np.arange(shape[0]) % TEMPLATE_ROWS]
                ids = np.array(sorted(used_ids))
                v[ids] = 0.5 * rng.standard_normal((len(ids), shape[1])).astype(np.float32)
            elif name.endswith("position_embedding.weight") or name.endswith("positional_embedding"):
                v = 0.5 * g()
            elif len(shape) == 1:             # biases (in_proj_bias included)
                v = 0.1 * g()
            else:                             # [out, in, (kh, kw)] and text_projection [W, P]
                fan_in = int(np.prod(shape[1:])) if not name.endswith("text_projection") else shape[0]
                v = g() / math.sqrt(fan_in)
            if f16:   # the file stores F16; the oracle computes in fp32 on exactly those values
                v = v.astype(np.float16).astype(np.float32)
            t.copy_(torch.from_numpy(np.ascontiguousarray(v).reshape(shape)))
    return model


def build(cfg, seed, used_ids, f16):
    torch.manual_seed(0)   # construction-time init is overwritten below; keep it quiet and fixed
    m = sd_model.StableDiffusion(cfg).eval()
    return init_weights(m, seed, used_ids, f16)


def checkpoint_tensors(model, f16):
    sd = {k: (v.half() if f16 and v.dtype == torch.float32 else v) for k, v in model.state_dict().items()}
    if model.cfg["family"] != "sdxl":   # sgm SDXL files carry no schedule
        sd["alphas_cumprod"] = sr.compvis_alphas_cumprod()   # as real CompVis files carry it
    return sd


# ------------------------------------------------------------------- tokens ----
def make_tokens(family):
    """[2, 77]: row 0 a 12-token prompt, row 1 the empty prompt (the uncond of CFG).
    Padding per family: SD1 (HF CLIPTokenizer, clip-vit-large-patch14: pad_token is
    <|endoftext|>) pads with EOS 49407; SD2 (open_clip tokenize) pads with 0."""
    g = torch.Generator().manual_seed(7)
    words = torch.randint(1, BOS, (PROMPT_LEN,), generator=g).tolist()
    pad = EOS if family == "sd1" else 0
    rows = []
    for body in (words, []):
        r = [BOS] + body + [EOS]
        rows.append(r + [pad] * (POSITIONS - len(r)))
    return torch.tensor(rows, dtype=torch.int64)


# ----------------------------------------------------------------- sampling ----
class CFGModel:
    """k-diffusion denoiser wrapper (sampling_ref Eps/VDenoiser) around the UNet with
    A1111/ComfyUI CFGDenoiser guidance on the denoised output; cond and uncond evaluated
    together as batch 2 (row 0 cond, row 1 uncond)."""
    def __init__(self, unet, prediction, acp, ctx, scale, y=None):
        self.unet, self.ctx, self.scale, self.y = unet, ctx, scale, y
        inner = lambda x, t, c: self.unet(x, t.reshape(-1).expand(x.shape[0]), self.ctx, self.y)
        self.wrap = (sr.EpsDenoiser if prediction == "eps" else sr.VDenoiser)(inner, acp)
        self.calls = 0

    def __call__(self, x, sigma):
        self.calls += 1
        sigma = torch.as_tensor(sigma, dtype=torch.float32)
        out = self.wrap(torch.cat([x, x]), sigma, None)
        cond, uncond = out[:1], out[1:]
        return uncond + (cond - uncond) * self.scale


def ddim_eps_model(unet, prediction, acp, ctx, scale, y=None):
    """A1111 CompVisTimestepsDenoiser / CompVisTimestepsVDenoiser (eps from v:
    sqrt(acp[t]) v + sqrt(1 - acp[t]) x) with CFG on eps, as sampling_ref's toy version"""
    sqrt_acp = torch.tensor(np.sqrt(acp.double().numpy()), dtype=torch.float32)
    sqrt_1m = torch.tensor(np.sqrt(1.0 - acp.double().numpy()), dtype=torch.float32)

    def model(x, t):
        out = unet(torch.cat([x, x]), torch.cat([t, t]).float(), ctx, y)
        if prediction == "v":
            ti = t.long()
            xx = torch.cat([x, x])
            out = sqrt_acp[torch.cat([ti, ti]), None, None, None] * out + sqrt_1m[torch.cat([ti, ti]), None, None, None] * xx
        cond, uncond = out[:1], out[1:]
        return uncond + (cond - uncond) * scale
    return model


SAMPLERS = ["euler", "euler_a", "heun", "dpm++2m", "ddim", "lcm"]


def run_pipeline(model, cfg, ctx, acp, y=None, samplers=SAMPLERS, prefix="pipe"):
    """4-step discrete-schedule image for every sampler; noise torch.randn([1, 4, h, w])
    on a CPU generator seeded with PIPE_SEED; ancestral samplers draw further randn of
    the same shape from the same generator (sampling_ref convention). y: SDXL's vector
    conditioning [2, adm] (row 0 cond, row 1 uncond), None for SD1/SD2."""
    sched = sr.DiscreteSchedule(((1 - acp) / acp) ** 0.5)
    sigmas = sched.get_sigmas(PIPE_STEPS)
    shape = (1, 4) + PIPE_HW
    out = {}
    if prefix == "pipe":
        out["pipe_sigmas"] = sigmas.clone()
        g = torch.Generator().manual_seed(PIPE_SEED)
        out["pipe_noise"] = torch.randn(shape, generator=g)
    calls = {}
    for name in samplers:
        g = torch.Generator().manual_seed(PIPE_SEED)
        noise = torch.randn(shape, generator=g)
        if name == "ddim":
            ts = sr.a1111_ddim_timesteps(PIPE_STEPS)
            m = ddim_eps_model(model.unet, cfg["prediction"], acp, ctx, PIPE_CFG, y)
            n = [0]

            def counted(x, t):
                n[0] += 1
                return m(x, t)
            x = sr.a1111_ddim(counted, noise, ts, acp)
            calls[name] = n[0]
        else:
            m = CFGModel(model.unet, cfg["prediction"], acp, ctx, PIPE_CFG, y)
            x = sr.SAMPLERS[name](m, noise * sigmas[0], sigmas, lambda: torch.randn(shape, generator=g))
            calls[name] = m.calls
        key = name.replace("++", "pp")
        out[f"{prefix}_{key}_latent"] = x
        out[f"{prefix}_{key}_image"] = model.vae.decode(x / model.scale_factor)
    return out, calls


def run_turbo(model, ctx, y, acp, steps):
    """SDXL-Turbo as diffusers runs it (StableDiffusionXLPipeline with the model's
    EulerAncestralDiscreteScheduler, timestep_spacing "trailing", guidance_scale 0.0 ->
    no CFG, one UNet pass per step on the prompt alone), written with the k-diffusion
    conventions of run_pipeline: sigmas = sampling_ref.get_sigmas_trailing (diffusers'
    trailing timesteps 999, 749, ... interpolated into the sigma table, then 0), x0 = noise
    * sigma_0 (diffusers: init_noise_sigma = max sigma for "trailing"), k-diffusion
    sample_euler_ancestral (eta 1, s_noise 1; the sigma_up / sigma_down split is the same
    formula as diffusers' EulerAncestralDiscreteScheduler.step), eps denoiser with the
    UNet timestep from sigma_to_t, ancestral noise from the same generator after the start
    noise. ctx [1, 77, C], y [1, adm]."""
    sigmas = sr.get_sigmas_trailing(steps, acp)
    shape = (1, 4) + PIPE_HW
    g = torch.Generator().manual_seed(PIPE_SEED)
    noise = torch.randn(shape, generator=g)
    den = sr.EpsDenoiser(lambda x, t, c: model.unet(x, t.reshape(-1).expand(x.shape[0]), ctx, y), acp)
    calls = [0]

    def m(x, sigma):
        calls[0] += 1
        return den(x, torch.as_tensor(sigma, dtype=torch.float32), None)
    x = sr.sample_euler_ancestral(m, noise * sigmas[0], sigmas, lambda: torch.randn(shape, generator=g))
    return {f"turbo_sigmas_{steps}": sigmas.clone(), f"turbo_{steps}_latent": x,
            f"turbo_{steps}_image": model.vae.decode(x / model.scale_factor)}, calls[0]


# ------------------------------------------------------------------ goldens ----
def goldens(model, cfg):
    fam = cfg["family"]
    acp = sr.compvis_alphas_cumprod()
    G = {}
    tokens = make_tokens(fam)
    G["tokens"] = tokens.to(torch.int32)
    ctx = model.encode_text(tokens)
    G["context"] = ctx
    if fam == "sd1":
        G["context_skip2"] = model.encode_text(tokens, clip_skip=2)
    else:
        G["context_last"] = model.cond_stage_model.model.encode(tokens, layer_idx=0)  # not what SD2 uses

    g = torch.Generator().manual_seed(11)
    T = len(UNET_T)
    xs = torch.randn((T, 2, 4) + UNET_HW, generator=g)
    G["unet_x"], G["unet_t"], G["unet_context"] = xs, torch.tensor(UNET_T), ctx
    outs = torch.stack([model.unet(xs[i], torch.full((2,), UNET_T[i]), ctx) for i in range(T)])
    G["unet_out"] = outs
    G["unet_guided"] = outs[:, 1:2] + (outs[:, 0:1] - outs[:, 1:2]) * PIPE_CFG

    g = torch.Generator().manual_seed(12)
    vin = torch.randn((1, 4) + VAE_HW, generator=g)
    G["vae_in"], G["vae_z"] = vin, vin / SCALE_FACTOR
    G["vae_out"] = model.vae.decode(vin / SCALE_FACTOR)
    if cfg["vae"]["with_encoder"]:
        img = torch.rand((1, 3, VAE_HW[0] * 8, VAE_HW[1] * 8), generator=g) * 2 - 1
        G["vae_enc_in"] = img
        G["vae_enc_mean"] = model.vae.encode_mean(img)

    pipe, calls = run_pipeline(model, cfg, ctx, acp)
    G.update(pipe)
    return G, calls


def make_tokens_sdxl():
    """SDXL's two token rows for the same prompts: tokens_l as sgm FrozenCLIPEmbedder /
    diffusers `tokenizer` (HF CLIPTokenizer of openai/clip-vit-large-patch14, padded with
    <|endoftext|> 49407), tokens_g as FrozenOpenCLIPEmbedder2's open_clip.tokenize (padded
    with 0; diffusers' tokenizer_2 pads with "!" = id 0). Same ids as make_tokens."""
    return make_tokens("sd1"), make_tokens("sd2")


def goldens_sdxl(model, cfg):
    acp = sr.compvis_alphas_cumprod()   # sgm LegacyDDPMDiscretization: the same scaled-linear betas
    sf = cfg["scale_factor"]
    G = {}
    tl, tg = make_tokens_sdxl()
    G["tokens"], G["tokens_l"], G["tokens_g"] = tl.to(torch.int32), tl.to(torch.int32), tg.to(torch.int32)
    ctx, pooled, ctx_l, ctx_g = model.encode_text_sdxl(tl, tg)
    G["context_l"], G["context_g"], G["context"], G["pooled"] = ctx_l, ctx_g, ctx, pooled

    sz = SDXL_UNET_SIZES
    G["y_sizes"] = torch.tensor(list(sz["original_size"]) + list(sz["crop_coords_top_left"]) + list(sz["target_size"]),
                                dtype=torch.int32)
    y = sd_model.sdxl_y(pooled, **sz)

    g = torch.Generator().manual_seed(11)
    T = len(UNET_T)
    xs = torch.randn((T, 2, 4) + UNET_HW, generator=g)
    G["unet_x"], G["unet_t"], G["unet_context"], G["unet_y"] = xs, torch.tensor(UNET_T), ctx, y
    outs = torch.stack([model.unet(xs[i], torch.full((2,), UNET_T[i]), ctx, y) for i in range(T)])
    G["unet_out"] = outs
    G["unet_guided"] = outs[:, 1:2] + (outs[:, 0:1] - outs[:, 1:2]) * PIPE_CFG

    g = torch.Generator().manual_seed(12)
    vin = torch.randn((1, 4) + VAE_HW, generator=g)
    G["vae_in"], G["vae_z"] = vin, vin / sf
    G["vae_out"] = model.vae.decode(vin / sf)
    img = torch.rand((1, 3, VAE_HW[0] * 8, VAE_HW[1] * 8), generator=g) * 2 - 1
    G["vae_enc_in"] = img
    G["vae_enc_mean"] = model.vae.encode_mean(img)

    py = sd_model.sdxl_y(pooled, **SDXL_PIPE_SIZES)
    G["pipe_y"] = py
    pipe, calls = run_pipeline(model, cfg, ctx, acp, py)
    G.update(pipe)
    # force_zeros_for_empty_prompt: the uncond context and pooled vector are zeros, the
    # uncond y keeps its size embeddings
    ctx_z = torch.cat([ctx[:1], torch.zeros_like(ctx[1:])])
    py_z = torch.cat([py[:1], torch.cat([torch.zeros_like(pooled[1:]), py[1:, pooled.shape[1]:]], dim=1)])
    G["pipe_zneg_y"] = py_z
    zn, zcalls = run_pipeline(model, cfg, ctx_z, acp, py_z, samplers=["euler"], prefix="pipe_zneg")
    G.update(zn)
    calls["zneg_euler"] = zcalls["euler"]
    for n in TURBO_STEPS:
        t, c = run_turbo(model, ctx[:1], py[:1], acp, n)
        G.update(t)
        calls[f"turbo_{n}"] = c
    return G, calls


def config_json_sdxl(cfg):
    u, t, tg = cfg["unet"], cfg["text"], cfg["text_g"]
    heads = [(u["model_channels"] * m // u["num_head_channels"]) if (i in u["attention_levels"] and
             u["transformer_depth"][i]) else 0 for i, m in enumerate(u["channel_mult"])]
    c = {"family": "sdxl", "prediction": cfg["prediction"],
         "unet": dict(u, transformer_depth=list(u["transformer_depth"]), channel_mult=list(u["channel_mult"]),
                      attention_levels=list(u["attention_levels"])),
         "vae": dict(cfg["vae"], ch_mult=list(cfg["vae"]["ch_mult"])),
         "text": dict(t, act="quick_gelu", output="hidden_states[-2] (penultimate layer output), "
                      "no final_layer_norm", prefix="conditioner.embedders.0.transformer."),
         "text_g": dict(tg, act="gelu", output="penultimate resblock output, no ln_final; pooled = "
                        "ln_final(last resblock output)[argmax(tokens_g)] @ text_projection [width, proj]",
                        prefix="conditioner.embedders.1.model."),
         "unet_heads_per_level": heads,
         "unet_heads_middle": u["model_channels"] * u["channel_mult"][-1] // u["num_head_channels"],
         "adm_in_channels": u["adm_in_channels"], "scale_factor": cfg["scale_factor"],
         "context_dim": u["context_dim"], "pooled_dim": tg["proj"], "size_embedding_dim": 256,
         "text_output": "context = cat(CLIP-L hidden_states[-2], bigG penultimate) on the last dim"}
    return json.dumps(c, separators=(",", ":"))


def golden_metadata_sdxl(cfg, calls):
    sf = cfg["scale_factor"]
    ps, us = SDXL_PIPE_SIZES, SDXL_UNET_SIZES
    return {
        "generated_by": "tools/oracle/make_goldens.py (torch %s)" % torch.__version__,
        "checkpoint": "tests/data/tiny-sdxl.safetensors",
        "config": config_json_sdxl(cfg),
        "layout": "PyTorch NCHW for images/latents (C side is channels-last: transpose); F32 unless "
                  "said; batch row 0 = cond (tokens row 0, the prompt), row 1 = uncond (the empty prompt). "
                  "unet_x/unet_out [T, 2, 4, h, w]; unet_t [T] timesteps (fractional allowed); "
                  "unet_guided [T, 1, 4, h, w] = uncond + "
                  f"{PIPE_CFG} * (cond - uncond) on the raw UNet output (eps)",
        "tokens": "I32 [2, 77]: tokens_l = CLIP-L ids (HF CLIPTokenizer openai/clip-vit-large-patch14): BOS 49406, "
                  "12 ids, EOS 49407, padded with 49407; tokens_g = the same ids padded with 0 (open_clip "
                  "tokenize; diffusers tokenizer_2 pads with '!' = 0); tokens = tokens_l. Row 1 is the empty "
                  "prompt (BOS, EOS, padding)",
        "context": "context_l [2, 77, 32] = CLIP-L hidden_states[-2] (the output of layer L-2 of L = 3, i.e. "
                   "the penultimate layer), NO final_layer_norm (sgm FrozenCLIPEmbedder layer 'hidden'); "
                   "context_g [2, 77, 64] = bigG: input of the last resblock (output of the penultimate), NO "
                   "ln_final (FrozenOpenCLIPEmbedder2 layer 'penultimate', legacy False); context [2, 77, 96] = "
                   "cat(context_l, context_g, dim -1); pooled [2, 48] = ln_final(output of ALL resblocks) at "
                   "position argmax(tokens_g row) (the EOS), times text_projection [64, 48] as x @ P",
        "y": "y [N, 1584] = cat(pooled [48], e(orig_h), e(orig_w), e(crop_top), e(crop_left), e(target_h), "
             "e(target_w)) with e(v) = timestep_embedding(v, 256) = [cos(v f_i) | sin(v f_i)], f_i = "
             "exp(-ln(10000) i / 128), i = 0..127 (sgm ConcatTimestepEmbedderND, outdim 256). y_sizes I32 [6] "
             "= (orig_h, orig_w, crop_top, crop_left, target_h, target_w) = "
             f"{tuple(us['original_size']) + tuple(us['crop_coords_top_left']) + tuple(us['target_size'])} "
             "for unet_y [2, 1584] (built from pooled rows 0/1); the UNet adds label_emb(y) = "
             "label_emb.0.2(SiLU(label_emb.0.0(y))) to time_embed(t_emb)",
        "vae": f"vae_in is the sampler-space latent; vae_z = vae_in / {sf} is what the first-stage model "
               "decodes (post_quant_conv, then decoder); vae_out before any clamp, range ~[-1, 1]; "
               "vae_enc_mean = posterior mean of vae_enc_in (quant_conv applied, "
               f"NOT multiplied by {sf})",
        "pipeline": f"seed {PIPE_SEED} torch CPU randn [1, 4, {PIPE_HW[0]}, {PIPE_HW[1]}] (pipe_noise), "
                    f"{PIPE_STEPS} steps, cfg {PIPE_CFG}, discrete schedule (k-diffusion get_sigmas; pipe_sigmas), "
                    "x0 = noise * sigma_0, ancestral noise (euler_a, lcm) from the same generator; ddim: A1111 "
                    "timesteps (eta 0) starting from x = noise; UNet batch 2 (row 0 cond, row 1 uncond) with "
                    "context and pipe_y [2, 1584] = y for original_size = target_size = "
                    f"{ps['original_size']} (the image h, w), crop (0, 0), row 0 cond pooled, row 1 uncond "
                    "(empty prompt) pooled; pipe_<s>_latent is the final latent, pipe_<s>_image = "
                    f"decode(latent / {sf}) before clamp; prediction eps. The latent {PIPE_HW[0]}x{PIPE_HW[1]} "
                    "does not halve twice evenly (6 -> 3 -> 2): the UNet's first upsampling goes to the size "
                    "of the skip connection (2x2 -> 3x4), as diffusers does",
        "zneg": "pipe_zneg_euler_latent / pipe_zneg_euler_image: as pipe_euler but the uncond row's context "
                "(all 96 channels) and pooled vector are zeros (diffusers force_zeros_for_empty_prompt; "
                "A1111 sd_models_xl.py force_zero_negative_prompt); the uncond y keeps its size embeddings: "
                "pipe_zneg_y [2, 1584] = (pipe_y row 0, cat(zeros(48), pipe_y row 1 [48:]))",
        "turbo": "SDXL-Turbo: turbo_sigmas_<n> [n+1] = trailing schedule (diffusers timestep_spacing "
                 "'trailing': t = 999, 749, 499, 249 for n = 4, 999 for n = 1; sigma interpolated in the "
                 "scaled-linear table, then 0), no CFG: one UNet pass per step, batch 1, context row 0 and "
                 f"pipe_y row 0; seed {PIPE_SEED}, x0 = noise * sigma_0 (same noise as pipe_noise), k-diffusion "
                 "euler_ancestral (eta 1), ancestral noise from the same generator, UNet timestep = "
                 f"sigma_to_t(sigma); turbo_<n>_latent [1, 4, {PIPE_HW[0]}, {PIPE_HW[1]}], turbo_<n>_image = "
                 f"decode(latent / {sf}) before clamp; n in {list(TURBO_STEPS)}",
        "model_calls": json.dumps(calls),
    }


def config_json(cfg):
    u, t = cfg["unet"], cfg["text"]
    heads = [(u["num_heads"] if u["num_head_channels"] == -1 else u["model_channels"] * m // u["num_head_channels"])
             for m in u["channel_mult"]]
    c = {"family": cfg["family"], "prediction": cfg["prediction"], "unet": dict(u), "vae": dict(cfg["vae"]),
         "text": dict(t), "unet_heads_per_level": heads, "scale_factor": SCALE_FACTOR,
         "text_output": "last layer + final_layer_norm" if cfg["family"] == "sd1"
         else "penultimate resblock + ln_final"}
    return json.dumps(c, separators=(",", ":"))


def golden_metadata(cfg, calls):
    return {
        "generated_by": "tools/oracle/make_goldens.py (torch %s)" % torch.__version__,
        "checkpoint": f"tests/data/tiny-{cfg['family']}.safetensors",
        "config": config_json(cfg),
        "layout": "PyTorch NCHW for images/latents (C side is channels-last: transpose); "
                  "unet_x/unet_out [T, 2, 4, h, w]: row 0 cond (tokens row 0), row 1 uncond; "
                  "unet_t [T] timesteps (fractional allowed); unet_guided [T, 1, 4, h, w] = uncond + "
                  f"{PIPE_CFG} * (cond - uncond) on the raw UNet output",
        "tokens": "I32 [2, 77]; row 0 prompt, row 1 empty prompt; SD1 pads with 49407, SD2 with 0",
        "context": "[2, 77, W]: SD1 last layer then final_layer_norm (context_skip2: layer L-2 output, "
                   "i.e. hidden_states[-2], then final_layer_norm); SD2 penultimate resblock then "
                   "ln_final (context_last: all resblocks then ln_final, for reference only)",
        "vae": f"vae_in is the sampler-space latent; vae_z = vae_in / {SCALE_FACTOR} is what the "
               "first-stage model decodes (post_quant_conv, then decoder); vae_out before any clamp, "
               "range ~[-1, 1]; vae_enc_mean = posterior mean of vae_enc_in (quant_conv applied, "
               f"NOT multiplied by {SCALE_FACTOR})",
        "pipeline": f"seed {PIPE_SEED} torch CPU randn [1, 4, {PIPE_HW[0]}, {PIPE_HW[1]}], {PIPE_STEPS} steps, "
                    f"cfg {PIPE_CFG}, discrete schedule (k-diffusion get_sigmas; pipe_sigmas), x0 = noise * "
                    "sigma_0, ancestral noise from the same generator; ddim: A1111 timesteps "
                    "(eta 0) starting from x = noise; pipe_<s>_latent is the final latent, pipe_<s>_image "
                    f"= decode(latent / {SCALE_FACTOR}) before clamp; prediction " + cfg["prediction"],
        "model_calls": json.dumps(calls),
    }


def check_names(cfg, sd, vocab=VOCAB, inpaint=False):
    """Compare our state_dict key set and shapes with tools/make_checkpoint.py's own key
    list (written independently from the same sources) for the same dimensions.
    vocab: token table rows; inpaint: a 9-channel UNet input (make_checkpoint --inpaint)."""
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    try:
        import make_checkpoint as mc
    except Exception as e:   # the other tool is optional for regeneration
        print(f"  (skipping name check: {e})")
        return
    u, v, t = cfg["unet"], cfg["vae"], cfg["text"]
    if cfg["family"] == "sdxl":
        tg = cfg["text_g"]
        mcfg = dict(
            unet=dict(in_ch=4, out_ch=4, mc=u["model_channels"], mult=list(u["channel_mult"]),
                      nrb=u["num_res_blocks"],
                      depth=[d if i in u["attention_levels"] else 0 for i, d in enumerate(u["transformer_depth"])],
                      mid_depth=u["transformer_depth_middle"], ctx=u["context_dim"],
                      linear=u["use_linear_in_transformer"], adm=u["adm_in_channels"]),
            vae=dict(ch=v["ch"], mult=list(v["ch_mult"]), nrb=v["num_res_blocks"], z=v["z_channels"]),
            te=[dict(kind="hf", prefix="conditioner.embedders.0.transformer.", width=t["width"], layers=t["layers"],
                     mlp=t["mlp"], vocab=vocab, pos=POSITIONS, proj=0),
                dict(kind="openclip", prefix="conditioner.embedders.1.model.", width=tg["width"],
                     layers=tg["layers"], mlp=tg["mlp"], vocab=vocab, pos=POSITIONS, proj=tg["proj"])],
            extras=[])
    else:
        mcfg = None
    mcfg = mcfg or dict(
        unet=dict(in_ch=4, out_ch=4, mc=u["model_channels"], mult=list(u["channel_mult"]), nrb=u["num_res_blocks"],
                  depth=[u["transformer_depth"] if i in u["attention_levels"] else 0 for i in range(len(u["channel_mult"]))],
                  mid_depth=u["transformer_depth"], ctx=u["context_dim"], linear=u["use_linear_in_transformer"], adm=0),
        vae=dict(ch=v["ch"], mult=list(v["ch_mult"]), nrb=v["num_res_blocks"], z=v["z_channels"]),
        te=[dict(kind="hf" if cfg["family"] == "sd1" else "openclip",
                 prefix="cond_stage_model.transformer." if cfg["family"] == "sd1" else "cond_stage_model.model.",
                 width=t["width"], layers=t["layers"], mlp=t["mlp"], vocab=vocab, pos=POSITIONS, proj=t.get("proj", 0))],
        extras=["position_ids", "alphas_cumprod"] if cfg["family"] == "sd1" else ["alphas_cumprod"])
    spec = {n: tuple(s) for n, s, _ in mc.compvis_spec(mcfg, vocab, inpaint)}
    if not v["with_encoder"]:
        spec = {n: s for n, s in spec.items()
                if not n.startswith(("first_stage_model.encoder.", "first_stage_model.quant_conv."))}
    ours = {n: tuple(x.shape) for n, x in sd.items()}
    missing, extra = sorted(set(spec) - set(ours)), sorted(set(ours) - set(spec))
    bad = [n for n in set(spec) & set(ours) if spec[n] != ours[n]]
    assert not missing and not extra and not bad, (missing[:5], extra[:5], bad[:5])
    print(f"  names: {len(ours)} keys and shapes agree with tools/make_checkpoint.py")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--out", default=DATA)
    ap.add_argument("--dtype", choices=["f16", "f32"], default="f16",
                    help="checkpoint storage (goldens are always F32, computed in fp32 from the stored values)")
    ap.add_argument("--only", action="append", choices=sorted(CONFIGS),
                    help="regenerate only this family (repeatable; default: all)")
    a = ap.parse_args()
    f16 = a.dtype == "f16"
    torch.set_num_threads(2)
    os.makedirs(a.out, exist_ok=True)
    for fam, cfg in CONFIGS.items():
        if a.only and fam not in a.only:
            continue
        xl = fam == "sdxl"
        tokens = torch.cat(make_tokens_sdxl()) if xl else make_tokens(fam)
        used = set(tokens.reshape(-1).tolist())
        model = build(cfg, seed=SEEDS[fam], used_ids=used, f16=f16)
        ck = os.path.join(a.out, f"tiny-{fam}.safetensors")
        sd = checkpoint_tensors(model, f16)
        write_safetensors(ck, sd, {"format": "pt", "vkdiff.oracle": "tools/oracle/make_goldens.py",
                                   "vkdiff.config": config_json_sdxl(cfg) if xl else config_json(cfg)})
        with torch.no_grad():
            G, calls = goldens_sdxl(model, cfg) if xl else goldens(model, cfg)
        gp = os.path.join(a.out, f"golden-tiny-{fam}.safetensors")
        write_safetensors(gp, {k: v.contiguous() for k, v in G.items()},
                          golden_metadata_sdxl(cfg, calls) if xl else golden_metadata(cfg, calls))
        print(f"{fam}: {ck} {os.path.getsize(ck)} B, {gp} {os.path.getsize(gp)} B")
        for k in ("context", "unet_out", "vae_out", "pipe_euler_image"):
            print(f"  {k}: shape {tuple(G[k].shape)} std {G[k].std():.3f} absmax {G[k].abs().max():.3f}")
        if a.check:
            check_names(cfg, sd)
            sd2, _ = read_safetensors(ck)
            m2 = sd_model.StableDiffusion(cfg).eval()
            m2.load_state_dict({k: (v.float() if v.dtype == torch.float16 else v)
                                for k, v in sd2.items() if k != "alphas_cumprod"}, strict=True)
            with torch.no_grad():
                G2, _ = goldens_sdxl(m2, cfg) if xl else goldens(m2, cfg)
            Gr, _ = read_safetensors(gp)
            for k in G:
                assert torch.equal(G2[k].to(Gr[k].dtype), Gr[k]), k
            print("  reload: checkpoint round-trips and the goldens recompute bit-exactly")


if __name__ == "__main__":
    main()
