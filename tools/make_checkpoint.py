#!/usr/bin/env python3
"""Write a deterministic random-weight Stable Diffusion checkpoint.

    make_checkpoint.py CONFIG OUT [--layout compvis|diffusers] [--dtype fp16|fp32|bf16]
                       [--seed N] [--vocab N] [--inpaint] [--vae-mult 1,2,...]
    make_checkpoint.py CONFIG OUT --layout diffusers --from FILE [--dtype ...]

--from FILE: no random values; read an existing CompVis/sgm single-file .safetensors
(F16, F32 or BF16; e.g. tests/data/tiny-sdxl.safetensors from tools/oracle) and write its
tensors in the diffusers folder layout with the same renames and transforms as the
generated files. CONFIG picks the family (sd15/sd21/sdxl or their tiny-* forms); every
dimension the mapping needs (ResBlocks per level, VAE levels, text encoder widths and
layer counts, which text encoders exist) is read from FILE's names and shapes, so the
config's other numbers do not matter. Output dtype: FILE's own unless --dtype is given.

CONFIG: sd15, sd21, sdxl (full size, for benchmarks: never commit them) or tiny-sd1,
tiny-sd2, tiny-sdxl (small configs with the same key names, for tests).

--vae-mult replaces the config's VAE channel multipliers; their count is the VAE's
level count (4 in every SD VAE: the image is 8x the latent; tests make other counts
to check that vkdiff refuses them).

--layout compvis (default) writes one .safetensors file in the CompVis/A1111 layout
(model.diffusion_model.*, first_stage_model.*, cond_stage_model.* or
conditioner.embedders.*). --layout diffusers writes a folder (unet/, vae/,
text_encoder/[, text_encoder_2/]) holding the SAME numbers under diffusers names, as
diffusers' own conversion would: OpenCLIP in_proj split into q/k/v, text_projection
transposed, VAE attention 1x1 convs as linears, and (as diffusers ships SD2) the text
encoder without its last layer.

Every tensor's values depend only on (seed, CompVis name), so both layouts and any
dtype hold the same weights. Norm weights are 1 and biases 0; other weights are
N(0, 1/fan_in) so activations stay O(1); biases N(0, 0.02^2); embeddings N(0, 0.02^2).

Only numpy is needed. The safetensors format is written by hand (json + struct):
u64 little-endian header length, JSON header padded with spaces to 8 bytes, data.
"""
import argparse
import hashlib
import json
import math
import os
import struct
import sys

import numpy as np

