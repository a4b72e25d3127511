#!/usr/bin/env python3
"""Reference CLIP tokenizer + A1111 prompt handling, for tests/data/tokenizer_golden.json.

Written from the original sources, not from vkdiff:
  - openai/CLIP clip/simple_tokenizer.py  (byte-level BPE, cleanup, the word pattern)
  - AUTOMATIC1111 modules/prompt_parser.py  (parse_prompt_attention)
  - AUTOMATIC1111 modules/sd_hijack_clip.py (tokenize_line: 75-token chunks, comma
    backtrack 20, BOS/EOS wrap) and sd_hijack_open_clip.py (SD2 pads with 0)

One deliberate difference from openai/CLIP: ftfy.fix_text is skipped (ftfy is not in
Debian and vkdiff does not do it either); html.unescape, whitespace_clean and lower()
are as in the original. Needs the `regex` module (Debian: python3-regex).

Usage: /usr/bin/python3 tools/oracle/tokenizer_ref.py [--vocab ../shared/clip/bpe_simple_vocab_16e6.txt.gz]
                                            [--out tests/data/tokenizer_golden.json]
       python3 tools/oracle/tokenizer_ref.py --encode "some text"
"""
import argparse
import gzip
import html
import json
import math
import os
import re as stdre

import regex

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, '..', '..'))


# ---- openai/CLIP simple_tokenizer ------------------------------------------------------

