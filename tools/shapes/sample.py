#!/usr/bin/python3
"""Render prompts with the shapes model in PyTorch (the oracle's networks and samplers),
to compare with vkdiff: same seed -> same start noise (torch CPU randn [1, 4, h/8, w/8]).

    /usr/bin/python3 tools/shapes/sample.py -p "a red circle" --seed 1 --steps 12 -o /tmp/x.png
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tools", "oracle"))
import data  # noqa: E402
import tokenizer as tk  # noqa: E402
import sd_model  # noqa: E402
import sampling_ref as sr  # noqa: E402
from make_goldens import read_safetensors, CFGModel  # noqa: E402


def load(path):
    sd, meta = read_safetensors(path)
    cfg = json.loads(meta["vkdiff.config"])
    cfg["unet"]["channel_mult"] = tuple(cfg["unet"]["channel_mult"])
    cfg["unet"]["attention_levels"] = tuple(cfg["unet"]["attention_levels"])
    cfg["vae"]["ch_mult"] = tuple(cfg["vae"]["ch_mult"])
    m = sd_model.StableDiffusion(cfg).eval()
    m.load_state_dict({k: (v.float() if v.dtype == torch.float16 else v) for k, v in sd.items()
                       if k != "alphas_cumprod"})
    return m, cfg


@torch.no_grad()
def render(m, tok, prompt, seed, steps, cfg_scale, sampler="dpm++2m", size=64, schedule="discrete"):
    ids = torch.tensor([tok.context(prompt), tok.context("")])
    ctx = m.encode_text(ids)
    acp = sr.compvis_alphas_cumprod()
    sched = sr.DiscreteSchedule(((1 - acp) / acp) ** 0.5)
    if schedule == "karras":
        sigmas = sr.get_sigmas_karras(steps, float(sched.sigmas[0]), float(sched.sigmas[-1]))
    else:
        sigmas = sched.get_sigmas(steps)
    shape = (1, 4, size // 8, size // 8)
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(shape, generator=g)
    model = CFGModel(m.unet, "eps", acp, ctx, cfg_scale)
    x = sr.SAMPLERS[sampler](model, noise * sigmas[0], sigmas, lambda: torch.randn(shape, generator=g))
    img = m.vae.decode(x / m.scale_factor)[0]
    return ((img.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-m", default=os.path.join(ROOT, "weights", "shapes.safetensors"))
    ap.add_argument("--tokenizer", default=os.path.join(ROOT, "weights", "tokenizer"))
    ap.add_argument("-p", action="append")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--cfg", type=float, default=6)
    ap.add_argument("--sampler", default="dpm++2m")
    ap.add_argument("--schedule", default="discrete")
    ap.add_argument("-o", default="/tmp/sample.png")
    a = ap.parse_args()
    torch.set_num_threads(2)
    m, _ = load(a.m)
    tok = tk.Tokenizer.load(a.tokenizer)
    imgs = [render(m, tok, p, a.seed, a.steps, a.cfg, a.sampler, schedule=a.schedule) for p in a.p]
    data.write_png(a.o, data.grid(imgs, len(imgs)))
    print(a.o)


if __name__ == "__main__":
    main()