# ---------------------------------------------------------------- configs ----
# Numbers from the reference configs: CompVis v1-inference.yaml, Stability-AI
# v2-inference-v.yaml, sgm sd_xl_base.yaml.
CONFIGS = {
    "sd15": dict(
        unet=dict(in_ch=4, out_ch=4, mc=320, mult=[1, 2, 4, 4], nrb=2, depth=[1, 1, 1, 0], mid_depth=1,
                  ctx=768, linear=False, adm=0),
        vae=dict(ch=128, mult=[1, 2, 4, 4], nrb=2, z=4),
        te=[dict(kind="hf", prefix="cond_stage_model.transformer.", width=768, layers=12, mlp=3072,
                 vocab=49408, pos=77, proj=0)],
        extras=["position_ids", "alphas_cumprod"]),
    "sd21": dict(
        unet=dict(in_ch=4, out_ch=4, mc=320, mult=[1, 2, 4, 4], nrb=2, depth=[1, 1, 1, 0], mid_depth=1,
                  ctx=1024, linear=True, adm=0),
        vae=dict(ch=128, mult=[1, 2, 4, 4], nrb=2, z=4),
        te=[dict(kind="openclip", prefix="cond_stage_model.model.", width=1024, layers=24, mlp=4096,
                 vocab=49408, pos=77, proj=1024)],
        extras=["alphas_cumprod"]),
    "sdxl": dict(
        unet=dict(in_ch=4, out_ch=4, mc=320, mult=[1, 2, 4], nrb=2, depth=[0, 2, 10], mid_depth=10,
                  ctx=2048, linear=True, adm=2816),
        vae=dict(ch=128, mult=[1, 2, 4, 4], nrb=2, z=4),
        te=[dict(kind="hf", prefix="conditioner.embedders.0.transformer.", width=768, layers=12, mlp=3072,
                 vocab=49408, pos=77, proj=0),
            dict(kind="openclip", prefix="conditioner.embedders.1.model.", width=1280, layers=32, mlp=5120,
                 vocab=49408, pos=77, proj=1280)],
        extras=[]),
    # Small configs: GroupNorm needs channels divisible by 32; SD2/SDXL attention uses
    # head dim 64 and text encoders use head dim 64, so those widths are multiples of 64.
    # Their VAEs keep SD's 4 levels (8x upsampling, which vkdiff's pipeline needs) at
    # width 32, as tools/oracle's tiny files do.
    "tiny-sd1": dict(
        unet=dict(in_ch=4, out_ch=4, mc=32, mult=[1, 2], nrb=1, depth=[1, 1], mid_depth=1,
                  ctx=64, linear=False, adm=0),
        vae=dict(ch=32, mult=[1, 1, 1, 1], nrb=1, z=4),
        te=[dict(kind="hf", prefix="cond_stage_model.transformer.", width=64, layers=2, mlp=256,
                 vocab=49408, pos=77, proj=0)],
        extras=["position_ids", "alphas_cumprod"]),
    "tiny-sd2": dict(
        unet=dict(in_ch=4, out_ch=4, mc=64, mult=[1, 2], nrb=1, depth=[1, 1], mid_depth=1,
                  ctx=64, linear=True, adm=0),
        vae=dict(ch=32, mult=[1, 1, 1, 1], nrb=1, z=4),
        te=[dict(kind="openclip", prefix="cond_stage_model.model.", width=64, layers=2, mlp=256,
                 vocab=49408, pos=77, proj=64)],
        extras=["alphas_cumprod"]),
    "tiny-sdxl": dict(
        unet=dict(in_ch=4, out_ch=4, mc=64, mult=[1, 2], nrb=1, depth=[0, 1], mid_depth=1,
                  ctx=128, linear=True, adm=64 + 6 * 256),
        vae=dict(ch=32, mult=[1, 1, 1, 1], nrb=1, z=4),
        te=[dict(kind="hf", prefix="conditioner.embedders.0.transformer.", width=64, layers=2, mlp=256,
                 vocab=49408, pos=77, proj=0),
            dict(kind="openclip", prefix="conditioner.embedders.1.model.", width=64, layers=2, mlp=256,
                 vocab=49408, pos=77, proj=64)],
        extras=[]),
}

# ------------------------------------------------------- CompVis key list ----
# Each entry: (name, shape, init) with init one of
#   ("w", fan_in) | ("b",) | ("one",) | ("zero",) | ("emb", std) | ("const", v) | ("i64", kind) | ("acp",)


class Spec(list):
    def lin(self, n, out, inp, bias=True):
        self.append((n + ".weight", (out, inp), ("w", inp)))
        if bias:
            self.append((n + ".bias", (out,), ("b",)))

    def conv(self, n, out, inp, k):
        self.append((n + ".weight", (out, inp, k, k), ("w", inp * k * k)))
        self.append((n + ".bias", (out,), ("b",)))

    def norm(self, n, c):
        self.append((n + ".weight", (c,), ("one",)))
        self.append((n + ".bias", (c,), ("zero",)))


def unet_res(S, p, cin, cout, ted):
    S.norm(p + ".in_layers.0", cin)
    S.conv(p + ".in_layers.2", cout, cin, 3)
    S.lin(p + ".emb_layers.1", cout, ted)
    S.norm(p + ".out_layers.0", cout)
    S.conv(p + ".out_layers.3", cout, cout, 3)
    if cin != cout:
        S.conv(p + ".skip_connection", cout, cin, 1)


