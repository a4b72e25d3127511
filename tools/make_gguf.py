#!/usr/bin/env python3
"""Write a GGUF file from a safetensors checkpoint the way stable-diffusion.cpp's
convert mode does (`sd -M convert -m in.safetensors -o out.gguf --type TYPE`):

    make_gguf.py IN.safetensors OUT.gguf --type q8_0|q4_0|q4_1|q5_0|q5_1|q4_k|q6_k|f16

* Names: the checkpoint's own (sd.cpp renames only with --convert-name, which is off
  by default), so a CompVis/sgm single file keeps its CompVis names. --convert-name
  renames the text encoders as sd.cpp's does (see convert_name).
* Which tensors change type (sd.cpp ModelLoader::tensor_should_be_converted): every
  tensor is converted to TYPE except
    - for a block type, one whose rows (ggml ne[0], the LAST dimension) are not a whole
      number of blocks: every 3x3 and 1x1 conv of SD (rows of 3 or 1), and rows of
      narrow layers;
    - names ending ".bias", ".scale", ".weight_scale";
    - names containing "time_embed.", "label_emb." (the UNet's timestep and class
      embedding MLPs) or "embedding" (token and position embeddings);
  tensors that are not converted keep their stored type (F16, F32, BF16).
* Quantizers: sd.cpp's convert_tensor passes ggml_quantize_chunk a dummy importance
  matrix of ones, so ggml runs its weighted quantizers (quantize_row_*_impl; Q8_0 has
  one path only), per row of ne[0] values: tools/oracle/quant_ref.py quantize_sdcpp.
  --reference uses ggml's reference quantizers (quantize_row_*_ref, no matrix) instead.
* Layout: GGUF version 3, no key/values from sd.cpp (gguf_init_empty) -- this tool
  adds the safetensors __metadata__ strings as string key/values, which sd.cpp drops --
  tensors in the input's order, each at a multiple of 32 bytes (GGUF_DEFAULT_ALIGNMENT),
  n_dims as ggml_n_dims (trailing ne of 1 dropped, so a [1, 77] tensor becomes [77]).
* Stored types as sd.cpp's safetensors reader makes them: I64 (position_ids) becomes
  I32, F64 F32; BOOL and U8 tensors are not written. Names on sd.cpp's unused list
  (schedule buffers, CLIP position_ids, OpenCLIP logit_scale, model_ema.*) are dropped
  when sd.cpp reads the input, so they are not written either.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "oracle"))
import quant_ref  # noqa: E402

ALIGN = 32
GGML_TYPE = {"f32": 0, "f16": 1, "bf16": 30, "i32": 26}
for _t, (_bk, _bb, _id) in quant_ref.TYPES.items():
    GGML_TYPE[_t] = _id
# safetensors dtype -> the ggml type sd.cpp stores it as (src/model_io/safetensors_io.cpp:
# I64 becomes I32, F64 F32; F8 would become F16, not written here)
ST_DTYPE = {"F32": ("f32", np.float32), "F16": ("f16", np.float16), "BF16": ("bf16", None),
            "I64": ("i32", None), "I32": ("i32", None), "F64": ("f32", None)}


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    hdr = json.loads(raw[8:8 + n])
    meta = hdr.pop("__metadata__", {}) or {}
    base = 8 + n
    tensors = {}
    for name, v in hdr.items():
        b, e = v["data_offsets"]
        tensors[name] = (v["dtype"], list(v["shape"]), raw[base + b:base + e])
    return tensors, meta


OPEN_CLIP_FIXED = {  # name_conversion.cpp convert_open_clip_to_hf_clip_name, text tower
    "model.ln_final.bias": "transformer.text_model.final_layer_norm.bias",
    "model.ln_final.weight": "transformer.text_model.final_layer_norm.weight",
    "model.positional_embedding": "transformer.text_model.embeddings.position_embedding.weight",
    "model.token_embedding.weight": "transformer.text_model.embeddings.token_embedding.weight",
    "model.text_projection": "transformer.text_model.text_projection",
}
OPEN_CLIP_RESBLOCK = {
    "attn.in_proj_bias": "self_attn.in_proj.bias", "attn.in_proj_weight": "self_attn.in_proj.weight",
    "attn.out_proj.bias": "self_attn.out_proj.bias", "attn.out_proj.weight": "self_attn.out_proj.weight",
    "ln_1.bias": "layer_norm1.bias", "ln_1.weight": "layer_norm1.weight",
    "ln_2.bias": "layer_norm2.bias", "ln_2.weight": "layer_norm2.weight",
    "mlp.c_fc.bias": "mlp.fc1.bias", "mlp.c_fc.weight": "mlp.fc1.weight",
    "mlp.c_proj.bias": "mlp.fc2.bias", "mlp.c_proj.weight": "mlp.fc2.weight",
}


def convert_name(name):
    """stable-diffusion.cpp's --convert-name (name_conversion.cpp convert_tensor_name), the
    part that changes a CompVis/sgm SD1/SD2/SDXL checkpoint: the text encoders. The UNet
    and VAE conversions map diffusers names to the original ones and leave these as
    they are."""
    for a, b in (("conditioner.embedders.0.", "cond_stage_model."), ("conditioner.embedders.1.", "cond_stage_model.1.")):
        if name.startswith(a):
            name = b + name[len(a):]
    for prefix in ("cond_stage_model.1.", "cond_stage_model."):
        if name.startswith(prefix):
            rest = name[len(prefix):]
            rest = OPEN_CLIP_FIXED.get(rest, rest)
            rb = "model.transformer.resblocks."
            if rest.startswith(rb):
                idx, _, suffix = rest[len(rb):].partition(".")
                if suffix in OPEN_CLIP_RESBLOCK:
                    rest = f"transformer.text_model.encoder.layers.{idx}.{OPEN_CLIP_RESBLOCK[suffix]}"
            rest = rest.replace("transformer.text_projection.weight", "transformer.text_model.text_projection")
            return prefix + rest
    return name


# sd.cpp's unused_tensors (src/model_loader.cpp L36): names starting with these are
# dropped when the file is read, so convert never writes them
UNUSED = ("betas", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
          "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod",
          "posterior_variance", "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2",
          "cond_stage_model.transformer.text_model.embeddings.position_ids",
          "cond_stage_model.1.model.text_model.embeddings.position_ids",
          "cond_stage_model.transformer.vision_model.embeddings.position_ids", "cond_stage_model.model.logit_scale",
          "conditioner.embedders.0.transformer.text_model.embeddings.position_ids",
          "conditioner.embedders.0.model.logit_scale", "conditioner.embedders.1.model.logit_scale",
          "model.diffusion_model.time_embedding.cond_proj.weight", "unet.time_embedding.cond_proj.weight",
          "model_ema.decay", "model_ema.num_updates", "model_ema.diffusion_model", "embedding_manager",
          "denoiser.sigmas")


def should_convert(name, shape, dst):
    """sd.cpp's ModelLoader::tensor_should_be_converted (SD UNet/VAE/CLIP part)."""
    ne0 = shape[-1] if shape else 1
    if dst in quant_ref.TYPES and ne0 % quant_ref.TYPES[dst][0] != 0:
        return False
    if name.endswith(".bias") or name.endswith(".scale") or name.endswith(".weight_scale"):
        return False
    for s in ("img_in.", "txt_in.", "time_in.", "vector_in.", "guidance_in.", "final_layer.",  # FLUX
              "x_embedder.", "t_embedder.", "y_embedder.", "pos_embed", "context_embedder.",  # MMDiT
              "time_embed.", "label_emb.", "embedding"):
        if s in name:
            return False
    return True


