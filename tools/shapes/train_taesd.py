#!/usr/bin/python3
"""Distil a TAESD-style decoder for the shipped shapes model (issue 22), on the CPU.

    /usr/bin/python3 tools/shapes/train_taesd.py            # weights/shapes_taesd_decoder.safetensors

The network is madebyollin/taesd's Decoder (tools/oracle/taesd_ref.py: Clamp, conv,
3x[3 Blocks, Upsample, conv], Block, conv) at --width channels instead of 64: the shapes
pictures are flat colours, and the narrower net is what makes previews cheap. Training
pairs, from weights/shapes.safetensors and tools/shapes/data.py:
  input   the sampler-space latent: 0.18215 * the VAE encoder's posterior mean of a
          picture (as the UNet was trained on);
  target  the picture itself, in [0, 1] (taesd.py's range). The full VAE decode would be
          the closer target, but on this 2-core machine it costs as much again as the
          encoder for every pair; the shapes VAE reproduces the pictures at ~29 dB, and
          the held-out PSNR against the VAE decode is measured and recorded;
  augmented  (--augment, half by default) the latent scaled by U(1, 1.8) plus noise of
          std up to 0.3, as a sampler at high guidance leaves them, with the VAE decode
          of that latent as the target: without it, decodes at cfg 7 were 14.6 dB from
          the VAE's (seed 5), with it 18.7, at -0.25 dB on clean held-out latents.
Most steps on 4x4-latent crops (32x32 pixels: the network is convolutional, 4x cheaper),
the last --full-steps on whole 8x8 latents so the borders are learnt as they are used.
L1 + L2 loss, AdamW with a cosine schedule, everything seeded from --seed. Written in
madebyollin's decoder layout ("1.weight", "3.conv.0.weight", ...), F16, with metadata
"taesd_model" = "taesd" (an SD1-family decoder, for vkdiff's family check) and
"vkdiff.training" (arguments, losses, PSNR against the VAE and the pictures, time)."""
import argparse
import json
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tools", "oracle"))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import data  # noqa: E402
import sample  # noqa: E402
import taesd_ref  # noqa: E402
import make_taesd  # noqa: E402

SCALE = 0.18215


def log(msg):
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def psnr01(a, b):
    mse = F.mse_loss(a.clamp(0, 1), b.clamp(0, 1)).item()
    return 10 * np.log10(1 / max(mse, 1e-12))


@torch.no_grad()
def augment(model, lat, pics, frac, g):
    """Replace a fraction of the pairs by off-distribution latents, as a sampler at high
    guidance makes them: z * U(1, 1.8) + N(0, U(0, 0.3)^2), with the full VAE decode of
    that latent as the target (the teacher; a picture no longer matches it)."""
    k = int(frac * len(lat))
    z = lat[:k] * (1 + 0.8 * torch.rand(k, 1, 1, 1, generator=g))
    z = z + 0.3 * torch.rand(k, 1, 1, 1, generator=g) * torch.randn(z.shape, generator=g)
    dec = torch.cat([(model.first_stage_model.decode(z[i:i + 64] / SCALE).clamp(-1, 1) + 1) / 2
                     for i in range(0, k, 64)])
    return torch.cat([z, lat[k:]]), torch.cat([dec, pics[k:]])