def unet_xf(S, p, ch, depth, u):
    # CompVis attention.py SpatialTransformer: inner dim = heads * head_dim = ch
    S.norm(p + ".norm", ch)
    (S.lin if u["linear"] else lambda n, o, i: S.conv(n, o, i, 1))(p + ".proj_in", ch, ch)
    for d in range(depth):
        b = f"{p}.transformer_blocks.{d}"
        for a, kv in (("attn1", ch), ("attn2", u["ctx"])):
            S.lin(f"{b}.{a}.to_q", ch, ch, bias=False)
            S.lin(f"{b}.{a}.to_k", ch, kv, bias=False)
            S.lin(f"{b}.{a}.to_v", ch, kv, bias=False)
            S.lin(f"{b}.{a}.to_out.0", ch, ch)
        S.lin(f"{b}.ff.net.0.proj", ch * 8, ch)  # GEGLU: 2 * (4 * ch)
        S.lin(f"{b}.ff.net.2", ch, ch * 4)
        for k in (1, 2, 3):
            S.norm(f"{b}.norm{k}", ch)
    (S.lin if u["linear"] else lambda n, o, i: S.conv(n, o, i, 1))(p + ".proj_out", ch, ch)


def unet_spec(S, u, inpaint):
    p = "model.diffusion_model."
    mc, mult, nrb = u["mc"], u["mult"], u["nrb"]
    ted = 4 * mc
    S.lin(p + "time_embed.0", ted, mc)
    S.lin(p + "time_embed.2", ted, ted)
    if u["adm"]:
        S.lin(p + "label_emb.0.0", ted, u["adm"])
        S.lin(p + "label_emb.0.2", ted, ted)
    S.conv(p + "input_blocks.0.0", mc, 9 if inpaint else u["in_ch"], 3)
    chans, ch, n = [mc], mc, 1
    for lvl, m in enumerate(mult):
        for _ in range(nrb):
            unet_res(S, f"{p}input_blocks.{n}.0", ch, m * mc, ted)
            ch = m * mc
            if u["depth"][lvl]:
                unet_xf(S, f"{p}input_blocks.{n}.1", ch, u["depth"][lvl], u)
            chans.append(ch)
            n += 1
        if lvl != len(mult) - 1:
            S.conv(f"{p}input_blocks.{n}.0.op", ch, ch, 3)
            chans.append(ch)
            n += 1
    unet_res(S, p + "middle_block.0", ch, ch, ted)
    unet_xf(S, p + "middle_block.1", ch, u["mid_depth"], u)
    unet_res(S, p + "middle_block.2", ch, ch, ted)
    n = 0
    for lvl in reversed(range(len(mult))):
        for j in range(nrb + 1):
            unet_res(S, f"{p}output_blocks.{n}.0", ch + chans.pop(), mult[lvl] * mc, ted)
            ch = mult[lvl] * mc
            k = 1
            if u["depth"][lvl]:
                unet_xf(S, f"{p}output_blocks.{n}.1", ch, u["depth"][lvl], u)
                k = 2
            if lvl and j == nrb:
                S.conv(f"{p}output_blocks.{n}.{k}.conv", ch, ch, 3)
            n += 1
    S.norm(p + "out.0", ch)
    S.conv(p + "out.2", u["out_ch"], mc, 3)


def vae_res(S, p, cin, cout):
    S.norm(p + ".norm1", cin)
    S.conv(p + ".conv1", cout, cin, 3)
    S.norm(p + ".norm2", cout)
    S.conv(p + ".conv2", cout, cout, 3)
    if cin != cout:
        S.conv(p + ".nin_shortcut", cout, cin, 1)


def vae_mid(S, p, c):
    vae_res(S, p + ".block_1", c, c)
    S.norm(p + ".attn_1.norm", c)
    for k in ("q", "k", "v", "proj_out"):
        S.conv(f"{p}.attn_1.{k}", c, c, 1)
    vae_res(S, p + ".block_2", c, c)


