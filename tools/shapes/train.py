#!/usr/bin/python3
"""Train the shipped shapes model (issue 5): a scaled-down Stable Diffusion 1.x.

    /usr/bin/python3 tools/shapes/train.py --seed 0     # the shipped model: 2 CPU threads, about 2 hours

The defaults are the shipped model's recipe, sized for a 2-core machine; --device cuda
--threads 8 runs the same recipe on a GPU in minutes (equivalent, not bit-identical:
CUDA and CPU arithmetic differ; every random draw stays on the CPU).

Three stages, each saved under --work so an interrupted run resumes at the next stage
(--fresh starts over):
  1. KL autoencoder (SD's Encoder/Decoder structure, 4 levels: 64x64 RGB <-> 8x8x4):
     L1 + L2 reconstruction of a sampled posterior, plus a small KL term. Most steps on
     aligned 32x32 crops (the network is convolutional; 4x cheaper), the last ones on
     whole pictures so the middle attention sees the full 8x8 grid.
  2. Latents of the training pictures (posterior means). vkdiff, like SD, decodes
     latent / 0.18215; instead of a scale factor of our own, the per-channel mean and
     std are folded into quant_conv and post_quant_conv, so that 0.18215 * (our encoder's
     mean) has mean 0 and std 1 per channel and the decoder inverts it exactly.
  3. UNet + CLIP text encoder jointly, SD1's eps objective: scaled-linear betas
     (0.00085 -> 0.012, 1000 steps), t uniform, 10% of captions replaced by "" (so
     classifier-free guidance works), AdamW, EMA of the weights; the EMA model with the
     lowest loss on a fixed held-out batch is kept.
Then weights/shapes.safetensors (CompVis key names from tools/oracle/sd_model.py, F16,
position_ids I64, alphas_cumprod F32, "vkdiff.config" metadata with the head layout) and
weights/tokenizer/{vocab.json,merges.txt}.

Everything is seeded from --seed (data, initialisation, batches, noise). At every
held-out evaluation that improves, the EMA model is also exported to
<work>/best-<seed>.safetensors, so a long run can be tried with vkdiff while it trains;
that file equals what --unet-stop <step> would write.
"""
import argparse
import json
import math
import os
import sys
import time

# Debian's torch does its linears through OpenBLAS; OpenBLAS' own threads on top of
# torch's OpenMP ones only oversubscribe a small machine.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tools", "oracle"))
import data  # noqa: E402
import tokenizer as tk  # noqa: E402
import sd_model  # noqa: E402
from make_goldens import write_safetensors, read_safetensors  # noqa: E402

SCALE_FACTOR = 0.18215   # vkdiff's (and SD1's) fixed latent scale


def use_device(dev):
    """sd_model builds its causal mask and timestep frequencies on the CPU; for CUDA the
    same formulas are rebuilt on the device (CPU runs keep the oracle's functions)."""
    if dev == "cpu":
        return
    def causal_mask(n):
        return torch.full((n, n), float("-inf"), device=dev).triu(1)

    def timestep_embedding(t, dim, max_period=10000):
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(0, half, dtype=torch.float32, device=dev) / half)
        args = t[:, None].float() * freqs[None]
        return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    sd_model.causal_mask = causal_mask
    sd_model.timestep_embedding = timestep_embedding


def make_config(vocab, mc=32):
    return dict(
        family="sd1", prediction="eps",
        unet=dict(in_channels=4, out_channels=4, model_channels=mc, channel_mult=(1, 2), num_res_blocks=1,
                  attention_levels=(1,), num_heads=4, num_head_channels=-1, transformer_depth=1,
                  context_dim=64, use_linear_in_transformer=False),
        vae=dict(ch=32, ch_mult=(1, 1, 2, 2), num_res_blocks=1, z_channels=4, with_encoder=True),
        text=dict(width=64, layers=2, heads=4, mlp=256, vocab=vocab, positions=77))


def config_json(cfg):
    c = {"family": cfg["family"], "prediction": cfg["prediction"], "unet": dict(cfg["unet"]),
         "vae": dict(cfg["vae"]), "text": dict(cfg["text"]), "scale_factor": SCALE_FACTOR,
         "text_output": "last layer + final_layer_norm", "made_by": "tools/shapes/train.py"}
    return json.dumps(c, separators=(",", ":"))


def alphas_cumprod():
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    return torch.cumprod(1 - betas, 0).float()


