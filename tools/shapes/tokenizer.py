#!/usr/bin/python3
"""A small CLIP-format byte-level BPE vocabulary for the shapes model.

Same file formats and rules as openai/CLIP simple_tokenizer.py / HF CLIPTokenizer
(vocab.json token -> id, merges.txt with a "#version" line, words end in "</w>"), so
vkdiff's own tokenizer reads it unchanged. Ids follow CLIP's order: the 256 byte
symbols, the 256 byte symbols + "</w>", one id per merge, then <|startoftext|> and
<|endoftext|>. The merges are learned (classic BPE: most frequent adjacent pair first,
ties broken by the pair's text) from the words of the caption grammar until each of
them is a single token; any other text still tokenizes, byte by byte.

    /usr/bin/python3 tools/shapes/tokenizer.py --out weights/tokenizer
    /usr/bin/python3 tools/shapes/tokenizer.py --dir weights/tokenizer --encode "a red circle"
"""
import argparse
import collections
import html
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import data  # noqa: E402

try:
    import regex
except ImportError:   # Debian: python3-regex; the caption grammar is plain ASCII anyway
    regex = None

CONTEXT = 77
PATTERN = (r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|"""
           r"""[^\s\p{L}\p{N}]+""")
ASCII_PATTERN = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[a-z]+|[0-9]|[^\sa-z0-9]+"""


def byte_symbols():
    """GPT-2 / CLIP bytes_to_unicode: byte -> character, and the vocabulary order of bytes"""
    keep = list(range(ord('!'), ord('~') + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    table = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table, keep + [b for b in range(256) if b not in keep]


def learn_merges(words):
    """classic BPE on the word list (each word once, '</w>' on its last symbol)"""
    seqs = [list(w[:-1]) + [w[-1] + "</w>"] for w in words]
    merges = []
    while True:
        counts = collections.Counter()
        for s in seqs:
            for a, b in zip(s, s[1:]):
                counts[(a, b)] += 1
        if not counts:
            return merges
        best = max(counts.items(), key=lambda kv: (kv[1], tuple(-ord(ch) for ch in kv[0][0] + " " + kv[0][1])))[0]
        merges.append(best)
        for k, s in enumerate(seqs):
            out, i = [], 0
            while i < len(s):
                if i + 1 < len(s) and (s[i], s[i + 1]) == best:
                    out.append(s[i] + s[i + 1])
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            seqs[k] = out


def build(words=None):
    words = words or data.all_words()
    merges = learn_merges(words)
    table, order = byte_symbols()
    base = [table[b] for b in order]
    vocab = base + [s + "</w>" for s in base] + [a + b for a, b in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(vocab)}, merges


def write(out_dir):
    vocab, merges = build()
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "vocab.json"), "w") as f:
        json.dump(vocab, f, ensure_ascii=False, indent=0)
        f.write("\n")
    with open(os.path.join(out_dir, "merges.txt"), "w") as f:
        f.write("#version: 0.2 - learned by tools/shapes/tokenizer.py from the caption grammar\n")
        for a, b in merges:
            f.write(a + " " + b + "\n")
    return vocab, merges


class Tokenizer:
    """simple_tokenizer.py encode() on our files (no ftfy; html.unescape, whitespace
    clean, lower(), the CLIP word pattern, byte symbols, lowest-rank merge first)"""
    def __init__(self, vocab, merges):
        self.vocab = vocab
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.table, _ = byte_symbols()
        self.bos, self.eos = vocab["<|startoftext|>"], vocab["<|endoftext|>"]

    @classmethod
    def load(cls, d):
        with open(os.path.join(d, "vocab.json")) as f:
            vocab = json.load(f)
        with open(os.path.join(d, "merges.txt")) as f:
            lines = f.read().strip().split("\n")[1:]
        return cls(vocab, [tuple(l.split()) for l in lines])

    def bpe(self, word):
        s = list(word[:-1]) + [word[-1] + "</w>"]
        while len(s) > 1:
            pairs = [(self.ranks.get((a, b), 1 << 30), i) for i, (a, b) in enumerate(zip(s, s[1:]))]
            r, _ = min(pairs)
            if r == 1 << 30:
                break
            a, b = [(x, y) for x, y in zip(s, s[1:]) if self.ranks.get((x, y)) == r][0]
            out, i = [], 0
            while i < len(s):
                if i + 1 < len(s) and s[i] == a and s[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            s = out
        return s

    def encode(self, text):
        text = html.unescape(html.unescape(text))
        text = re.sub(r"\s+", " ", text).strip().lower()
        words = regex.findall(PATTERN, text) if regex else re.findall(ASCII_PATTERN, text)
        ids = []
        for w in words:
            if w in ("<|startoftext|>", "<|endoftext|>"):
                ids.append(self.vocab[w])
                continue
            sym = "".join(self.table[b] for b in w.encode("utf-8"))
            ids += [self.vocab[t] for t in self.bpe(sym)]
        return ids

    def context(self, text):
        """SD1 / A1111 row: BOS, up to 75 ids, EOS, padded with EOS to 77"""
        ids = self.encode(text)[:CONTEXT - 2]
        return [self.bos] + ids + [self.eos] * (CONTEXT - 1 - len(ids))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out")
    ap.add_argument("--dir")
    ap.add_argument("--encode")
    a = ap.parse_args()
    if a.out:
        vocab, merges = write(a.out)
        print(f"{a.out}: {len(vocab)} ids, {len(merges)} merges")
    if a.encode is not None:
        t = Tokenizer.load(a.dir or a.out)
        print(" ".join(str(i) for i in t.encode(a.encode)))


if __name__ == "__main__":
    main()