def vae_spec(S, v, p="first_stage_model."):
    ch, mult, nrb, z = v["ch"], v["mult"], v["nrb"], v["z"]
    S.conv(p + "encoder.conv_in", ch, 3, 3)
    bi = ch
    for i, m in enumerate(mult):
        for j in range(nrb):
            vae_res(S, f"{p}encoder.down.{i}.block.{j}", bi, ch * m)
            bi = ch * m
        if i != len(mult) - 1:
            S.conv(f"{p}encoder.down.{i}.downsample.conv", bi, bi, 3)
    vae_mid(S, p + "encoder.mid", bi)
    S.norm(p + "encoder.norm_out", bi)
    S.conv(p + "encoder.conv_out", 2 * z, bi, 3)
    bi = ch * mult[-1]
    S.conv(p + "decoder.conv_in", bi, z, 3)
    vae_mid(S, p + "decoder.mid", bi)
    for i in reversed(range(len(mult))):
        for j in range(nrb + 1):
            vae_res(S, f"{p}decoder.up.{i}.block.{j}", bi, ch * mult[i])
            bi = ch * mult[i]
        if i != 0:
            S.conv(f"{p}decoder.up.{i}.upsample.conv", bi, bi, 3)
    S.norm(p + "decoder.norm_out", bi)
    S.conv(p + "decoder.conv_out", 3, bi, 3)
    S.conv(p + "quant_conv", 2 * z, 2 * z, 1)
    S.conv(p + "post_quant_conv", z, z, 1)


def te_spec(S, t, vocab):
    p, w, L, mlp = t["prefix"], t["width"], t["layers"], t["mlp"]
    if t["kind"] == "hf":  # transformers CLIPTextModel
        S.append((p + "text_model.embeddings.token_embedding.weight", (vocab, w), ("emb", 0.02)))
        S.append((p + "text_model.embeddings.position_embedding.weight", (t["pos"], w), ("emb", 0.01)))
        for l in range(L):
            b = f"{p}text_model.encoder.layers.{l}."
            for k in ("k_proj", "v_proj", "q_proj", "out_proj"):
                S.lin(b + "self_attn." + k, w, w)
            S.norm(b + "layer_norm1", w)
            S.lin(b + "mlp.fc1", mlp, w)
            S.lin(b + "mlp.fc2", w, mlp)
            S.norm(b + "layer_norm2", w)
        S.norm(p + "text_model.final_layer_norm", w)
    else:  # open_clip TextTransformer as SD2 / SDXL ship it
        S.append((p + "positional_embedding", (t["pos"], w), ("emb", 0.01)))
        S.append((p + "text_projection", (w, t["proj"]), ("w", w)))
        S.append((p + "token_embedding.weight", (vocab, w), ("emb", 0.02)))
        S.append((p + "logit_scale", (), ("const", math.log(1 / 0.07))))
        for l in range(L):
            b = f"{p}transformer.resblocks.{l}."
            S.norm(b + "ln_1", w)
            S.append((b + "attn.in_proj_weight", (3 * w, w), ("w", w)))
            S.append((b + "attn.in_proj_bias", (3 * w,), ("b",)))
            S.lin(b + "attn.out_proj", w, w)
            S.norm(b + "ln_2", w)
            S.lin(b + "mlp.c_fc", mlp, w)
            S.lin(b + "mlp.c_proj", w, mlp)
        S.norm(p + "ln_final", w)


def compvis_spec(cfg, vocab, inpaint):
    S = Spec()
    unet_spec(S, cfg["unet"], inpaint)
    vae_spec(S, cfg["vae"])
    for t in cfg["te"]:
        te_spec(S, t, vocab)
    if "position_ids" in cfg["extras"]:  # real SD1 files carry this buffer, as I64
        S.append((cfg["te"][0]["prefix"] + "text_model.embeddings.position_ids", (1, cfg["te"][0]["pos"]), ("i64",)))
    if "alphas_cumprod" in cfg["extras"]:
        S.append(("alphas_cumprod", (1000,), ("acp",)))
    return S

# ------------------------------------------------------------- values ----


