#!/usr/bin/env python3
"""Write the seed corpora of the fuzz targets that have generated seeds:

    tools/fuzz_seeds.py [CORPUS_DIR]      (default tests/fuzz_corpus)

  tokenizer/  prompts (first byte: the mode, see tests/fuzz_tokenizer.c), a short
              bpe_simple_vocab text and a small vocab.json + merges.txt pair
  prompt/     prompts (first byte: the flags, see tests/fuzz_prompt.c)
  detect/     the tiny checkpoints' safetensors headers (tools/make_checkpoint.py
              tiny-sd1/tiny-sd2/tiny-sdxl, data cut off; the harness pads the data
              with zeros) holding the tensors detection reads (tiny-sd1's also in
              full), and the same subsets as tensor lists (tests/fuzz_detect.c)

  gguf/       small valid GGUF files without their magic (tests/fuzz_gguf.c puts it
              back): every tensor type vkdiff reads,
              one block each, with scalar, string and nested-array key/values; versions
              2 and 3; general.alignment 64

safetensors/ is hand-made and not touched; image/ is written by test_image
(VKD_IMAGE_SEEDS=DIR ./test_image), which has libjpeg. Output is deterministic; only numpy is
needed (make_checkpoint.py's key lists, no weights are computed). Never add the CLIP
vocabulary (shared/clip/) to a corpus: the built-in seeds here stand in for it.
"""
import importlib.util
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def load_make_checkpoint():
    spec = importlib.util.spec_from_file_location("make_checkpoint", os.path.join(HERE, "make_checkpoint.py"))
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


def write(d, name, data):
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


PROMPTS = {
    "plain": "a photo of a cat",
    "emphasis": "(masterpiece:1.2), ((best quality)), [blurry], (((sharp))) cat, [[dim:0.5]]",
    "break": "a red house BREAK a blue sky BREAKfast, BREAK",
    "escapes": "\\(literal\\) \\[square\\] back\\\\slash \\x (a:.5) (b:+1.) (c:-0.25)",
    "badweight": "(a:1.2.3) cat",
    "nested": "((a [b (c:1.5) d] e):0.8) f] g) (h",
    "unicode": "caf\u00e9 \u6771\u4eac \U0001f431 \u03a9mega \u00c9COLE stra\u00dfe \u0130",
    "html": "&amp; &lt;3 &#x1F431; &#39;quoted&#39; &nbsp;spaced&nbsp; &unknown;",
    "specials": "<|startoftext|>hello<|endoftext|> world",
    "commas": ", ".join(f"word{i}" for i in range(60)),
    "long": " ".join(["an astronaut riding a horse on the moon, highly detailed"] * 12),
    "spaces": "  \t\n  a   b \u3000 c \u2028 ",
}


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def tiny_hf_vocab():
    """A CLIP-style vocabulary: the 512 byte tokens, a few merges, the specials."""
    toks = bytes_to_unicode()
    vocab = {}
    for t in toks:
        vocab[t] = len(vocab)
    for t in toks:
        vocab[t + "</w>"] = len(vocab)
    merges = [("c", "a"), ("ca", "t</w>"), ("t", "h"), ("th", "e</w>"), ("a", "n"), ("an", "d</w>")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    mtext = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges)
    return json.dumps(vocab, ensure_ascii=False, separators=(",", ":")), mtext


def tokenizer_seeds(d):
    for i, (name, p) in enumerate(PROMPTS.items()):
        write(d, name, bytes([i & 0x0F]) + p.encode())
    write(d, "badutf8", b"\x00abc\xff \xc3 \xed\xa0\x80 \xf4\x90\x80\x80")
    write(d, "bpe_short", b"\xf0#version: 0.2\ni n\nt h\nth e</w>\n")
    vocab, merges = tiny_hf_vocab()
    write(d, "hf_vocab", b"\xf8" + vocab.encode() + b"\x00" + merges.encode())
    write(d, "hf_badmerge", b"\xf8" + vocab.encode() + b"\x00#version: 0.2\nzz qq\n")