@torch.no_grad()
def make_pairs(model, seed, start, n, with_decode):
    """-> (latents [n, 4, 8, 8], pictures [n, 3, 64, 64] in [0, 1], VAE decodes of the
    latents in [0, 1] or None)"""
    imgs = data.batch(seed, start, n)[0]
    lat, dec = [], []
    for i in range(0, n, 64):
        x = torch.from_numpy(imgs[i:i + 64]).permute(0, 3, 1, 2).float() / 127.5 - 1
        z = model.first_stage_model.encode_mean(x) * SCALE
        lat.append(z)
        if with_decode:
            dec.append(((model.first_stage_model.decode(z / SCALE).clamp(-1, 1) + 1) / 2))
    pics = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255
    return torch.cat(lat), pics, torch.cat(dec) if with_decode else None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(ROOT, "weights", "shapes.safetensors"))
    ap.add_argument("--out", default=os.path.join(ROOT, "weights", "shapes_taesd_decoder.safetensors"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--train", type=int, default=1536, help="training pictures")
    ap.add_argument("--held", type=int, default=128, help="held-out pictures")
    ap.add_argument("--steps", type=int, default=600, help="steps in all")
    ap.add_argument("--full-steps", type=int, default=100, help="the last steps on whole latents")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--augment", type=float, default=0.5,
                    help="fraction of pairs with scaled + noisy latents and VAE-decode targets (augment())")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    g = torch.Generator().manual_seed(a.seed)
    t0 = time.time()
    model, _ = sample.load(a.model)
    data_seed = 1000 + a.seed  # pictures other than the ones the model was trained on
    lat, pics, _ = make_pairs(model, data_seed, 0, a.train, False)
    if a.augment > 0:
        lat, pics = augment(model, lat, pics, a.augment, g)
    hlat, hpics, hdec = make_pairs(model, data_seed, a.train, a.held, True)
    log(f"pairs: {a.train} + {a.held} held out in {time.time() - t0:.0f} s; latent std {lat.std():.3f}")
    net = taesd_ref.Decoder(4, a.width)
    opt = torch.optim.AdamW(net.parameters(), lr=a.lr, weight_decay=0.0)
    run = None
    for step in range(a.steps):
        lr = a.lr * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * step / a.steps))) * min(1.0, (step + 1) / 30)
        for p in opt.param_groups:
            p["lr"] = lr
        idx = torch.randint(0, a.train, (a.batch,), generator=g)
        x, y = lat[idx], pics[idx]
        if step < a.steps - a.full_steps:  # one 4x4-latent window for the batch
            oy, ox = (int(v) for v in torch.randint(0, 5, (2,), generator=g))
            x, y = x[:, :, oy:oy + 4, ox:ox + 4], y[:, :, 8 * oy:8 * oy + 32, 8 * ox:8 * ox + 32]
        out = net(x)
        loss = F.l1_loss(out, y) + F.mse_loss(out, y)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        run = loss.item() if run is None else 0.95 * run + 0.05 * loss.item()
        if step % 50 == 0 or step == a.steps - 1:
            log(f"step {step:4d}/{a.steps} loss {run:.4f} lr {lr:.2e}")
    net.eval()
    with torch.no_grad():
        out = torch.cat([net(hlat[i:i + 64]) for i in range(0, a.held, 64)])
    p_vae, p_pic, p_vae_pic = psnr01(out, hdec), psnr01(out, hpics), psnr01(hdec, hpics)
    minutes = (time.time() - t0) / 60
    log(f"held out: PSNR vs the VAE decode {p_vae:.2f} dB, vs the pictures {p_pic:.2f} dB "
        f"(the VAE vs the pictures {p_vae_pic:.2f} dB); {minutes:.1f} min")
    args = dict(vars(a), model=os.path.relpath(a.model, ROOT), out=os.path.relpath(a.out, ROOT))
    meta = {"taesd_model": "taesd", "taesd_width": a.width,
            "vkdiff.training": json.dumps({"args": args, "final_loss": run, "psnr_vs_vae": p_vae,
                                           "psnr_vs_pictures": p_pic, "vae_psnr_vs_pictures": p_vae_pic,
                                           "minutes": minutes, "made_by": "tools/shapes/train_taesd.py"})}
    sd = {k: v.detach().numpy().astype(np.float16) for k, v in net.state_dict().items()}
    make_taesd.write_safetensors(a.out, sd, meta)
    log(f"wrote {a.out}")


if __name__ == "__main__":
    main()