def log(msg):
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def to_x(u8):
    """uint8 [B, H, W, 3] -> float [B, 3, H, W] in [-1, 1]"""
    return torch.from_numpy(u8).permute(0, 3, 1, 2).float() / 127.5 - 1


def lr_at(step, total, peak, warm=50, floor=0.1):
    if step < warm:
        return peak * (step + 1) / warm
    p = (step - warm) / max(1, total - warm)
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p)))


# --------------------------------------------------------------------- stage 1 ----
def train_vae(vae, imgs, a):
    g = np.random.default_rng([a.seed, 1])
    opt = torch.optim.AdamW(vae.parameters(), lr=a.vae_lr, weight_decay=0.0)
    t0, run = time.time(), None
    total = a.vae_steps + a.vae_full_steps
    for step in range(total):
        crop = step < a.vae_steps
        bsz = a.vae_batch * (4 if crop else 1)
        x = to_x(imgs[g.integers(len(imgs), size=bsz)]).to(a.device)
        if crop:   # 32x32 windows on the 8-pixel latent grid
            ox, oy = g.integers(0, 5, size=2) * 8
            x = x[:, :, oy:oy + 32, ox:ox + 32]
        for p in opt.param_groups:
            p["lr"] = lr_at(step, total, a.vae_lr)
        mom = vae.quant_conv(vae.encoder(x))
        mean, logvar = mom[:, :4], mom[:, 4:].clamp(-30, 20)
        z = mean + torch.exp(0.5 * logvar) * torch.randn(mean.shape, generator=a.gen).to(a.device)
        rec = vae.decode(z)
        l1, l2 = (rec - x).abs().mean(), ((rec - x) ** 2).mean()
        kl = 0.5 * (mean ** 2 + logvar.exp() - 1 - logvar).mean()
        loss = l1 + l2 + a.kl * kl
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        v = np.array([l1.item(), l2.item(), kl.item()])
        run = v if run is None else 0.9 * run + 0.1 * v
        if step % 20 == 0 or step == total - 1:
            log(f"vae {step:5d}/{total} {'crop' if crop else 'full'} l1 {run[0]:.4f} l2 {run[1]:.4f} "
                f"kl {run[2]:.3f} ({(time.time() - t0) / (step + 1):.2f} s/step)")
    return dict(l1=float(run[0]), l2=float(run[1]), kl=float(run[2]), seconds=time.time() - t0)


# --------------------------------------------------------------------- stage 2 ----
@torch.no_grad()
def encode_all(vae, imgs, device):
    out = []
    for i in range(0, len(imgs), 64):
        out.append(vae.encode_mean(to_x(imgs[i:i + 64]).to(device)).cpu())
    return torch.cat(out)


@torch.no_grad()
def fold_scale(vae, lat):
    """Fold per-channel mean m and std s into the first-stage convs so that the new
    encoder mean is z' = (z - m) / a with a = s * 0.18215 (then 0.18215 z' ~ N(0, 1))
    and post_quant_conv(z') = old post_quant_conv(a z' + m)."""
    dev = vae.quant_conv.weight.device
    m = lat.mean(dim=(0, 2, 3)).double().to(dev)
    s = lat.std(dim=(0, 2, 3)).double().to(dev)
    a_ = s * SCALE_FACTOR
    q, p = vae.quant_conv, vae.post_quant_conv
    qw, qb = q.weight.double(), q.bias.double()
    qw[:4] /= a_[:, None, None, None]
    qb[:4] = (qb[:4] - m) / a_
    qb[4:] -= 2 * torch.log(a_)                       # logvar of z / a
    q.weight.copy_(qw.float()), q.bias.copy_(qb.float())
    pw, pb = p.weight.double(), p.bias.double()
    pb = pb + (pw[:, :, 0, 0] @ m)
    pw = pw * a_[None, :, None, None]
    p.weight.copy_(pw.float()), p.bias.copy_(pb.float())
    return m.cpu(), s.cpu()


