#!/usr/bin/env python3
"""Write a random LoRA for a checkpoint, and the weight deltas it means.

    make_lora.py CHECKPOINT OUT [--format kohya|locon|loha|lokr|peft] [--rank R]
                 [--alpha A] [--seed N]

CHECKPOINT: a CompVis/sgm single-file .safetensors (tests/data/tiny-sd1/sd2/sdxl,
weights/shapes.safetensors, anything tools/make_checkpoint.py writes). The family is
read from the keys: conditioner.embedders.1 -> SDXL, cond_stage_model.model -> SD2
(OpenCLIP), cond_stage_model.transformer -> SD1.

Modules and names (docs/lora.md has the sources):
  kohya  every Linear and 1x1 conv of the UNet's transformer blocks (proj_in/out,
         attn1/attn2 to_q/k/v/out.0, ff.net.0.proj, ff.net.2) and of the text encoders'
         CLIPAttention / CLIPMLP; names as kohya's sd-scripts networks/lora.py makes them:
         lora_unet_<diffusers path> for SD1/SD2, lora_unet_<sgm path> for SDXL,
         lora_te_<HF CLIP path> (SD1/SD2; SD2 without the last layer, which kohya drops),
         lora_te1_ / lora_te2_ for SDXL; '.' -> '_'. Tensors .lora_down.weight [r, in(,k,k)],
         .lora_up.weight [out, r(,1,1)], .alpha (scalar).
  locon  kohya plus the ResBlocks (in_layers.2, out_layers.3 3x3; skip_connection 1x1;
         emb_layers.1), downsamplers and upsamplers; every other 3x3 conv with a Tucker
         core .lora_mid.weight [r, r, 3, 3] (down then [r, in, 1, 1]).
  loha   the locon modules, LyCORIS hada_w1_a [out, r], hada_w1_b [r, in*k*k], hada_w2_a,
         hada_w2_b; .alpha.
  lokr   the locon modules, lokr_w1 [a, c] with lokr_w2 [b, d(,k,k)] (odd modules: scale 1)
         or lokr_w2_a [b, r] / lokr_w2_b [r, d*k*k] (even modules: scale alpha / r),
         out = a * b, in = c * d.
  peft   the kohya modules under diffusers names: unet.<diffusers path>,
         text_encoder.<HF path>, text_encoder_2. for SDXL; .lora_A.weight [r, in(,1,1)],
         .lora_B.weight [out, r(,1,1)], no alpha (scale 1).

Beside OUT it writes OUT.deltas.safetensors: per target tensor, under the internal name
host/io/layout.h gives it (CompVis keys; text encoders in HF CLIP naming under the slot's
prefix, OpenCLIP's in_proj split into q/k/v), dW = scale * (the format's product),
computed in float64 and stored F32, for multiplier 1.

Only numpy is needed.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_checkpoint as mc  # noqa: E402  (read_header, cfg_from_file, the diffusers maps)

UNET = "model.diffusion_model."
XF_LEAVES = ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0",
             "attn2.to_q", "attn2.to_k", "attn2.to_v", "attn2.to_out.0", "ff.net.0.proj", "ff.net.2")
RES_LEAVES = ("in_layers.2", "out_layers.3", "skip_connection", "emb_layers.1")
TE_LEAVES = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "mlp.fc1", "mlp.fc2")


def family_of(header):
    if any(k.startswith("conditioner.embedders.1.") for k in header):
        return "sdxl"
    if any(k.startswith("cond_stage_model.model.") for k in header):
        return "sd2"
    return "sd1"


def unet_targets(header, conv):
    """[(internal name, stem without .weight, shape)] of the UNet's LoRA targets."""
    out = []
    for k, h in header.items():
        if not k.startswith(UNET) or not k.endswith(".weight") or len(h["shape"]) < 2:
            continue
        stem = k[len(UNET):-len(".weight")]
        p = stem.split(".")
        if p[0] not in ("input_blocks", "middle_block", "output_blocks"):
            continue
        rest = ".".join(p[3:]) if p[0] != "middle_block" else ".".join(p[2:])
        xf = rest in ("proj_in", "proj_out") or (".transformer_blocks." in "." + rest and
                                                  any(rest.endswith(x) for x in XF_LEAVES))
        res = rest in RES_LEAVES or rest in ("op", "conv")
        if xf or (conv and res):
            out.append((k, stem, tuple(h["shape"])))
    return sorted(out)


