/* The little Unicode the CLIP tokenizer and the prompt parser need: strict UTF-8,
 * the classes of the reference's regular expressions, and Python's str.lower().
 * Tables come from tools/gen_unicode_tables.py (regex module + Python's database),
 * so they agree with the reference for every code point those versions know. */
#ifndef VKD_TEXT_UNICODE_H
#define VKD_TEXT_UNICODE_H

#include <stddef.h>
#include <stdint.h>

/* Decodes strict UTF-8 (no overlongs, surrogates or code points past U+10FFFF), as
 * Python's decoder does. out must hold len code points. Returns 0 and sets *n_out, or
 * returns -1 and sets *bad_at to the byte offset of the first invalid sequence. */
int vkd_utf8_decode(const char *s, size_t len, uint32_t *out, size_t *n_out, size_t *bad_at);
/* Writes c as UTF-8 into out (4 bytes room); returns the byte count. */
int vkd_utf8_encode(uint32_t c, char *out);

int vkd_uc_is_letter(uint32_t c);          /* regex \p{L} */
int vkd_uc_is_number(uint32_t c);          /* regex \p{N} */
int vkd_uc_is_space(uint32_t c);           /* regex \s (White_Space) */
int vkd_uc_is_pyspace(uint32_t c);         /* str.isspace(): also U+001C..U+001F */
int vkd_uc_is_word(uint32_t c);            /* stdlib re \w */

/* str.lower() of text[0..n) into out (room for 2*n code points: U+0130 becomes two).
 * Includes the Final_Sigma rule for U+03A3. Returns the output length. */
size_t vkd_uc_lower(const uint32_t *text, size_t n, uint32_t *out);

#endif