def values(name, shape, init, seed):
    """float32 (or int64) array; depends only on (seed, name, init)."""
    kind = init[0]
    n = int(np.prod(shape)) if shape else 1
    if kind == "one":
        return np.ones(shape, np.float32)
    if kind == "zero":
        return np.zeros(shape, np.float32)
    if kind == "const":
        return np.full(shape, init[1], np.float32)
    if kind == "i64":
        return np.arange(n, dtype=np.int64).reshape(shape)
    if kind == "acp":  # CompVis ddpm.py register_schedule, linear schedule
        betas = np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=np.float64) ** 2
        return np.cumprod(1.0 - betas).astype(np.float32)
    h = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")
    rng = np.random.default_rng([seed, h])
    std = {"w": lambda: 1.0 / math.sqrt(init[1]), "b": lambda: 0.02, "emb": lambda: init[1]}[kind]()
    return (rng.standard_normal(n, dtype=np.float32) * np.float32(std)).reshape(shape)


def to_dtype(a, dtype):
    if a.dtype == np.int64:
        return a, "I64"
    if dtype == "fp32":
        return a.astype(np.float32), "F32"
    if dtype == "fp16":
        return a.astype(np.float16), "F16"
    # bf16: round to nearest even on the upper 16 bits
    u = a.astype(np.float32).view(np.uint32)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    return r, "BF16"

# --------------------------------------------------------- safetensors ----


def write_safetensors(path, entries, metadata):
    """entries: list of (name, shape, dtype_str, nbytes, producer) written in order;
    producer() returns a contiguous numpy array of exactly nbytes bytes."""
    header, off = {}, 0
    for name, shape, dt, nbytes, _ in entries:
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + nbytes]}
        off += nbytes
    if metadata:
        header["__metadata__"] = metadata
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for name, shape, dt, nbytes, prod in entries:
            a = np.ascontiguousarray(prod())
            assert a.nbytes == nbytes, (name, a.nbytes, nbytes)
            f.write(a.tobytes())


# ---------------------------------------------------- diffusers mapping ----
# The inverse of what host/io/layout.c reads: CompVis name -> [(diffusers file,
# diffusers name, transform)], written from diffusers'
# scripts/convert_diffusers_to_original_stable_diffusion.py (and _sdxl.py) tables.


def unet_to_diffusers(name, u):
    R = u["nrb"] + 1
    resnet = [("in_layers.0", "norm1"), ("in_layers.2", "conv1"), ("emb_layers.1", "time_emb_proj"),
              ("out_layers.0", "norm2"), ("out_layers.3", "conv2"), ("skip_connection", "conv_shortcut")]
    fixed = {"time_embed.0": "time_embedding.linear_1", "time_embed.2": "time_embedding.linear_2",
             "label_emb.0.0": "add_embedding.linear_1", "label_emb.0.2": "add_embedding.linear_2",
             "input_blocks.0.0": "conv_in", "out.0": "conv_norm_out", "out.2": "conv_out"}
    stem, _, leaf = name.rpartition(".")
    if stem in fixed:
        return fixed[stem] + "." + leaf
    parts = name.split(".")

    def res_inner(rest):
        r = ".".join(rest)
        for a, b in resnet:
            if r.startswith(a + "."):
                return b + r[len(a):]
        raise KeyError(name)
    if parts[0] == "input_blocks":
        n, sub, rest = int(parts[1]), parts[2], parts[3:]
        i, j = (n - 1) // R, (n - 1) % R
        if j == R - 1:  # the downsampler closing level i
            assert rest[0] == "op"
            return f"down_blocks.{i}.downsamplers.0.conv." + ".".join(rest[1:])
        if sub == "0":
            return f"down_blocks.{i}.resnets.{j}." + res_inner(rest)
        return f"down_blocks.{i}.attentions.{j}." + ".".join(rest)
    if parts[0] == "middle_block":
        sub, rest = int(parts[1]), parts[2:]
        if sub == 1:
            return "mid_block.attentions.0." + ".".join(rest)
        return f"mid_block.resnets.{sub // 2}." + res_inner(rest)
    if parts[0] == "output_blocks":
        n, sub, rest = int(parts[1]), int(parts[2]), parts[3:]
        i, j = n // R, n % R
        if rest[0] == "conv":
            return f"up_blocks.{i}.upsamplers.0." + ".".join(rest)
        if sub == 0:
            return f"up_blocks.{i}.resnets.{j}." + res_inner(rest)
        return f"up_blocks.{i}.attentions.{j}." + ".".join(rest)
    raise KeyError(name)


