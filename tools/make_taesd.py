#!/usr/bin/env python3
"""Write a deterministic random-weight TAESD / TAESDXL file (numpy only, no torch).

    make_taesd.py OUT [--model taesd|taesdxl] [--layout madebyollin|diffusers|comfy]
                  [--part both|decoder|encoder] [--width 64] [--latent 4]
                  [--dtype f32|f16] [--folder]

The network is madebyollin/taesd taesd.py's Decoder()/Encoder() (docs/taesd.md). Values
come from numpy's PCG64 seeded by (model, width, latent channels, tensor name), so the
same arguments give the same numbers in every layout and dtype; taesd and taesdxl get
different weights, as the real ones are. Widths other than 64 are the same architecture
with fewer channels (the tiny test sizes; the trained shapes decoder).

Layouts (the keys people's files have):
  madebyollin  decoder keys "1.weight", "3.conv.0.weight", ... (taesd_decoder.safetensors),
               encoder keys "0.weight", ... (taesd_encoder.safetensors). --part both writes
               a folder OUT/ with taesd[xl]_decoder.safetensors and _encoder.safetensors;
               --part decoder|encoder writes the one file OUT.
  diffusers    AutoencoderTiny: "decoder.layers.N" = taesd.py's N + 1, "encoder.layers.N"
               = N; one file OUT, or with --folder OUT/diffusion_pytorch_model.safetensors
               and config.json.
  comfy        "taesd_decoder.N..." / "taesd_encoder.N..." in one file.
"""
import argparse
import hashlib
import json
import os
import struct
import sys

import numpy as np

# what each Sequential index of taesd.py holds: "c" conv with bias, "n" conv without, "b" Block
DECODER = [None, "c", None, "b", "b", "b", None, "n", "b", "b", "b", None, "n", "b", "b", "b", None, "n", "b", "c"]
ENCODER = ["c", "b", "n", "b", "b", "b", "n", "b", "b", "b", "n", "b", "b", "b", "c"]


def shapes(layers, width, first, first_in, last_out):
    """(name, shape) of every tensor of one network, names as taesd.py's state_dict"""
    out = []
    for i, kind in enumerate(layers):
        if kind == "b":
            for k in (0, 2, 4):
                out.append((f"{i}.conv.{k}.weight", (width, width, 3, 3)))
                out.append((f"{i}.conv.{k}.bias", (width,)))
        elif kind:
            cin = first_in if i == first else width
            cout = last_out if i == len(layers) - 1 else width
            out.append((f"{i}.weight", (cout, cin, 3, 3)))
            if kind == "c":
                out.append((f"{i}.bias", (cout,)))
    return out


def rng_for(model, width, latent, name):
    h = hashlib.blake2b(f"{model}/{width}/{latent}/{name}".encode(), digest_size=8).digest()
    return np.random.default_rng(int.from_bytes(h, "little"))


def make(model, width, latent):
    """{"decoder": {name: array}, "encoder": {...}} in taesd.py's naming, fp32. Scaled so
    activations stay O(1) through the ten residual Blocks (weights ~ N(0, 1/fan_in) with
    the Blocks' last conv smaller), and the biases small."""
    nets = {"decoder": shapes(DECODER, width, 1, latent, 3), "encoder": shapes(ENCODER, width, 0, 3, latent)}
    out = {}
    for net, lst in nets.items():
        d = {}
        for name, shp in lst:
            r = rng_for(model, width, latent, f"{net}.{name}")
            if name.endswith("bias"):
                d[name] = (0.1 * r.standard_normal(shp)).astype(np.float32)
            else:
                fan_in = shp[1] * shp[2] * shp[3]
                gain = 0.5 if ".conv.4." in name else 1.2
                d[name] = (gain / np.sqrt(fan_in) * r.standard_normal(shp)).astype(np.float32)
        out[net] = d
    return out


def write_safetensors(path, tensors, metadata=None):
    header, blobs, off = {}, [], 0
    for name, a in tensors.items():
        code = {np.float32: "F32", np.float16: "F16"}[a.dtype.type]
        b = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": code, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def read_safetensors(path):
    """{name: np.ndarray} (F32/F16 as stored)"""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    header.pop("__metadata__", None)
    inv = {"F32": np.float32, "F16": np.float16}
    return {k: np.frombuffer(data[h["data_offsets"][0]:h["data_offsets"][1]], dtype=inv[h["dtype"]]).reshape(h["shape"])
            for k, h in header.items()}


def rename(net, name, layout):
    """taesd.py name -> the layout's key"""
    if layout == "madebyollin":
        return name
    if layout == "comfy":
        return f"taesd_{net}.{name}"
    i, rest = name.split(".", 1)
    return f"{net}.layers.{int(i) - 1 if net == 'decoder' else int(i)}.{rest}"


def save(w, out, model, layout, part, dtype, folder, width, latent):
    np_dt = np.float16 if dtype == "f16" else np.float32
    nets = ["decoder", "encoder"] if part == "both" else [part]
    meta = {"taesd_model": model, "taesd_width": width}
    if layout == "madebyollin" and part == "both":
        os.makedirs(out, exist_ok=True)
        for net in nets:
            write_safetensors(os.path.join(out, f"{model}_{net}.safetensors"),
                              {k: v.astype(np_dt) for k, v in w[net].items()}, meta)
        return
    t = {rename(net, k, layout): v.astype(np_dt) for net in nets for k, v in w[net].items()}
    if folder:
        os.makedirs(out, exist_ok=True)
        write_safetensors(os.path.join(out, "diffusion_pytorch_model.safetensors"), t, meta)
        cfg = {"_class_name": "AutoencoderTiny", "latent_channels": latent, "scaling_factor": 1.0,
               "latent_magnitude": 3, "latent_shift": 0.5, "encoder_block_out_channels": [width] * 4,
               "decoder_block_out_channels": [width] * 4, "num_encoder_blocks": [1, 3, 3, 3],
               "num_decoder_blocks": [3, 3, 3, 1], "act_fn": "relu", "upsample_fn": "nearest"}
        with open(os.path.join(out, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
    else:
        write_safetensors(out, t, meta)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--model", choices=["taesd", "taesdxl"], default="taesd")
    ap.add_argument("--layout", choices=["madebyollin", "diffusers", "comfy"], default="madebyollin")
    ap.add_argument("--part", choices=["both", "decoder", "encoder"], default="both")
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--latent", type=int, default=4)
    ap.add_argument("--dtype", choices=["f32", "f16"], default="f32")
    ap.add_argument("--folder", action="store_true", help="diffusers: a folder with config.json")
    a = ap.parse_args()
    if a.layout == "madebyollin" and a.folder:
        sys.exit("--folder is for --layout diffusers (madebyollin's pair is a folder already)")
    save(make(a.model, a.width, a.latent), a.out, a.model, a.layout, a.part, a.dtype, a.folder, a.width, a.latent)


if __name__ == "__main__":
    main()
