#!/usr/bin/env python3
"""PyTorch TAESD / TAESDXL, written from madebyollin/taesd taesd.py (Decoder, Encoder,
Block, Clamp) with the width as a parameter, and the goldens tests/test_taesd.c reads.

    /usr/bin/python3 tools/oracle/taesd_ref.py [--check]

Writes tests/data/golden-taesd.safetensors: for each model (taesd, taesdxl: different
random weights from tools/make_taesd.py) and width (16: the tiny test size, 64: the
real one), <model>_w<width>_dec_z [1, 4, 5, 7] (scaled so that some values pass the
clamp's knee at 3), _dec_out [1, 3, 40, 56] in taesd.py's [0, 1] convention (not
clamped), _enc_img [1, 3, 40, 48] in [0, 1], _enc_out [1, 4, 5, 6]. The test makes the
weight files with tools/make_taesd.py at test time (numpy only), so only the inputs and
outputs are committed. --check recomputes and compares with the committed file."""
import argparse
import os
import sys

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
import make_taesd  # noqa: E402

torch.backends.mkldnn.enabled = False  # plain fp32 convs, as the other goldens
OUT = os.path.join(HERE, "..", "..", "tests", "data", "golden-taesd.safetensors")


def conv(n_in, n_out, **kw):
    return nn.Conv2d(n_in, n_out, 3, padding=1, **kw)


class Clamp(nn.Module):
    def forward(self, x):
        return torch.tanh(x / 3) * 3


class Block(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.conv = nn.Sequential(conv(n_in, n_out), nn.ReLU(), conv(n_out, n_out), nn.ReLU(), conv(n_out, n_out))
        self.skip = nn.Conv2d(n_in, n_out, 1, bias=False) if n_in != n_out else nn.Identity()
        self.fuse = nn.ReLU()

    def forward(self, x):
        return self.fuse(self.conv(x) + self.skip(x))


def Encoder(latent, c=64):
    return nn.Sequential(
        conv(3, c), Block(c, c),
        conv(c, c, stride=2, bias=False), Block(c, c), Block(c, c), Block(c, c),
        conv(c, c, stride=2, bias=False), Block(c, c), Block(c, c), Block(c, c),
        conv(c, c, stride=2, bias=False), Block(c, c), Block(c, c), Block(c, c),
        conv(c, latent),
    )


def Decoder(latent, c=64):
    return nn.Sequential(
        Clamp(), conv(latent, c), nn.ReLU(),
        Block(c, c), Block(c, c), Block(c, c), nn.Upsample(scale_factor=2), conv(c, c, bias=False),
        Block(c, c), Block(c, c), Block(c, c), nn.Upsample(scale_factor=2), conv(c, c, bias=False),
        Block(c, c), Block(c, c), Block(c, c), nn.Upsample(scale_factor=2), conv(c, c, bias=False),
        Block(c, c), conv(c, 3),
    )


def load(model, width, latent=4):
    """(decoder, encoder) holding tools/make_taesd.py's weights; load_state_dict is strict,
    so the maker's names are checked against taesd.py's own"""
    w = make_taesd.make(model, width, latent)
    dec, enc = Decoder(latent, width), Encoder(latent, width)
    dec.load_state_dict({k: torch.from_numpy(v) for k, v in w["decoder"].items()})
    enc.load_state_dict({k: torch.from_numpy(v) for k, v in w["encoder"].items()})
    return dec.eval(), enc.eval()


@torch.no_grad()
def goldens():
    out = {}
    for mi, model in enumerate(("taesd", "taesdxl")):
        for width in (16, 64):
            dec, enc = load(model, width)
            g = torch.Generator().manual_seed(100 * mi + width)
            z = 2.5 * torch.randn(1, 4, 5, 7, generator=g)
            img = torch.rand(1, 3, 40, 48, generator=g)
            p = f"{model}_w{width}_"
            out[p + "dec_z"] = z
            out[p + "dec_out"] = dec(z)
            out[p + "enc_img"] = img
            out[p + "enc_out"] = enc(img)
    return {k: v.float().numpy() for k, v in out.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    g = goldens()
    if a.check:
        old = make_taesd.read_safetensors(OUT)
        bad = [k for k in g if k not in old or not np.allclose(old[k], g[k], rtol=1e-5, atol=1e-6)]
        print("golden-taesd: " + ("differs: " + ", ".join(bad) if bad else "matches"))
        sys.exit(1 if bad else 0)
    make_taesd.write_safetensors(OUT, g, {"source": "tools/oracle/taesd_ref.py"})
    for k, v in g.items():
        print(f"{k:24s} {list(v.shape)} mean {v.mean():+.4f} std {v.std():.4f} min {v.min():+.3f} max {v.max():+.3f}")


if __name__ == "__main__":
    main()