def te_targets(header, fam, cfg):
    """[(internal name, kohya prefix, peft prefix, hf stem, shape, source slice)]."""
    slots = {"sd1": [("cond_stage_model.transformer.", "cond_stage_model.transformer.", "lora_te", "text_encoder")],
             "sd2": [("cond_stage_model.model.", "cond_stage_model.transformer.", "lora_te", "text_encoder")],
             "sdxl": [("conditioner.embedders.0.transformer.", "conditioner.embedders.0.transformer.", "lora_te1",
                       "text_encoder"),
                      ("conditioner.embedders.1.model.", "conditioner.embedders.1.transformer.", "lora_te2",
                       "text_encoder_2")]}[fam]
    out = []
    for src, dst, kp, pp in slots:
        t = next(t for t in cfg["te"] if t["prefix"] == src)
        for k, h in header.items():
            if not k.startswith(src):
                continue
            rest = k[len(src):]
            names = [(rest, None)] if t["kind"] == "hf" else mc.openclip_to_hf(rest, t["width"])
            for hf, _ in names:
                if not hf.endswith(".weight") or not hf.startswith("text_model.encoder.layers."):
                    continue
                stem = hf[:-len(".weight")]
                layer = int(stem.split(".")[3])
                if fam == "sd2" and layer == t["layers"] - 1:
                    continue  # kohya's SD2 text encoder has 23 of 24 layers
                if not any(stem.endswith(x) for x in TE_LEAVES):
                    continue
                shape = tuple(h["shape"])
                if "in_proj_weight" in rest:
                    shape = (shape[0] // 3, shape[1])
                out.append((dst + hf, kp, pp, stem, shape))
    return sorted(out)


def factor(n):
    """The largest divisor of n not above sqrt(n) (LyCORIS factorization picks near-square)."""
    a = int(np.sqrt(n))
    while n % a:
        a -= 1
    return a


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("out")
    ap.add_argument("--format", choices=["kohya", "locon", "loha", "lokr", "peft"], default="kohya")
    ap.add_argument("--rank", type=int, default=4)
    ap.add_argument("--alpha", type=float, default=None, help="default: rank / 2 (scale 0.5)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-deltas", action="store_true",
                    help="skip OUT.deltas.safetensors (every target's dense delta: GBs for a full-size model)")
    a = ap.parse_args()
    header, _, _ = mc.read_header(a.checkpoint)
    fam = family_of(header)
    cfg = mc.cfg_from_file(mc.CONFIGS[{"sd1": "tiny-sd1", "sd2": "tiny-sd2", "sdxl": "tiny-sdxl"}[fam]], header)
    fmt, r0 = a.format, a.rank
    alpha = a.alpha if a.alpha is not None else r0 / 2.0
    rng = np.random.default_rng(a.seed)
    conv = fmt in ("locon", "loha", "lokr")

    mods = []  # (lora module name, internal target, target shape)
    for name, stem, shape in unet_targets(header, conv):
        if fmt == "peft":
            mods.append(("unet." + mc.unet_to_diffusers(stem + ".weight", cfg["unet"])[:-len(".weight")], name, shape))
        else:
            path = stem if fam == "sdxl" else mc.unet_to_diffusers(stem + ".weight", cfg["unet"])[:-len(".weight")]
            mods.append(("lora_unet_" + path.replace(".", "_"), name, shape))
    for name, kp, pp, stem, shape in te_targets(header, fam, cfg):
        mods.append((pp + "." + stem if fmt == "peft" else kp + "_" + stem.replace(".", "_"), name, shape))

    T, D = {}, {}

    def put(k, arr):
        T[k] = np.asarray(arr, np.float32)

    for i, (m, target, shape) in enumerate(mods):
        out, inp = shape[0], shape[1]
        ks = shape[2:]  # () or (kh, kw)
        K = inp * int(np.prod(ks)) if ks else inp
        r = min(r0, out, K)
        g = lambda *s: rng.standard_normal(s) * 0.5  # noqa: E731
        if fmt in ("kohya", "locon", "peft"):
            mid = fmt == "locon" and ks and ks != (1, 1) and i % 2 == 0
            up = g(out, r)
            if mid:
                down, core = g(r, inp), g(r, r, *ks)
                dw = np.einsum("oi,ijkl,jc->ockl", up, core, down)
            else:
                down = g(r, K)
                dw = (up @ down).reshape(shape)
            scale = 1.0 if fmt == "peft" else alpha / r
            A, B = (".lora_A.weight", ".lora_B.weight") if fmt == "peft" else (".lora_down.weight", ".lora_up.weight")
            put(m + A, down.reshape((r, inp) + ((1,) * len(ks) if mid else ks)))
            put(m + B, up.reshape((out, r) + (1,) * len(ks)))
            if mid:
                put(m + ".lora_mid.weight", core)
            if fmt != "peft":
                put(m + ".alpha", np.float32(alpha))
        elif fmt == "loha" and ks and ks != (1, 1) and i % 2 == 0:
            # LyCORIS use_tucker: a [r, out], b [r, in], t [r, r, kh, kw]; each side
            # einsum("i j k l, i p, j r -> p r k l", t, a, b) (LyCORIS make_weight_tucker)
            r = min(r0, out, inp)
            sides = [(g(r, out), g(r, inp), g(r, r, *ks)) for _ in range(2)]
            w1, w2 = (np.einsum("ijkl,ip,jr->prkl", t, a_, b_) for a_, b_, t in sides)
            dw = w1 * w2
            scale = alpha / r
            for n, (a_, b_, t) in zip("12", sides):
                put(f"{m}.hada_w{n}_a", a_)
                put(f"{m}.hada_w{n}_b", b_)
                put(f"{m}.hada_t{n}", t)
            put(m + ".alpha", np.float32(alpha))
        elif fmt == "loha":
            w1a, w1b, w2a, w2b = g(out, r), g(r, K), g(out, r), g(r, K)
            dw = ((w1a @ w1b) * (w2a @ w2b)).reshape(shape)
            scale = alpha / r
            for k, v in (("hada_w1_a", w1a), ("hada_w1_b", w1b), ("hada_w2_a", w2a), ("hada_w2_b", w2b)):
                put(f"{m}.{k}", v)
            put(m + ".alpha", np.float32(alpha))
        else:  # lokr
            fa, fc = factor(out), factor(inp)
            fb, fd = out // fa, inp // fc
            w1 = g(fa, fc)
            kd = fd * int(np.prod(ks)) if ks else fd
            if i % 2 == 0:
                r2 = min(r0, fb, kd)
                w2a, w2b = g(fb, r2), g(r2, kd)
                w2 = (w2a @ w2b).reshape((fb, fd) + ks)
                put(m + ".lokr_w2_a", w2a)
                put(m + ".lokr_w2_b", w2b)
                scale = alpha / r2
            else:
                w2 = g(fb, fd, *ks)
                put(m + ".lokr_w2", w2)
                scale = 1.0
            put(m + ".lokr_w1", w1)
            put(m + ".alpha", np.float32(alpha))
            w1e = w1.reshape(w1.shape + (1,) * len(ks))
            dw = np.kron(w1e, w2)
        assert dw.shape == shape, (m, dw.shape, shape)
        if not a.no_deltas:
            D[target] = (dw * scale).astype(np.float32)

    def entries(d):
        return [(k, v.shape, "F32", v.nbytes, (lambda v=v: v)) for k, v in sorted(d.items())]
    meta = {"ss_network_module": {"kohya": "networks.lora", "peft": "peft"}.get(fmt, "lycoris.kohya"),
            "vkdiff.make_lora": f"{fam} {fmt} rank {r0} alpha {alpha} seed {a.seed}"}
    mc.write_safetensors(a.out, entries(T), meta)
    if not a.no_deltas:
        mc.write_safetensors(a.out + ".deltas.safetensors", entries(D), {"family": fam, "format": fmt})
    print(f"{a.out}: {fam} {fmt}, {len(mods)} modules, {len(T)} tensors")


if __name__ == "__main__":
    main()
