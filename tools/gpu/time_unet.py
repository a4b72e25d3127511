#!/usr/bin/python3
"""Time one SD1.5 UNet evaluation in PyTorch, as the reference point for vkdiff's
`bench model` on the same GPU (issue 6): the oracle's UNet (tools/oracle/sd_model.py,
SD1.5 configuration), fp16 on CUDA, batch 2 (guidance), 64x64 latent (512x512), 77
context tokens; weights random (the time does not depend on them).

    python3 tools/gpu/time_unet.py [--size 512] [--batch 2] [--repeat 10] [--device cuda]

Prints the median milliseconds of `--repeat` evaluations after 3 warm-ups, measured
with CUDA events (wall clock on the CPU)."""
import argparse
import os
import statistics
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "oracle"))
import sd_model  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=512, help="image size (latent = size / 8)")
    ap.add_argument("--model", choices=["sd15", "sdxl"], default="sd15",
                    help="sd15 (v1-inference.yaml) or sdxl (sd_xl_base.yaml: levels 1,2,4, depth 0/2/10, "
                         "middle 10, 64-wide heads, context 2048, label_emb on y 2816)")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--sdpa", action="store_true",
                    help="attention through torch's fused scaled_dot_product_attention (flash) "
                         "instead of the oracle's explicit softmax(QK^T)V: PyTorch's best")
    a = ap.parse_args()
    dev = a.device
    if dev == "cuda" and not torch.cuda.is_available():
        print("time_unet: no CUDA device in this PyTorch", file=sys.stderr)
        return 2
    dt = torch.float16 if dev == "cuda" else torch.float32
    torch.manual_seed(0)
    if dev == "cuda":  # the oracle builds its sinusoid on the CPU; rebuild it on the device
        def temb(t, dim, max_period=10000):
            half = dim // 2
            f = torch.exp(-torch.log(torch.tensor(float(max_period))) *
                          torch.arange(0, half, dtype=torch.float32, device=dev) / half)
            x = t[:, None].float() * f[None]
            return torch.cat([torch.cos(x), torch.sin(x)], dim=-1).to(dt)
        sd_model.timestep_embedding = temb
    if a.sdpa and not hasattr(torch.nn.functional, "scaled_dot_product_attention"):
        print(f"time_unet: torch {torch.__version__} has no scaled_dot_product_attention", file=sys.stderr)
        return 2
    if a.sdpa:
        def sdpa_forward(self, x, context=None):
            context = x if context is None else context
            q, k, v = self.to_q(x), self.to_k(context), self.to_v(context)
            b, n, _ = q.shape
            sp = lambda t: t.reshape(b, t.shape[1], self.heads, -1).permute(0, 2, 1, 3)
            o = torch.nn.functional.scaled_dot_product_attention(sp(q), sp(k), sp(v))
            return self.to_out(o.permute(0, 2, 1, 3).reshape(b, n, -1))
        sd_model.CrossAttention.forward = sdpa_forward
    if a.model == "sdxl":
        unet = sd_model.UNetModel(channel_mult=(1, 2, 4), num_res_blocks=2, attention_levels=(1, 2),
                                  num_heads=-1, num_head_channels=64, transformer_depth=[0, 2, 10],
                                  transformer_depth_middle=10, context_dim=2048, use_linear_in_transformer=True,
                                  adm_in_channels=2816)
        ctx_dim, y = 2048, torch.randn(a.batch, 2816, device=dev, dtype=dt)
    else:
        unet, ctx_dim, y = sd_model.UNetModel(), 768, None
    unet = unet.to(dev, dt).eval()
    lat = a.size // 8
    x = torch.randn(a.batch, 4, lat, lat, device=dev, dtype=dt)
    t = torch.full((a.batch,), 500.0, device=dev)
    ctx = torch.randn(a.batch, 77, ctx_dim, device=dev, dtype=dt)
    extra = {"y": y} if y is not None else {}
    times = []
    with torch.no_grad():
        for i in range(3 + a.repeat):
            if dev == "cuda":
                s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                s.record()
                unet(x, t, ctx, **extra)
                e.record()
                torch.cuda.synchronize()
                ms = s.elapsed_time(e)
            else:
                t0 = time.perf_counter()
                unet(x, t, ctx, **extra)
                ms = (time.perf_counter() - t0) * 1000
            if i >= 3:
                times.append(ms)
    name = torch.cuda.get_device_name() if dev == "cuda" else "cpu"
    print(f"pytorch {torch.__version__} {name} {str(dt).replace('torch.', '')}"
          f"{' sdpa' if a.sdpa else ''}: {'SDXL' if a.model == 'sdxl' else 'SD1.5'} UNet batch {a.batch} "
          f"{a.size}x{a.size}: median {statistics.median(times):.1f} ms over {a.repeat}")
    print(f"PYTORCH_UNET_MS={statistics.median(times):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