def vae_to_diffusers(name, v):
    """-> (name, reshape_to_2d)"""
    L = len(v["mult"])
    p = name.split(".")
    if p[0] in ("quant_conv", "post_quant_conv") or p[1] in ("conv_in", "conv_out"):
        return name, False
    if p[1] == "norm_out":
        return f"{p[0]}.conv_norm_out.{p[2]}", False
    if p[1] == "mid":
        if p[2].startswith("block_"):
            r = ".".join(p[3:]).replace("nin_shortcut", "conv_shortcut")
            return f"{p[0]}.mid_block.resnets.{int(p[2][6:]) - 1}.{r}", False
        k = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}[p[3]]
        return f"{p[0]}.mid_block.attentions.0.{k}.{p[4]}", p[3] != "norm" and p[4] == "weight"
    i = int(p[2])
    if p[0] == "encoder":
        if p[3] == "downsample":
            return f"encoder.down_blocks.{i}.downsamplers.0.{'.'.join(p[4:])}", False
        r = ".".join(p[5:]).replace("nin_shortcut", "conv_shortcut")
        return f"encoder.down_blocks.{i}.resnets.{p[4]}.{r}", False
    if p[3] == "upsample":
        return f"decoder.up_blocks.{L - 1 - i}.upsamplers.0.{'.'.join(p[4:])}", False
    r = ".".join(p[5:]).replace("nin_shortcut", "conv_shortcut")
    return f"decoder.up_blocks.{L - 1 - i}.resnets.{p[4]}.{r}", False


def openclip_to_hf(rest, w):
    """-> list of (hf name, transform) for one open_clip key (prefix stripped)."""
    if rest == "token_embedding.weight":
        return [("text_model.embeddings.token_embedding.weight", None)]
    if rest == "positional_embedding":
        return [("text_model.embeddings.position_embedding.weight", None)]
    if rest == "text_projection":
        return [("text_projection.weight", lambda a: a.T)]
    if rest == "logit_scale":
        return []
    if rest.startswith("ln_final."):
        return [("text_model.final_layer_norm." + rest[9:], None)]
    p = rest.split(".")  # transformer.resblocks.L.x...
    b = f"text_model.encoder.layers.{p[2]}."
    tail = ".".join(p[3:])
    if tail in ("attn.in_proj_weight", "attn.in_proj_bias"):
        leaf = "weight" if tail.endswith("weight") else "bias"
        return [(f"{b}self_attn.{q}_proj.{leaf}", (lambda k: lambda a: a[k * w:(k + 1) * w])(k))
                for k, q in enumerate(("q", "k", "v"))]
    m = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "attn.out_proj": "self_attn.out_proj",
         "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}
    stem, _, leaf = tail.rpartition(".")
    return [(b + m[stem] + "." + leaf, None)]


def diffusers_targets(name, cfg):
    """CompVis name -> list of (subfolder file, diffusers name, transform or None)."""
    u, v = cfg["unet"], cfg["vae"]
    unet_f, vae_f = "unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors"
    if name.startswith("model.diffusion_model."):
        return [(unet_f, unet_to_diffusers(name[len("model.diffusion_model."):], u), None)]
    if name.startswith("first_stage_model."):
        dn, to2d = vae_to_diffusers(name[len("first_stage_model."):], v)
        return [(vae_f, dn, (lambda a: a.reshape(a.shape[0], a.shape[1])) if to2d else None)]
    sdxl = len(cfg["te"]) == 2
    for k, t in enumerate(cfg["te"]):
        if not name.startswith(t["prefix"]):
            continue
        f = f"text_encoder{'_2' if k == 1 else ''}/model.safetensors"
        rest = name[len(t["prefix"]):]
        if rest.endswith("position_ids"):
            return []
        if t["kind"] == "hf":
            return [(f, rest, None)]
        out = openclip_to_hf(rest, t["width"])
        if not sdxl:
            # diffusers' SD2 text encoder keeps 23 of OpenCLIP's 24 layers (SD2 reads the
            # penultimate one) and has no projection
            last = f"text_model.encoder.layers.{t['layers'] - 1}."
            out = [o for o in out if not o[0].startswith(last) and not o[0].startswith("text_projection")]
        return [(f, dn, x) for dn, x in out]
    return []  # extras (alphas_cumprod) have no diffusers counterpart

