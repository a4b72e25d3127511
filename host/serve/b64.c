/* Base64 encoder and decoder (b64.h). */
#include "serve/b64.h"

#include <stdlib.h>
#include <string.h>

static const char k_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *vkd_b64_encode(const uint8_t *data, size_t n)
{
    if (n > (SIZE_MAX - 1) / 4 * 3 - 3)
        return NULL;
    char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
    if (!out)
        return NULL;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
        *o++ = k_alphabet[v >> 18], *o++ = k_alphabet[(v >> 12) & 63];
        *o++ = k_alphabet[(v >> 6) & 63], *o++ = k_alphabet[v & 63];
    }
    if (i < n) { /* one or two bytes left: padded with '=' */
        uint32_t v = (uint32_t)data[i] << 16 | (i + 1 < n ? (uint32_t)data[i + 1] << 8 : 0);
        *o++ = k_alphabet[v >> 18], *o++ = k_alphabet[(v >> 12) & 63];
        *o++ = i + 1 < n ? k_alphabet[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    *o = 0;
    return out;
}

static int sextet(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-') /* '-' and '_': the URL-safe alphabet, which some clients send */
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

int vkd_b64_decode(const char *s, size_t len, uint8_t **out, size_t *n)
{
    *out = NULL, *n = 0;
    const char *comma = len > 5 && !strncmp(s, "data:", 5) ? memchr(s, ',', len) : NULL;
    if (comma) /* a data URL: "data:image/png;base64,<payload>" */
        len -= (size_t)(comma + 1 - s), s = comma + 1;
    uint8_t *buf = malloc(len / 4 * 3 + 3);
    if (!buf)
        return -1;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0, pad = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
            continue;
        if (c == '=') {
            pad++;
            continue;
        }
        int v = sextet(c);
        if (v < 0 || pad) { /* a character outside the alphabet, or data after the padding */
            free(buf);
            return -1;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[o++] = (uint8_t)(acc >> bits);
        }
    }
    if (pad > 2 || bits >= 6) { /* a lone sextet cannot end a valid encoding */
        free(buf);
        return -1;
    }
    *out = buf, *n = o;
    return 0;
}
