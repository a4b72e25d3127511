#!/usr/bin/python3
"""Pictures from the training generator, with their labels, for checking the adherence
judge in tests/test_adherence.c before it is trusted on generated pictures.

    /usr/bin/python3 tools/shapes/judge_data.py    # -> tests/data/shapes-judge.safetensors

U8 "images" [N, 64, 64, 3] (RGB, row-major) and I32 "labels" [N, 3] = (background colour,
shape colour, shape) as indices into the "colors" and "shapes" lists of the metadata.
"""
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
import make_goldens  # noqa: E402

N, SEED = 96, 4242     # not the training seed: same distribution, other pictures


def main():
    make_goldens.DT[torch.uint8] = ("U8", np.uint8)
    imgs, caps, labels = data.batch(SEED, 0, N)
    lab = np.array([[data.COLOR_NAMES.index(l["bg"]), data.COLOR_NAMES.index(l["color"]),
                     data.SHAPES.index(l["shape"])] for l in labels], np.int32)
    out = os.path.join(ROOT, "tests", "data", "shapes-judge.safetensors")
    make_goldens.write_safetensors(out, {"images": torch.from_numpy(imgs), "labels": torch.from_numpy(lab)},
                                   {"colors": json.dumps(data.COLOR_NAMES), "shapes": json.dumps(data.SHAPES),
                                    "captions": json.dumps(caps),
                                    "generated_by": f"tools/shapes/judge_data.py (data.sample seed {SEED})"})
    print(out, os.path.getsize(out))


if __name__ == "__main__":
    main()
