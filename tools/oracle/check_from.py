#!/usr/bin/python3
"""Check tools/make_checkpoint.py --from: every tensor of the diffusers folder it wrote maps
back (through the maker's own name tables and transforms) to the identical array of the
CompVis/sgm source file, and nothing is left over on either side.

    /usr/bin/python3 tools/make_checkpoint.py sdxl /tmp/xl --layout diffusers --from tests/data/tiny-sdxl.safetensors
    /usr/bin/python3 tools/oracle/check_from.py sdxl tests/data/tiny-sdxl.safetensors /tmp/xl

numpy only. Also rebuilds each split OpenCLIP in_proj (q;k;v) and the transposed
text_projection from the diffusers side and compares them with the source bit-exactly."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import make_checkpoint as mc  # noqa: E402


def read(path):
    h, base, _ = mc.read_header(path)
    raw = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "I64": np.int64}
    buf = open(path, "rb").read()
    return {n: np.frombuffer(buf[base + e["data_offsets"][0]:base + e["data_offsets"][1]],
                             dtype=raw[e["dtype"]]).reshape(e["shape"]) for n, e in h.items()}


def main():
    config, src, folder = sys.argv[1:4]
    header, _, _ = mc.read_header(src)
    cfg = mc.cfg_from_file(mc.CONFIGS[config], header)
    S = read(src)
    D = {}
    for root, _, files in os.walk(folder):
        for f in files:
            if f.endswith(".safetensors"):
                rel = os.path.relpath(os.path.join(root, f), folder)
                D.update({(rel, n): a for n, a in read(os.path.join(root, f)).items()})
    seen, unmapped = set(), []
    for name, a in S.items():
        tg = mc.diffusers_targets(name, cfg)
        if not tg:
            unmapped.append(name)
        parts = []
        for f, dn, x in tg:
            assert (f, dn) in D, (name, f, dn)
            assert (f, dn) not in seen, ("written twice", f, dn)
            seen.add((f, dn))
            want = x(a) if x else a
            got = D[(f, dn)]
            assert got.shape == want.shape and got.dtype == want.dtype and np.array_equal(got, want), (name, dn)
            parts.append(got)
        if parts and (name.endswith("attn.in_proj_weight") or name.endswith("attn.in_proj_bias")):
            assert np.array_equal(np.concatenate(parts, 0), a), name      # q;k;v back to in_proj
        if name.endswith("text_projection") and parts:
            assert np.array_equal(parts[0].T, a), name                    # Linear weight [proj, W] = P.T
    left = sorted(set(D) - seen)
    assert not left, left[:5]
    print(f"{len(S)} source tensors, {len(D)} diffusers tensors: all map back bit-exactly; "
          f"not carried over: {unmapped}")


if __name__ == "__main__":
    main()