def prompt_seeds(d):
    # flags: bit 0 pad zero, bit 1 emphasis off, bits 2-3 backtrack (20, 0, 74, 1), bit 4 tiny vocab
    for i, (name, p) in enumerate(PROMPTS.items()):
        write(d, name, bytes([i % 32]) + p.encode())
        write(d, name + "_tiny", bytes([0x10 | (i % 16)]) + p.encode())
    write(d, "plain_noemph_nobacktrack", b"\x06" + PROMPTS["long"].encode())
    write(d, "badutf8", b"\x00abc\xff (x:1.5) \xc3")


# The tensors vkd_model_detect reads (host/models/detect.c); the rest of a model only
# matters to vkd_model_expected.
def read_by_detect(name):
    keys = ("input_blocks.0.0.weight", "out.2.weight", "time_embed.0.weight", "label_emb.0.0.weight",
            ".0.op.weight", "in_layers.2.weight", ".norm1.weight", "proj_in.weight", "attn2.to_k.weight",
            "encoder.conv_in.weight", "post_quant_conv.weight", "decoder.conv_out.weight",
            "token_embedding.weight", "position_embedding.weight", "positional_embedding",
            "layer_norm1.weight", "ln_1.weight", "mlp.fc1.weight", "mlp.c_fc.weight", "text_projection",
            "attn.in_proj_weight", "attn.in_proj_bias")  # (the last two: OpenCLIP's q/k/v row slices)
    if "decoder.up." in name:
        return name.endswith(".conv1.weight")
    return any(name.endswith(k) for k in keys)


def detect_seeds(d, mc):
    for cfg in ("tiny-sd1", "tiny-sd2", "tiny-sdxl"):
        spec = mc.compvis_spec(mc.CONFIGS[cfg], 49408, False)
        dt = lambda init: "I64" if init[0] == "i64" else "F16"
        size = {"I64": 8, "F16": 2}

        def header(entries):
            h, off = {}, 0
            for name, shape, init in entries:
                n = 1
                for s in shape:
                    n *= s
                nb = n * size[dt(init)]
                h[name] = {"dtype": dt(init), "shape": list(shape), "data_offsets": [off, off + nb]}
                off += nb
            h["__metadata__"] = {"format": "pt"}
            hb = json.dumps(h, separators=(",", ":")).encode()
            hb += b" " * (-len(hb) % 8)
            return struct.pack("<Q", len(hb)) + hb  # the data cut off

        # whole headers are ~55 KB and run ~5x slower than the subsets: one of them
        if cfg == "tiny-sd1":
            write(d, f"{cfg}.header", header(spec))
        write(d, f"{cfg}.detect.header", header([e for e in spec if read_by_detect(e[0])]))

        def line(name, shape, init):
            dims = "x".join(str(s) for s in shape) if shape else "-"
            return f"{name} {dims}" + (" I64" if init[0] == "i64" else "") + "\n"

        lines = [line(*e) for e in spec if read_by_detect(e[0])]
        if cfg == "tiny-sd1":
            lines.append('@vkdiff.config {"unet":{"num_heads":4},"text":{"heads":2}}\n')
        write(d, f"{cfg}.detect.list", "".join(lines))
    # inpainting and a refusal (8 input channels)
    spec = mc.compvis_spec(mc.CONFIGS["tiny-sd1"], 49408, True)
    text = "".join(f"{n} {'x'.join(map(str, s)) or '-'}\n" for n, s, i in spec if read_by_detect(n))
    write(d, "tiny-sd1-inpaint.detect.list", text)
    write(d, "tiny-sd1-8ch.detect.list", text.replace(" 32x9x3x3", " 32x8x3x3"))
    # a VAE level whose first conv is not a conv: refused (crash-vae-level-not-conv, found
    # by this target, was a 2-level VAE, which detection now refuses before that)
    lines = [f"{n} {'x'.join(map(str, s)) or '-'}\n" for n, s, i in mc.compvis_spec(mc.CONFIGS["tiny-sd1"], 49408, False)
             if read_by_detect(n)]
    text = "".join(l.replace("x3x3\n", "\n") if l.startswith("first_stage_model.decoder.up.1.block.0.conv1.weight ") else l
                   for l in lines)
    write(d, "tiny-sd1-vae-level-not-conv.detect.list", text)
    # a vocabulary of 100 rows: data under 1 MiB, so the weight check reads the values
    text = "".join(f"{n} {'x'.join(map(str, s)) or '-'}\n" for n, s, i in mc.compvis_spec(mc.CONFIGS["tiny-sd1"], 100, False)
                   if read_by_detect(n))
    write(d, "tiny-sd1-vocab100.detect.list", text)


