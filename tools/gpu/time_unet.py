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
    unet = sd_model.UNetModel().to(dev, dt).eval()
    lat = a.size // 8
    x = torch.randn(a.batch, 4, lat, lat, device=dev, dtype=dt)
    t = torch.full((a.batch,), 500.0, device=dev)
    ctx = torch.randn(a.batch, 77, 768, device=dev, dtype=dt)
    times = []
    with torch.no_grad():
        for i in range(3 + a.repeat):
            if dev == "cuda":
                s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                s.record()
                unet(x, t, ctx)
                e.record()
                torch.cuda.synchronize()
                ms = s.elapsed_time(e)
            else:
                t0 = time.perf_counter()
                unet(x, t, ctx)
                ms = (time.perf_counter() - t0) * 1000
            if i >= 3:
                times.append(ms)
    name = torch.cuda.get_device_name() if dev == "cuda" else "cpu"
    print(f"pytorch {torch.__version__} {name} {str(dt).replace('torch.', '')}"
          f"{' sdpa' if a.sdpa else ''}: SD1.5 UNet batch {a.batch} "
          f"{a.size}x{a.size}: median {statistics.median(times):.1f} ms over {a.repeat}")
    print(f"PYTORCH_UNET_MS={statistics.median(times):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
