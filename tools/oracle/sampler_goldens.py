#!/usr/bin/python3
"""Tiny-SD1 pipeline goldens for the issue-27 samplers (lms, dpm++2m_sde, uni_pc, dpm2).

    /usr/bin/python3 tools/oracle/sampler_goldens.py  ->  tests/data/golden-samplers-sd1.safetensors

As make_goldens.py's run_pipeline, on the shipped tests/data/tiny-sd1.safetensors (loaded
the way make_goldens --check reloads it: F16 weights widened to F32, computed in fp32):
context = the tiny CLIP's encoding of make_goldens' SD1 tokens (row 0 cond, row 1 uncond;
checked bit-exact against golden-tiny-sd1's "context"), seed 1234, torch CPU randn
[1, 4, 6, 8] (pipe_noise), 4 steps, cfg 7, discrete schedule (k-diffusion get_sigmas;
pipe_sigmas), x0 = noise * sigmas[0], CFG on the denoised output (make_goldens.CFGModel),
the samplers from sampling_more.py with every further noise draw randn([1, 4, 6, 8]) from
the same generator. dpm2 uses A1111's discard_next_to_last_sigma (its schedule is
pipe_dpm2_sigmas); uni_pc is ComfyUI's sample_unipc (bh1) with ComfyUI's KSampler discard of
the penultimate sigma (pipe_uni_pc_sigmas), as vkdiff runs it; the others use pipe_sigmas. Keys: context, pipe_noise, pipe_sigmas,
pipe_dpm2_sigmas, pipe_<name>_latent, pipe_<name>_image (decode(latent / 0.18215), before
clamp), name with "++" -> "pp": lms, dpm2, dpmpp2m_sde, uni_pc.
"""
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import make_goldens as mg  # noqa: E402
import sampling_more as sm  # noqa: E402
import sampling_ref as sr  # noqa: E402
import sd_model  # noqa: E402

OUT = os.path.join(mg.DATA, "golden-samplers-sd1.safetensors")
NAMES = ["lms", "dpm2", "dpm++2m_sde", "uni_pc"]


def main():
    torch.set_num_threads(2)
    cfg = mg.CONFIGS["sd1"]
    sd, _ = mg.read_safetensors(os.path.join(mg.DATA, "tiny-sd1.safetensors"))
    model = sd_model.StableDiffusion(cfg).eval()
    model.load_state_dict({k: (v.float() if v.dtype == torch.float16 else v)
                           for k, v in sd.items() if k != "alphas_cumprod"}, strict=True)
    acp = sr.compvis_alphas_cumprod()
    sched = sr.DiscreteSchedule(((1 - acp) / acp) ** 0.5)
    shape = (1, 4) + mg.PIPE_HW
    G, calls, draws = {}, {}, {}
    with torch.no_grad():
        ctx = model.encode_text(mg.make_tokens("sd1"))
        ref, _ = mg.read_safetensors(os.path.join(mg.DATA, "golden-tiny-sd1.safetensors"))
        assert torch.equal(ctx, ref["context"]), "context differs from golden-tiny-sd1's"
        G["context"] = ctx
        G["pipe_sigmas"] = sched.get_sigmas(mg.PIPE_STEPS)
        g = torch.Generator().manual_seed(mg.PIPE_SEED)
        G["pipe_noise"] = torch.randn(shape, generator=g)
        for name in NAMES:
            # A1111's discard for its samplers; ComfyUI's KSampler discards for uni_pc
            discard = name in sm.DISCARD_PENULTIMATE or name.startswith("uni_pc")
            sigmas = sm.a1111_sigmas("discrete", mg.PIPE_STEPS, sched, discard)
            key = name.replace("++", "pp")
            if discard:
                G[f"pipe_{key}_sigmas"] = sigmas.clone()
            g = torch.Generator().manual_seed(mg.PIPE_SEED)
            noise = torch.randn(shape, generator=g)
            n = [0]

            def ns(sigma, sigma_next):
                n[0] += 1
                return torch.randn(shape, generator=g)
            m = mg.CFGModel(model.unet, cfg["prediction"], acp, ctx, mg.PIPE_CFG)
            x = sm.SAMPLERS[name](m, noise * sigmas[0], sigmas, ns)
            calls[name], draws[name] = m.calls, n[0]
            G[f"pipe_{key}_latent"] = x
            G[f"pipe_{key}_image"] = model.vae.decode(x / model.scale_factor)
    meta = {"format": "pt", "vkdiff.oracle": "tools/oracle/sampler_goldens.py",
            "vkdiff.goldens": json.dumps({
                "model": "tests/data/tiny-sd1.safetensors (eps), fp32",
                "pipeline": f"seed {mg.PIPE_SEED} torch CPU randn {list(shape)} (pipe_noise), {mg.PIPE_STEPS} "
                            f"steps, cfg {mg.PIPE_CFG}, discrete schedule (pipe_sigmas; dpm2: "
                            "pipe_dpm2_sigmas after A1111's discard_next_to_last_sigma; uni_pc: pipe_uni_pc_sigmas "
                            "after ComfyUI's KSampler discard), x0 = noise * sigma_0, "
                            "further noise randn of the same shape from the same generator in source order "
                            "(dpm++2m_sde: one per step but the last, plain noise, not a Brownian tree; dpm2: "
                            "k-diffusion's unused randn_like per step)",
                "samplers": {k: {"calls": calls[k], "noise_draws": draws[k]} for k in NAMES},
                "source": "tools/oracle/sampling_more.py (k-diffusion sample_lms order 4, sample_dpm_2, "
                          "sample_dpmpp_2m_sde midpoint eta 1; ComfyUI uni_pc.sample_unipc bh1)"})}
    mg.write_safetensors(OUT, {k: v.contiguous() for k, v in G.items()}, meta)
    print(f"wrote {os.path.normpath(OUT)} ({os.path.getsize(OUT)} bytes); calls {calls}; draws {draws}")
    for k, v in G.items():
        print(f"  {k}: {tuple(v.shape)} std {v.float().std():.4f}")


if __name__ == "__main__":
    main()