# ------------------------------------------------------------ --from FILE ----


def read_header(path):
    """-> (header dict without __metadata__, data offset, metadata)"""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
    meta = h.pop("__metadata__", {})
    return h, 8 + n, meta


def cfg_from_file(cfg, header):
    """The config's numbers that diffusers_targets reads, taken from the file instead:
    unet nrb (output blocks per level - 1: the first upsampler sits in output block
    nrb), the VAE's level count (decoder.up.N), and the text encoders (prefixes present in
    the file; OpenCLIP width from in_proj_weight, layer count from resblocks.N)."""
    names = list(header)
    u, v = dict(cfg["unet"]), dict(cfg["vae"])
    p = "model.diffusion_model.output_blocks."
    ups = sorted({int(n[len(p):].split(".")[0]) for n in names
                  if n.startswith(p) and n.endswith(".conv.weight") and len(n[len(p):].split(".")) == 4})
    if ups:
        u["nrb"] = ups[0]
    p = "first_stage_model.decoder.up."
    levels = {int(n[len(p):].split(".")[0]) for n in names if n.startswith(p)}
    if levels:
        mult = list(v["mult"])
        v["mult"] = mult if len(mult) == len(levels) else [1] * len(levels)
    te = []
    for t in cfg["te"]:
        if not any(n.startswith(t["prefix"]) for n in names):
            continue
        t = dict(t)
        if t["kind"] == "openclip":
            w = header[t["prefix"] + "transformer.resblocks.0.attn.in_proj_weight"]["shape"][1]
            rb = t["prefix"] + "transformer.resblocks."
            t["width"] = w
            t["layers"] = 1 + max(int(n[len(rb):].split(".")[0]) for n in names if n.startswith(rb))
        else:
            t["width"] = header[t["prefix"] + "text_model.embeddings.token_embedding.weight"]["shape"][1]
            lp = t["prefix"] + "text_model.encoder.layers."
            t["layers"] = 1 + max(int(n[len(lp):].split(".")[0]) for n in names if n.startswith(lp))
        te.append(t)
    if len(te) != len(cfg["te"]):
        sys.exit(f"--from: the file does not hold the text encoder(s) of this config ({[t['prefix'] for t in cfg['te']]})")
    return dict(cfg, unet=u, vae=v, te=te)


def convert_from(src, out, cfg, dtype):
    """Write src (a CompVis/sgm single file) as a diffusers folder; returns (tensors read, bytes written)."""
    header, base, src_meta = read_header(src)
    cfg = cfg_from_file(cfg, header)
    raw = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "I64": np.int64}
    data = np.memmap(src, dtype=np.uint8, mode="r")

    def load(name):
        h = header[name]
        a, b = h["data_offsets"]
        return np.frombuffer(data[base + a:base + b], dtype=np.dtype(raw[h["dtype"]]).newbyteorder("<")).reshape(h["shape"])

    def convert(arr, src_dt):
        if dtype is None or src_dt == "I64":
            return arr, src_dt
        if src_dt == "BF16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        return to_dtype(arr.astype(np.float32), dtype)

    files = {}
    for name, h in header.items():
        for f, dn, x in diffusers_targets(name, cfg):
            def prod(name=name, x=x, dt=h["dtype"]):
                arr = load(name)
                if x:
                    arr = x(arr)
                return convert(np.ascontiguousarray(arr), dt)[0]
            oshape = x(np.empty(h["shape"], np.uint8)).shape if x else tuple(h["shape"])
            odt = h["dtype"] if dtype is None or h["dtype"] == "I64" else {"fp32": "F32", "fp16": "F16", "bf16": "BF16"}[dtype]
            esize = {"I64": 8, "F32": 4, "F16": 2, "BF16": 2}[odt]
            files.setdefault(f, []).append((dn, oshape, odt, int(np.prod(oshape)) * esize, prod))
    meta = {"format": "pt", "vkdiff.maker": f"from {os.path.basename(src)}" + (f" dtype={dtype}" if dtype else "")}
    if "vkdiff.config" in src_meta:  # the head split of our own tiny models (not in the weights)
        meta["vkdiff.config"] = src_meta["vkdiff.config"]
    total = 0
    for f, entries in files.items():
        write_safetensors(os.path.join(out, f), entries, meta)
        total += sum(e[3] for e in entries)
    for d in ["tokenizer"] + (["tokenizer_2"] if len(cfg["te"]) == 2 else []):
        os.makedirs(os.path.join(out, d), exist_ok=True)
    return len(header), total

