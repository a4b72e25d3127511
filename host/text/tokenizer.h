/* CLIP byte-level BPE tokenizer (openai/CLIP simple_tokenizer.py; OpenCLIP and the HF
 * CLIPTokenizer encode the same way). One vocabulary serves SD1 (CLIP ViT-L/14) and
 * SD2 (OpenCLIP ViT-H/14): BOS 49406, EOS 49407.
 *
 * Text cleanup, in the reference's order: html.unescape twice, strip, whitespace runs
 * to one space, strip, str.lower(). Known differences from the reference:
 *   - ftfy.fix_text (mojibake repair, NFC normalization) is not done: text is taken as
 *     already well formed. Decomposed accents (e + U+0301) therefore stay decomposed.
 *   - html.unescape knows numeric references and only the named ones amp, lt, gt, quot,
 *     apos and nbsp (HTML5 has 2,231); other names pass through unchanged.
 *   - Unicode classes and lower-casing come from tables generated from Python 3.11
 *     (Unicode 14) and the regex module: code points newer than that are "other".
 *   - HF's CLIPTokenizer without ftfy installed cleans text with BERT's BasicTokenizer
 *     instead, which puts spaces around CJK ideographs; that variant is not followed.
 *
 * A tokenizer keeps a cache of encoded words, so it is not safe to share between
 * threads; load one per thread. */
#ifndef VKD_TEXT_TOKENIZER_H
#define VKD_TEXT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "common/result.h"

typedef struct vkd_tokenizer vkd_tokenizer;

/* Loads from path, which may be:
 *   - OpenAI's bpe_simple_vocab_16e6.txt.gz (or the same text uncompressed),
 *   - a vocab.json (merges.txt is read from the same folder),
 *   - a folder holding vocab.json + merges.txt, or a diffusers model folder holding
 *     tokenizer/vocab.json + tokenizer/merges.txt.
 * Returns VKD_OK and *out (free with vkd_tokenizer_destroy), VKD_ERR_IO if no file can
 * be read, VKD_ERR_FORMAT (logged with the file and line) if a file is malformed. */
vkd_result vkd_tokenizer_load(const char *path, vkd_tokenizer **out);

/* The same from memory: bpe is the decompressed text of bpe_simple_vocab_16e6.txt;
 * vocab_json / merges are the HF files' bytes. Nothing is kept pointing at the input. */
vkd_result vkd_tokenizer_load_bpe_text(const char *bpe, size_t len, vkd_tokenizer **out);
vkd_result vkd_tokenizer_load_hf_text(const char *vocab_json, size_t vocab_len,
                                      const char *merges, size_t merges_len, vkd_tokenizer **out);

/* Accepts NULL. */
void vkd_tokenizer_destroy(vkd_tokenizer *tok);

/* Most ids vkd_tokenizer_encode can produce for a text of text_len bytes. */
size_t vkd_tokenizer_encode_bound(size_t text_len);

/* Encodes UTF-8 text (text_len bytes, no NUL needed) to ids, without BOS/EOS, as
 * SimpleTokenizer.encode does. Writes at most cap ids to ids (caller-owned) and the
 * count to *n_out. Returns VKD_ERR_INVALID_ARG if text is not valid UTF-8 (logged with
 * the byte offset) or cap is smaller than needed. */
vkd_result vkd_tokenizer_encode(vkd_tokenizer *tok, const char *text, size_t text_len,
                                int32_t *ids, size_t cap, size_t *n_out);

int32_t vkd_tokenizer_bos(const vkd_tokenizer *tok);      /* <|startoftext|>, 49406 */
int32_t vkd_tokenizer_eos(const vkd_tokenizer *tok);      /* <|endoftext|>, 49407 */
int32_t vkd_tokenizer_comma(const vkd_tokenizer *tok);    /* ",</w>", 267: A1111 wraps long prompts there */
/* One more than the largest id. */
int32_t vkd_tokenizer_vocab_size(const vkd_tokenizer *tok);
/* The token's text in byte-level form ("cat</w>", "Ġ"-style letters for raw bytes), or
 * NULL for an id the vocabulary lacks. Owned by tok. */
const char *vkd_tokenizer_token_str(const vkd_tokenizer *tok, int32_t id);

#endif
