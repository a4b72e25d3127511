/* Prompt -> token ids and per-token weights, as AUTOMATIC1111 does it
 * (modules/prompt_parser.py parse_prompt_attention, modules/sd_hijack_clip.py
 * tokenize_line):
 *   (text) x1.1   ((text)) x1.21   (text:1.3) x1.3   [text] /1.1   \( \) \[ \] \\ literal
 *   BREAK (upper case, a word of its own) starts a new chunk.
 * Each piece of text is tokenized on its own, the ids are packed into chunks of 75,
 * each chunk wrapped as BOS + 75 + EOS = 77, padded. A chunk that fills up is cut after
 * its last comma when that comma is within comma_backtrack tokens of the end (A1111's
 * "comma_padding_backtrack", default 20), the words after it moving to the next chunk.
 * Weights are what A1111 multiplies the encoder output by (then it restores the mean);
 * textual-inversion embeddings and prompt editing ([a:b:step]) are not supported. */
#ifndef VKD_TEXT_PROMPT_H
#define VKD_TEXT_PROMPT_H

#include <stddef.h>
#include <stdint.h>

#include "common/result.h"
#include "text/tokenizer.h"

#define VKD_PROMPT_CHUNK_TOKENS 75
#define VKD_PROMPT_CHUNK_LEN 77          /* BOS + 75 + EOS */

typedef enum vkd_prompt_pad {
    /* SD1, CLIP ViT-L/14: pad with <|endoftext|> 49407 (openai/CLIP tokenize(), the HF
     * openai/clip-vit-large-patch14 tokenizer whose pad_token is <|endoftext|>, and
     * A1111 FrozenCLIPEmbedderWithCustomWords: id_pad = id_end). */
    VKD_PROMPT_PAD_EOS = 0,
    /* SD2, OpenCLIP ViT-H/14: pad with 0 after the first EOS (open_clip tokenize()
     * zero-fills; A1111 FrozenOpenCLIPEmbedderWithCustomWords: id_pad = 0; the SD2
     * diffusers tokenizer's pad_token is "!", id 0). */
    VKD_PROMPT_PAD_ZERO = 1,
} vkd_prompt_pad;

typedef struct vkd_prompt_params {
    vkd_prompt_pad pad;
    int emphasis;                        /* 0: the prompt is plain text (A1111 emphasis "None") */
    int comma_backtrack;                 /* 0 turns comma wrapping off */
} vkd_prompt_params;

/* SD1 defaults: pad EOS, emphasis on, comma_backtrack 20. */
void vkd_prompt_params_init(vkd_prompt_params *p);

typedef struct vkd_prompt_tokens {
    int32_t *ids;                        /* [n_chunks * 77] */
    float *weights;                      /* [n_chunks * 77] emphasis multipliers, 1 at BOS/EOS/pad */
    int n_chunks;
    int token_count;                     /* A1111's count: 75 per full chunk + tokens of the last */
} vkd_prompt_tokens;

/* Tokenizes prompt (UTF-8, NUL-terminated). On success *out owns two arrays; free them
 * with vkd_prompt_tokens_free. Returns VKD_ERR_INVALID_ARG for text that is not UTF-8
 * or a weight that is not a number ("(a:1.2.3)", where A1111 raises). */
vkd_result vkd_prompt_tokenize(vkd_tokenizer *tok, const char *prompt, const vkd_prompt_params *p,
                               vkd_prompt_tokens *out);
void vkd_prompt_tokens_free(vkd_prompt_tokens *t);

/* The emphasis parse alone: pieces of text with their weights, runs of equal weight
 * merged; a BREAK is the piece "BREAK" with weight -1. Free with vkd_prompt_segments_free. */
typedef struct vkd_prompt_segment {
    char *text;                          /* NUL-terminated */
    double weight;
} vkd_prompt_segment;
vkd_result vkd_prompt_parse_attention(const char *prompt, vkd_prompt_segment **segs, size_t *n);
void vkd_prompt_segments_free(vkd_prompt_segment *segs, size_t n);

#endif