# --------------------------------------------------------------------- stage 3 ----
def train_unet(model, lat, toks, empty, a):
    """lat: [N, 4, 8, 8] sampler-space latents (mean 0, std 1); toks: [N, 77] ids"""
    g = torch.Generator().manual_seed(a.seed * 1000 + 3)
    dev = a.device
    acp = alphas_cumprod().to(dev)
    lat, toks, empty = lat.to(dev), toks.to(dev), empty.to(dev)
    unet, te = model.unet, model.cond_stage_model.transformer
    params = list(unet.parameters()) + list(te.parameters())
    opt = torch.optim.AdamW(params, lr=a.unet_lr, weight_decay=0.01)
    ema = [p.detach().clone() for p in params]
    # fixed held-out batch (indices past the training range)
    n_train = len(lat) - a.holdout
    hv = torch.arange(n_train, len(lat)).to(dev)
    ht = torch.randint(0, 1000, (len(hv),), generator=g).to(dev)
    hn = torch.randn(tuple(lat[hv].shape), generator=g).to(dev)
    run, t0 = None, time.time()

    def loss_on(idx, t, noise, drop):
        x0 = lat[idx]
        ab = acp[t][:, None, None, None]
        xt = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
        ids = toks[idx].clone()
        ids[drop] = empty
        ctx = te.encode(ids)
        return F.mse_loss(unet(xt, t.float(), ctx), noise)

    state = dict(best=float("inf"), best_state=None, best_step=0, done=0, evaluated=0)

    def evaluate(done):
        with torch.no_grad():
            saved = [p.detach().clone() for p in params]
            for p, e in zip(params, ema):
                p.copy_(e)
            hl = loss_on(hv, ht, hn, torch.zeros(len(hv), dtype=torch.bool, device=dev)).item()
            if hl < state["best"]:
                state.update(best=hl, best_step=done, best_state={k: v.clone() for k, v in model.state_dict().items()})
                if a.snapshot:   # the best EMA model so far, loadable by vkdiff while training goes on
                    export(model, a.cfg, a.snapshot, {"seed": a.seed, "snapshot_step": done, "heldout_loss": hl})
            for p, s_ in zip(params, saved):
                p.copy_(s_)
        state["evaluated"] = done
        log(f"unet {done}: EMA held-out loss {hl:.4f} (best {state['best']:.4f} at {state['best_step']})")

    for step in range(a.unet_stop or a.unet_steps):
        if a.max_minutes and time.time() - a.t0 > 60 * a.max_minutes:
            log(f"unet: stopping at step {step}: --max-minutes {a.max_minutes} reached")
            break
        idx = torch.randint(0, n_train, (a.unet_batch,), generator=g).to(dev)
        t = torch.randint(0, 1000, (a.unet_batch,), generator=g).to(dev)
        noise = torch.randn((a.unet_batch, 4, 8, 8), generator=g).to(dev)
        drop = (torch.rand(a.unet_batch, generator=g) < 0.1).to(dev)
        for p in opt.param_groups:
            p["lr"] = lr_at(step, a.unet_steps, a.unet_lr, warm=100)
        loss = loss_on(idx, t, noise, drop)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        state["done"] = step + 1
        d = min(a.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip(ema, params):
                e.mul_(d).add_(p.detach(), alpha=1 - d)
        run = loss.item() if run is None else 0.98 * run + 0.02 * loss.item()
        if step % 50 == 0 or step == a.unet_steps - 1:
            log(f"unet {step:5d}/{a.unet_steps} loss {run:.4f} ({(time.time() - t0) / (step + 1):.2f} s/step)")
        if (step + 1) % a.eval_every == 0 or step == a.unet_steps - 1:
            evaluate(step + 1)
    if state["best_state"] is None or state["done"] != state["evaluated"]:
        evaluate(state["done"])
    best_state, best, best_step = state["best_state"], state["best"], state["best_step"]
    model.load_state_dict(best_state)
    return dict(train_loss=run, heldout_loss=best, best_step=best_step, seconds=time.time() - t0)


# ---------------------------------------------------------------------- export ----
def export(model, cfg, path, meta):
    sd = {}
    for k, v in model.state_dict().items():
        sd[k] = v.cpu() if v.dtype == torch.int64 else v.detach().cpu().to(torch.float16)
    sd["alphas_cumprod"] = alphas_cumprod()
    write_safetensors(path, sd, {"format": "pt", "vkdiff.config": config_json(cfg),
                                 "vkdiff.training": json.dumps(meta, separators=(",", ":"))})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default="/tmp/shapes-work")
    ap.add_argument("--out", default=os.path.join(ROOT, "weights"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--fresh", action="store_true")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda; all random draws stay on the CPU")
    ap.add_argument("--images", type=int, default=16384)
    ap.add_argument("--holdout", type=int, default=256)
    ap.add_argument("--vae-steps", type=int, default=400, help="steps on 32x32 crops")
    ap.add_argument("--vae-full-steps", type=int, default=1200, help="then steps on whole pictures")
    ap.add_argument("--vae-batch", type=int, default=16)
    ap.add_argument("--vae-lr", type=float, default=2e-3)
    ap.add_argument("--kl", type=float, default=1e-4)
    ap.add_argument("--unet-mc", type=int, default=64, help="UNet model_channels (multiple of 32)")
    ap.add_argument("--unet-steps", type=int, default=4500)
    ap.add_argument("--unet-stop", type=int, default=0,
                    help="stop after this many UNet steps, the learning-rate schedule still being that of "
                         "--unet-steps (0: run them all)")
    ap.add_argument("--max-minutes", type=float, default=0, help="stop the UNet stage early after this much wall time (0: never)")
    ap.add_argument("--unet-batch", type=int, default=64)
    ap.add_argument("--unet-lr", type=float, default=1e-3)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--eval-every", type=int, default=500)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    a.gen = torch.Generator().manual_seed(a.seed * 1000 + 1)
    os.makedirs(a.work, exist_ok=True)
    T0 = a.t0 = time.time()

    tok_dir = os.path.join(a.out, "tokenizer")
    vocab, merges = tk.write(tok_dir)
    tok = tk.Tokenizer(vocab, merges)
    cfg = a.cfg = make_config(len(vocab), a.unet_mc)
    a.snapshot = os.path.join(a.work, f"best-{a.seed}.safetensors")
    use_device(a.device)

    imgs_path = os.path.join(a.work, f"images-{a.seed}-{a.images}.npz")
    if os.path.exists(imgs_path) and not a.fresh:
        z = np.load(imgs_path)
        imgs, toks = z["imgs"], z["toks"]
    else:
        imgs, caps, _ = data.batch(a.seed, 0, a.images)
        toks = np.array([tok.context(c) for c in caps], np.int64)
        np.savez(imgs_path, imgs=imgs, toks=toks)
    log(f"{len(imgs)} pictures, vocab {len(vocab)}")

    model = sd_model.StableDiffusion(cfg).to(a.device)
    n_par = {k: sum(p.numel() for p in m.parameters()) for k, m in
             [("unet", model.unet), ("vae", model.vae), ("text", model.cond_stage_model)]}
    log(f"parameters: {n_par}")
    meta = {"seed": a.seed, "args": {k: v for k, v in vars(a).items() if k not in ("gen", "work", "out", "t0", "cfg", "snapshot")},
            "device": torch.cuda.get_device_name() if a.device == "cuda" else f"cpu, {a.threads} threads",
            "params": n_par, "torch": torch.__version__}

    vae_path = os.path.join(a.work, f"vae-{a.seed}.pt")
    if os.path.exists(vae_path) and not a.fresh:
        st = torch.load(vae_path, map_location=a.device)
        model.vae.load_state_dict(st["vae"])
        meta["vae"] = st["meta"]
    else:
        meta["vae"] = train_vae(model.vae, imgs, a)
        with torch.no_grad():
            lat = encode_all(model.vae, imgs, a.device)
            m, s = fold_scale(model.vae, lat)
            meta["vae"]["latent_mean"], meta["vae"]["latent_std"] = m.tolist(), s.tolist()
        torch.save({"vae": model.vae.state_dict(), "meta": meta["vae"]}, vae_path)
    with torch.no_grad():
        lat = encode_all(model.vae, imgs, a.device) * SCALE_FACTOR
    log(f"sampler-space latents: mean {lat.mean():.3f} std {lat.std():.3f} per channel std "
        f"{[round(x, 3) for x in lat.std(dim=(0, 2, 3)).tolist()]}")

    empty = torch.tensor(tok.context(""), dtype=torch.int64)
    meta["unet"] = train_unet(model, lat, torch.from_numpy(toks), empty, a)
    meta["total_seconds"] = time.time() - T0
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, "shapes.safetensors")
    export(model, cfg, path, meta)
    torch.save(model.state_dict(), os.path.join(a.work, f"final-{a.seed}.pt"))
    log(f"wrote {path} ({os.path.getsize(path)} bytes); total {meta['total_seconds'] / 60:.1f} min")
    print(json.dumps(meta, indent=1))


if __name__ == "__main__":
    main()