# ---------------------------------------------------------------- main ----


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", choices=sorted(CONFIGS))
    ap.add_argument("out")
    ap.add_argument("--layout", choices=["compvis", "diffusers"], default="compvis")
    ap.add_argument("--dtype", choices=["fp16", "fp32", "bf16"], default=None,
                    help="default fp16; with --from, the source file's dtype")
    ap.add_argument("--from", dest="src", metavar="FILE",
                    help="convert this CompVis/sgm single file instead of generating values (needs --layout diffusers)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--vocab", type=int, default=49408, help="token vocabulary rows (tiny test files use fewer)")
    ap.add_argument("--inpaint", action="store_true", help="9 input channels")
    ap.add_argument("--vae-mult", help="VAE channel multipliers, comma-separated (default: the config's)")
    a = ap.parse_args()
    cfg = CONFIGS[a.config]
    if a.src:
        if a.layout != "diffusers":
            ap.error("--from writes the diffusers layout: add --layout diffusers")
        n, total = convert_from(a.src, a.out, cfg, a.dtype)
        print(f"wrote {a.out}: {n} CompVis tensors from {a.src}, {total / 2**20:.1f} MiB of data", file=sys.stderr)
        return
    a.dtype = a.dtype or "fp16"
    if a.vae_mult:
        cfg = dict(cfg, vae=dict(cfg["vae"], mult=[int(m) for m in a.vae_mult.split(",")]))
    spec = compvis_spec(cfg, a.vocab, a.inpaint)
    meta = {"format": "pt", "vkdiff.maker": f"{a.config} seed={a.seed} dtype={a.dtype} vocab={a.vocab}"
            + (" inpaint" if a.inpaint else "") + (f" vae_mult={a.vae_mult}" if a.vae_mult else "")}

    def producer(name, shape, init, xform):
        def p():
            arr = values(name, shape, init, a.seed)
            if xform:
                arr = np.ascontiguousarray(xform(arr))
            return to_dtype(arr, a.dtype)[0]
        return p

    def out_entry(oname, name, shape, init, xform):
        probe = values(name, (1,) * len(shape) if shape else (), init, a.seed) if init[0] == "i64" else None
        dt = "I64" if probe is not None else {"fp32": "F32", "fp16": "F16", "bf16": "BF16"}[a.dtype]
        esize = {"I64": 8, "F32": 4, "F16": 2, "BF16": 2}[dt]
        oshape = np.empty(shape, np.uint8)
        oshape = xform(oshape).shape if xform else tuple(shape)
        return (oname, oshape, dt, int(np.prod(oshape)) * esize, producer(name, shape, init, xform))

    total = 0
    if a.layout == "compvis":
        entries = [out_entry(n, n, s, i, None) for n, s, i in spec]
        write_safetensors(a.out, entries, meta)
        total = sum(e[3] for e in entries)
    else:
        files = {}
        for n, s, i in spec:
            for f, dn, x in diffusers_targets(n, cfg):
                files.setdefault(f, []).append(out_entry(dn, n, s, i, x))
        for f, entries in files.items():
            write_safetensors(os.path.join(a.out, f), entries, meta)
            total += sum(e[3] for e in entries)
        for d in ["tokenizer"] + (["tokenizer_2"] if len(cfg["te"]) == 2 else []):
            os.makedirs(os.path.join(a.out, d), exist_ok=True)
    print(f"wrote {a.out}: {len(spec)} CompVis tensors, {total / 2**20:.1f} MiB of data", file=sys.stderr)


if __name__ == "__main__":
    main()
