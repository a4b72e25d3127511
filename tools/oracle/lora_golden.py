#!/usr/bin/python3
"""LoRA goldens: a tiny checkpoint (tests/data/tiny-FAMILY.safetensors) with LoRA deltas
merged into its weights in PyTorch, then the text-encoder and UNet goldens of
make_goldens.py recomputed on the merged model.

    /usr/bin/python3 tools/oracle/lora_golden.py sd1 OUT.safetensors A.deltas.safetensors:0.5 [B...:W]
    /usr/bin/python3 tools/oracle/lora_golden.py --all      # tests/data/lora/, test_lora_apply's cases

--all draws each case's LoRA with tools/make_lora.py (numpy only, seeded: the test draws
the same file again at test time) and writes tests/data/lora/golden-<case>.safetensors,
so the tests need no torch.

The deltas are tools/make_lora.py's: each target's dW = scale * (the format's product of
its factors), computed in numpy float64 from the factors it drew, keyed by internal names;
W += weight * dW here, in float64, rounded once to fp32. Independent of the C side's
LoRA code (names, scales, formats, device kernel). Internal text-encoder names are HF
CLIP's; an OpenCLIP checkpoint (SD2, SDXL's second encoder) keeps q, k, v as the row
thirds of attn.in_proj_weight and the other leaves under open_clip names
(make_checkpoint.openclip_to_hf, inverted here)."""
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))
import make_goldens as mg  # noqa: E402
import make_checkpoint as mc  # noqa: E402
import sd_model  # noqa: E402

OPENCLIP = {"sd2": [("cond_stage_model.model.", "cond_stage_model.transformer.")],
            "sdxl": [("conditioner.embedders.1.model.", "conditioner.embedders.1.transformer.")]}


def internal_to_checkpoint(sd, fam, cfg):
    """internal (HF) name -> (checkpoint name, row slice or None) for the OpenCLIP encoders."""
    m = {}
    for src, dst in OPENCLIP.get(fam, []):
        width = next(t for t in cfg["te"] if t["prefix"] == src)["width"]
        for k in sd:
            if k.startswith(src):
                for i, (hf, _) in enumerate(mc.openclip_to_hf(k[len(src):], width)):
                    rows = slice(i * width, (i + 1) * width) if "in_proj" in k else None
                    m[dst + hf] = (k, rows)
    return m


# (case, family, [(format, seed, weight)]): tests/test_lora_apply.c runs the same list
CASES = [(f"{fam}-{fmt}", fam, [(fmt, 3, 0.15 if fam == "sdxl" else 0.4)])
         for fam in ("sd1", "sd2", "sdxl") for fmt in ("kohya", "locon", "loha", "lokr", "peft")]
CASES.append(("sd1-two", "sd1", [("kohya", 3, 0.4), ("loha", 5, -0.7)]))
KEEP = ("tokens", "context", "context_skip2", "context_last", "tokens_l", "tokens_g", "context_l", "context_g",
        "pooled", "unet_x", "unet_t", "unet_context", "unet_y", "unet_out")


def make_all(only=None):
    import subprocess
    import tempfile
    out_dir = os.path.join(mg.DATA, "lora")
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for case, fam, loras in CASES:
            if only and case not in only:
                continue
            specs = []
            for fmt, seed, weight in loras:
                f = os.path.join(tmp, f"{fam}-{fmt}-{seed}.safetensors")
                subprocess.run([sys.executable, os.path.join(HERE, "..", "make_lora.py"),
                                os.path.join(mg.DATA, f"tiny-{fam}.safetensors"), f, "--format", fmt, "--rank", "4",
                                "--seed", str(seed)], check=True, stdout=subprocess.DEVNULL)
                specs.append(f"{f}.deltas.safetensors:{weight}")
            write(fam, os.path.join(out_dir, f"golden-{case}.safetensors"), specs)


def main():
    if sys.argv[1:2] == ["--all"]:  # --all [CASE...]: only these
        return make_all(sys.argv[2:])
    write(sys.argv[1], sys.argv[2], sys.argv[3:])


def write(fam, out, specs):
    torch.set_num_threads(2)
    ck = os.path.join(mg.DATA, f"tiny-{fam}.safetensors")
    sd, _ = mg.read_safetensors(ck)
    header, _, _ = mc.read_header(ck)
    mcfg = mc.cfg_from_file(mc.CONFIGS[f"tiny-{fam}"], header)
    names = internal_to_checkpoint(sd, fam, mcfg)
    w = {k: v.double() if v.is_floating_point() else v for k, v in sd.items() if k != "alphas_cumprod"}
    touched = 0
    for spec in specs:
        path, weight = spec.rsplit(":", 1)
        deltas, _ = mg.read_safetensors(path)
        for k, d in deltas.items():
            ck_name, rows = names.get(k, (k, None))
            assert ck_name in w, f"{k}: no such checkpoint tensor"
            tgt = w[ck_name] if rows is None else w[ck_name][rows]
            assert tgt.shape == d.shape, (k, tgt.shape, d.shape)
            tgt += float(weight) * d.double()
            touched += 1
    cfg = mg.CONFIGS[fam]
    model = sd_model.StableDiffusion(cfg).eval()
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in w.items()}, strict=True)
    with torch.no_grad():
        G, calls = mg.goldens_sdxl(model, cfg) if fam == "sdxl" else mg.goldens(model, cfg)
    meta = mg.golden_metadata_sdxl(cfg, calls) if fam == "sdxl" else mg.golden_metadata(cfg, calls)
    meta["vkdiff.lora"] = " ".join(os.path.basename(x) for x in specs)
    mg.write_safetensors(out, {k: v.contiguous() for k, v in G.items() if k in KEEP}, meta)
    print(f"{out}: {fam} with {len(specs)} LoRA(s), {touched} tensors changed; "
          f"unet_out std {G['unet_out'].std():.3f}, context std {G['context'].std():.3f}")


if __name__ == "__main__":
    main()
