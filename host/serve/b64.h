/* Base64 (RFC 4648, the standard alphabet with padding): PNGs in JSON bodies, as the
 * OpenAI images API (b64_json) and A1111's API (images, init_images) carry them. */
#ifndef VKD_SERVE_B64_H
#define VKD_SERVE_B64_H
#include <stddef.h>
#include <stdint.h>

/* n bytes as a NUL-terminated base64 string, malloc'd; NULL when out of memory. */
char *vkd_b64_encode(const uint8_t *data, size_t n);

/* A base64 string (a "data:...;base64," prefix is skipped; whitespace is ignored, as
 * Python's b64decode does for the A1111 API's inputs) to bytes, malloc'd in *out with
 * the count in *n. -1 on a character outside the alphabet, bad padding or no memory. */
int vkd_b64_decode(const char *s, size_t len, uint8_t **out, size_t *n);

#endif