def gguf_seeds(d):
    def gstr(t):
        b = t.encode()
        return struct.pack("<Q", len(b)) + b

    # ggml type id -> (values per block, bytes per block)
    types = {0: (1, 4), 1: (1, 2), 30: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
             10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210)}

    def gguf(version, align, tensors, kvs):
        """tensors: [(name, ne list, type id, payload)]"""
        kv = b""
        if align != 32:
            kv += gstr("general.alignment") + struct.pack("<II", 4, align)
        for k, blob in kvs:
            kv += gstr(k) + blob
        infos, off = b"", 0
        for name, ne, t, payload in tensors:
            infos += gstr(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", x) for x in ne)
            infos += struct.pack("<IQ", t, off)
            off += (len(payload) + align - 1) // align * align
        nkv = len(kvs) + (align != 32)
        out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), nkv) + kv + infos
        out += b"\0" * (-len(out) % align)
        for *_, payload in tensors:
            out += payload + b"\0" * (-len(payload) % align)
        return out

    def payload(t, n):
        bk, bb = types[t]
        # deterministic bytes; the fp16 scales of block types land on small values
        raw = bytearray((i * 37 + t) % 251 for i in range(n // bk * bb))
        if bk > 1:
            for b in range(n // bk):
                for o in range(bb):
                    if (t in (2, 3, 6, 7, 8) and o in (1, 3)) or (t >= 10 and o in (1, 3, bb - 1, bb - 3)):
                        raw[b * bb + o] = 0x2c
        return bytes(raw)

    kvs = [("general.architecture", struct.pack("<I", 8) + gstr("sd1")),
           ("general.file_type", struct.pack("<II", 4, 7)),
           ("v.f32", struct.pack("<If", 6, 0.5)),
           ("v.bool", struct.pack("<IB", 7, 1)),
           ("v.i64", struct.pack("<Iq", 11, -3)),
           ("v.strings", struct.pack("<IIQ", 9, 8, 2) + gstr("a") + gstr("bc")),
           ("v.nested", struct.pack("<IIQ", 9, 9, 1) + struct.pack("<IQ", 4, 2) + struct.pack("<II", 1, 2))]
    every = [(f"t{t}", [types[t][0] * 1 if types[t][0] > 1 else 8, 2] if types[t][0] == 32 else
              ([256] if types[t][0] == 256 else [8, 2]), t, None) for t in types]
    every = [(n, ne, t, payload(t, ne[0] * (ne[1] if len(ne) > 1 else 1))) for n, ne, t, _ in every]
    # the target puts the magic "GGUF" in front of every input: the seeds go without it
    write(d, "every_type.gguf", gguf(3, 32, every, kvs)[4:])
    small = [("model.diffusion_model.input_blocks.1.1.proj_in.weight", [32, 2], 8, payload(8, 64)),
             ("model.diffusion_model.input_blocks.1.1.proj_in.bias", [2], 0, payload(0, 2))]
    write(d, "sd_names_q8_0.gguf", gguf(3, 32, small, kvs[:1])[4:])
    write(d, "v2_align64.gguf", gguf(2, 64, small, [])[4:])
    write(d, "empty.gguf", gguf(3, 32, [], kvs[:2])[4:])


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "tests", "fuzz_corpus")
    mc = load_make_checkpoint()
    tokenizer_seeds(os.path.join(root, "tokenizer"))
    prompt_seeds(os.path.join(root, "prompt"))
    detect_seeds(os.path.join(root, "detect"), mc)
    gguf_seeds(os.path.join(root, "gguf"))
    total = 0
    for sub in ("tokenizer", "prompt", "detect", "gguf"):
        for f in os.listdir(os.path.join(root, sub)):
            total += os.path.getsize(os.path.join(root, sub, f))
    print(f"fuzz seeds written under {root}: {total / 1024:.0f} KiB", file=sys.stderr)


if __name__ == "__main__":
    main()