def to_f32(dtype, data):
    if dtype == "F32":
        return np.frombuffer(data, "<f4").astype(np.float32)
    if dtype == "F16":
        return np.frombuffer(data, "<f2").astype(np.float32)
    if dtype == "BF16":
        return (np.frombuffer(data, "<u2").astype(np.uint32) << 16).view(np.float32)
    if dtype == "F64":
        return np.frombuffer(data, "<f8").astype(np.float32)
    raise ValueError(dtype)


def gguf_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def plan(tensors, dst):
    """[(name, shape, out_type, payload or None)] in the input's order (sd.cpp keeps its
    tensors in an insertion-ordered map, src/model.h String2TensorStorage); payload
    filled later."""
    out = []
    for name in tensors:
        dtype, shape, data = tensors[name]
        if dtype not in ST_DTYPE:
            continue
        integer = dtype in ("I64", "I32")
        t = dst if not integer and should_convert(name, shape, dst) else ST_DTYPE[dtype][0]
        out.append([name, shape, t, None])
    return out


def convert_all(tensors, items, reference=False):
    # quantize every tensor of one type in a single call: the oracle is vectorised
    # across blocks; blocks depend only on themselves and their row's mean square
    by_type = {}
    for it in items:
        name, shape, t, _ = it
        dtype, _, data = tensors[name]
        if dtype in ("I64", "I32"):  # only position_ids: never converted, I64 narrowed
            it[3] = np.frombuffer(data, "<i8" if dtype == "I64" else "<i4").astype("<i4").tobytes()
        elif dtype == "F64" and t == "f32":
            it[3] = to_f32(dtype, data).astype("<f4").tobytes()
        elif t == ST_DTYPE[dtype][0]:
            it[3] = data
        elif t == "f16":
            it[3] = to_f32(dtype, data).astype("<f2").tobytes()
        elif t == "f32":
            it[3] = to_f32(dtype, data).astype("<f4").tobytes()
        else:
            by_type.setdefault(t, []).append(it)
    for t, its in by_type.items():
        xs = [to_f32(tensors[it[0]][0], tensors[it[0]][2]) for it in its]
        bk, bb, _ = quant_ref.TYPES[t]
        if reference:
            q = quant_ref.quantize(t, np.concatenate(xs))
        else:
            sig = []
            for it, x in zip(its, xs):
                npr = it[1][-1]  # ggml ne[0]: the rows sd.cpp hands to ggml_quantize_chunk
                sig.append(np.repeat(quant_ref.row_sigma2(x.reshape(-1, npr)), npr // bk))
            blocks = np.concatenate(xs).reshape(-1, bk)
            q = quant_ref.quantize_blocks_sdcpp(t, blocks, np.concatenate(sig)).astype(np.uint8).tobytes()
        pos = 0
        for it, x in zip(its, xs):
            nbytes = x.size // bk * bb
            it[3] = q[pos:pos + nbytes]
            pos += nbytes


def write_gguf(path, items, meta):
    kv = b""
    for k in sorted(meta):
        kv += gguf_string(k) + struct.pack("<I", 8) + gguf_string(str(meta[k]))
    infos = b""
    offset = 0
    for name, shape, t, payload in items:
        ne = list(reversed(shape)) or [1]
        while len(ne) > 1 and ne[-1] == 1:  # ggml_n_dims
            ne.pop()
        infos += gguf_string(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d) for d in ne)
        infos += struct.pack("<IQ", GGML_TYPE[t], offset)
        offset += (len(payload) + ALIGN - 1) // ALIGN * ALIGN
    head = b"GGUF" + struct.pack("<IQQ", 3, len(items), len(meta)) + kv + infos
    head += b"\0" * ((-len(head)) % ALIGN)
    with open(path, "wb") as f:
        f.write(head)
        for _, _, _, payload in items:
            f.write(payload)
            f.write(b"\0" * ((-len(payload)) % ALIGN))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--type", required=True, choices=["f16"] + quant_ref.QUANTIZABLE)
    ap.add_argument("--convert-name", action="store_true", help="rename as sd.cpp's --convert-name does")
    ap.add_argument("--reference", action="store_true",
                    help="ggml's reference quantizers (no importance matrix) instead of sd.cpp's path")
    a = ap.parse_args()
    tensors, meta = read_safetensors(a.input)
    tensors = {k: v for k, v in tensors.items() if not k.startswith(UNUSED)}  # dropped at read, before renaming
    if a.convert_name:
        tensors = {convert_name(k): v for k, v in tensors.items()}
    items = plan(tensors, a.type)
    convert_all(tensors, items, a.reference)
    write_gguf(a.output, items, meta)
    nq = sum(1 for it in items if it[2] == a.type)
    print(f"{a.output}: {len(items)} tensors, {nq} as {a.type}, {os.path.getsize(a.output)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