def byte_symbols():
    """bytes_to_unicode(): byte -> the character that stands for it in the vocabulary."""
    keep = list(range(ord('!'), ord('~') + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    table = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    order = keep + [b for b in range(256) if b not in keep]
    return table, order


class ClipBPE:
    PATTERN = (r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|"""
               r"""[^\s\p{L}\p{N}]+""")

    def __init__(self, bpe_path):
        text = gzip.open(bpe_path).read().decode('utf-8')
        lines = text.split('\n')[1:49152 - 256 - 2 + 1]
        merges = [tuple(line.split()) for line in lines]
        self.byte_char, order = byte_symbols()
        base = [self.byte_char[b] for b in order]
        vocab = base + [s + '</w>' for s in base] + [a + b for a, b in merges]
        vocab += ['<|startoftext|>', '<|endoftext|>']
        self.vocab = vocab
        self.ids = {}
        for i, tok in enumerate(vocab):
            self.ids[tok] = i                     # a later duplicate wins, like dict(zip())
        self.rank = {}
        for i, m in enumerate(merges):
            self.rank[m] = i
        self.merges = merges
        self.pat = regex.compile(self.PATTERN, regex.IGNORECASE)
        self.memo = {}

    @staticmethod
    def clean(text):
        # basic_clean without ftfy, then whitespace_clean, then lower()
        text = html.unescape(html.unescape(text)).strip()
        text = regex.sub(r'\s+', ' ', text).strip()
        return text.lower()

    def bpe(self, word):
        if word in ('<|startoftext|>', '<|endoftext|>'):
            return [word]
        if word in self.memo:
            return self.memo[word]
        symbols = list(word[:-1]) + [word[-1] + '</w>']
        while len(symbols) > 1:
            pairs = {(symbols[i], symbols[i + 1]) for i in range(len(symbols) - 1)}
            best = min(pairs, key=lambda p: self.rank.get(p, math.inf))
            if best not in self.rank:
                break
            merged, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and symbols[i] == best[0] and symbols[i + 1] == best[1]:
                    merged.append(best[0] + best[1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        self.memo[word] = symbols
        return symbols

    def encode(self, text):
        out = []
        for piece in self.pat.findall(self.clean(text)):
            word = ''.join(self.byte_char[b] for b in piece.encode('utf-8'))
            out.extend(self.ids[s] for s in self.bpe(word))
        return out


# ---- A1111 prompt_parser.parse_prompt_attention --------------------------------------------

ATTENTION = stdre.compile(r"""
\\\(|\\\)|\\\[|\\]|\\\\|\\|
\(|\[|
:([+-]?[.\d]+)\)|
\)|]|
[^\\()\[\]:]+|
:
""", stdre.X)
BREAK = stdre.compile(r"\s*\bBREAK\b\s*", stdre.S)


def parse_attention(text):
    res = []
    round_open, square_open = [], []

    def scale(start, m):
        for item in res[start:]:
            item[1] *= m

    for m in ATTENTION.finditer(text):
        tok, weight = m.group(0), m.group(1)
        if tok.startswith('\\'):
            res.append([tok[1:], 1.0])
        elif tok == '(':
            round_open.append(len(res))
        elif tok == '[':
            square_open.append(len(res))
        elif weight is not None and round_open:
            scale(round_open.pop(), float(weight))
        elif tok == ')' and round_open:
            scale(round_open.pop(), 1.1)
        elif tok == ']' and square_open:
            scale(square_open.pop(), 1 / 1.1)
        else:
            for i, part in enumerate(BREAK.split(tok)):
                if i:
                    res.append(['BREAK', -1])
                res.append([part, 1.0])
    for pos in round_open:
        scale(pos, 1.1)
    for pos in square_open:
        scale(pos, 1 / 1.1)
    if not res:
        res = [['', 1.0]]
    i = 0
    while i + 1 < len(res):
        if res[i][1] == res[i + 1][1]:
            res[i][0] += res[i + 1][0]
            del res[i + 1]
        else:
            i += 1
    return res


# ---- A1111 sd_hijack_clip tokenize_line ------------------------------------------------------

def chunk_prompt(bpe, prompt, emphasis=True, backtrack=20, pad_zero=False):
    bos, eos = bpe.ids['<|startoftext|>'], bpe.ids['<|endoftext|>']
    comma = bpe.ids[',</w>']
    parsed = parse_attention(prompt) if emphasis else [[prompt, 1.0]]
    chunks = []
    state = {'tokens': [], 'mults': [], 'last_comma': -1, 'count': 0}

    def close(is_last=False):
        toks, mults = state['tokens'], state['mults']
        state['count'] += len(toks) if is_last else 75
        toks = toks + [eos] * (75 - len(toks))
        mults = mults + [1.0] * (75 - len(mults))
        chunks.append(([bos] + toks + [eos], [1.0] + mults + [1.0]))
        state['tokens'], state['mults'], state['last_comma'] = [], [], -1

    for text, weight in parsed:
        if text == 'BREAK' and weight == -1:
            close()
            continue
        for tok in bpe.encode(text):
            cur = state['tokens']
            if tok == comma:
                state['last_comma'] = len(cur)
            elif backtrack and len(cur) == 75 and state['last_comma'] != -1 and len(cur) - state['last_comma'] <= backtrack:
                cut = state['last_comma'] + 1
                moved_t, moved_m = cur[cut:], state['mults'][cut:]
                state['tokens'], state['mults'] = cur[:cut], state['mults'][:cut]
                close()
                state['tokens'], state['mults'] = moved_t, moved_m
            if len(state['tokens']) == 75:
                close()
            state['tokens'].append(tok)
            state['mults'].append(weight)
    if state['tokens'] or not chunks:
        close(is_last=True)

    ids, weights = [], []
    for toks, mults in chunks:
        toks = list(toks)
        if pad_zero:
            first = toks.index(eos)
            toks[first + 1:] = [0] * (len(toks) - first - 1)
        ids += toks
        weights += mults
    return ids, weights, len(chunks), state['count']


# ---- goldens ----------------------------------------------------------------------------------

def long_prompt(n_words):
    words = ('masterpiece, best quality, a detailed oil painting of a lighthouse on a cliff at dusk, '
             'stormy sea, crashing waves, dramatic clouds, warm light in the windows, seagulls, '
             'by a famous artist, trending on artstation, highly detailed, sharp focus, 8k').split(' ')
    return ' '.join(words[i % len(words)] for i in range(n_words))


PROMPTS = [
    ('plain', 'a photo of a cat'),
    ('empty', ''),
    ('spaces', '   a  photo\tof \n a   dog  '),
    ('case', 'A Photo Of A CAT On The MOON'),
    ('punctuation', 'a cat, a dog; and... a bird?! (maybe) "quoted" [x] {y} <z> @#$%^&*'),
    ('numbers', 'route 66, 1999 or 2024: 3.14159 and 1,000,000 cats; 8k 4K uhd'),
    ('contractions', "it's a dog's life, don't you think? we're here, they've gone, I'm done, we'll see, he'd go, O'REILLY"),
    ('accents', 'café crème brûlée, über naïve façade, Ångström, São Paulo, Ægir, Œuvre, straße'),
    ('greek', 'Η ΟΔΟΣ ΠΡΟΣ ΤΗΝ ΑΘΗΝΑ, καλημέρα κόσμε, ΣΟΦΙΑ Σ. ΣΣ ΑΣ\'Σ) ΌΣΟΣ'),
    ('cyrillic', 'Привет, МИР! красивый закат над морем, ЁЛКА'),
    ('cjk', '一只猫 在月亮上 東京タワー 서울의 밤'),
    ('emoji', 'a cat 🐱 with a hat 🎩 and hearts ❤️ 👍🏽 🇫🇷'),
    ('mixed_scripts', 'İstanbul DİYARBAKIR ſtrange ﬁne Kelvin 3\u212a, fullwidth ＡＢＣ１２３'),
    ('html', 'fish &amp; chips &lt;3 &quot;hi&quot; &#233;t&#xE9; &amp;amp; &#128; &ampere &nbsp;x &#169;'),
    ('specials', 'a <|startoftext|> b <|endoftext|> c<|endoftext|>d'),
    ('emphasis', 'a (red) ((big)) (((huge))) dog'),
    ('emphasis_weight', 'a (cat:1.3) on a (mat:0.5), (dog:+.8) (bird:-1) [small] [[tiny]]'),
    ('emphasis_nested', 'a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).'),
    ('emphasis_unbalanced', '(unbalanced [square and (round'),
    ('emphasis_stray', 'close) and ] stray : colon :1.5) and (a:1.2 not weight)'),
    ('emphasis_adjacent', '(un)(believable) (photo)realistic [ab][cd]'),
    ('escaped', r'a \(literal\) \[text\] with \\ backslash and \ lone'),
    ('break', 'a cat BREAK a dog BREAKfast xBREAK (in BREAK brackets) BREAK'),
    ('long_80', long_prompt(80)),
    ('long_160', long_prompt(160)),
    ('long_commas', ', '.join(['red apple', 'green pear', 'yellow banana', 'purple grape'] * 14)),
    ('long_no_commas', ' '.join(['word%d' % i for i in range(120)])),
    ('long_emphasis', '(' + long_prompt(70) + ':1.2), [' + long_prompt(40) + ']'),
    ('long_break', long_prompt(30) + ' BREAK ' + long_prompt(90)),
    ('long_word', 'a ' + 'supercalifragilisticexpialidocious' * 6 + ' word'),
]

ERROR_PROMPTS = [
    ('bad_weight', 'a (cat:1.2.3) dog'),
    ('bad_weight_dot', 'a (cat:.) dog'),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--vocab', default=os.path.join(ROOT, '..', 'shared', 'clip', 'bpe_simple_vocab_16e6.txt.gz'))
    ap.add_argument('--out', default=os.path.join(ROOT, 'tests', 'data', 'tokenizer_golden.json'))
    ap.add_argument('--encode', help='print the ids of one text and exit')
    args = ap.parse_args()
    bpe = ClipBPE(args.vocab)
    if args.encode is not None:
        print(' '.join(map(str, bpe.encode(args.encode))))
        return
    cases = []
    for name, prompt in PROMPTS:
        ids1, w1, n1, count1 = chunk_prompt(bpe, prompt)
        ids2, w2, n2, _ = chunk_prompt(bpe, prompt, pad_zero=True)
        ids_plain, _, n_plain, _ = chunk_prompt(bpe, prompt, emphasis=False)
        cases.append({
            'name': name,
            'prompt': prompt,
            'encode': bpe.encode(prompt),                 # plain encode, no BOS/EOS
            'segments': parse_attention(prompt),          # [text, weight]
            'n_chunks': n1,
            'token_count': count1,
            'sd1_ids': ids1,
            'sd2_ids': ids2,
            'weights': w1,
            'no_emphasis_ids': ids_plain,
        })
        assert n2 == n1
    errors = []
    for name, prompt in ERROR_PROMPTS:
        try:
            chunk_prompt(bpe, prompt)
        except ValueError:
            errors.append({'name': name, 'prompt': prompt})
        else:
            raise SystemExit('expected an error for ' + name)
    doc = {
        'source': 'tools/oracle/tokenizer_ref.py (openai/CLIP simple_tokenizer without ftfy; A1111 prompt_parser + sd_hijack_clip)',
        'vocab': 'bpe_simple_vocab_16e6.txt.gz',
        'bos': bpe.ids['<|startoftext|>'],
        'eos': bpe.ids['<|endoftext|>'],
        'comma': bpe.ids[',</w>'],
        'cases': cases,
        'errors': errors,
    }
    with open(args.out, 'w', encoding='utf-8') as f:
        json.dump(doc, f, ensure_ascii=False, separators=(',', ':'))
        f.write('\n')
    print('wrote %s: %d cases' % (args.out, len(cases)))


if __name__ == '__main__':
    main()
