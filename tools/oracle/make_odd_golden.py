#!/usr/bin/env python3
"""The UNet of tests/data/tiny-sd1.safetensors evaluated at a latent size that does not
halve evenly (9x7: the one downsampling gives 5x4, the upsampling returns to 9x7 as
diffusers does), for test_models (issue 18 item 12: any multiple of 8).

    /usr/bin/python3 tools/oracle/make_odd_golden.py   ->  tests/data/golden-tiny-sd1-odd.safetensors

Keys as golden-tiny-sd1's: unet_x [T, 2, 4, h, w], unet_t [T], unet_context [2, 77, C],
unet_out [T, 2, 4, h, w]."""
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_goldens as mg  # noqa: E402
import sd_model  # noqa: E402

HW = (9, 7)


def main():
    torch.set_num_threads(2)
    ck = os.path.join(mg.DATA, "tiny-sd1.safetensors")
    sd, meta = mg.read_safetensors(ck)
    cfg = mg.CONFIGS["sd1"]
    model = sd_model.StableDiffusion(cfg).eval()
    model.load_state_dict({k: (v.float() if v.dtype == torch.float16 else v)
                           for k, v in sd.items() if k != "alphas_cumprod"}, strict=True)
    g = torch.Generator().manual_seed(1818)
    T = 2
    xs = torch.randn((T, 2, 4) + HW, generator=g)
    ts = torch.tensor([999.0, 261.75])
    ctx = torch.randn((2, 77, cfg["unet"]["context_dim"]), generator=g)
    with torch.no_grad():
        outs = torch.stack([model.model.diffusion_model(xs[i], torch.full((2,), float(ts[i])), ctx)
                            for i in range(T)])
    out = os.path.join(mg.DATA, "golden-tiny-sd1-odd.safetensors")
    mg.write_safetensors(out, {"unet_x": xs, "unet_t": ts, "unet_context": ctx, "unet_out": outs.contiguous()},
                         {"vkdiff.oracle": "tools/oracle/make_odd_golden.py",
                          "note": json.dumps(f"tiny-sd1 UNet at latent {HW[0]}x{HW[1]}: upsampling to the skip's size")})
    print(out, os.path.getsize(out), "B; out std", float(outs.std()))


if __name__ == "__main__":
    main()
