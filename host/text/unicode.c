#include "text/unicode.h"

#include "text/unicode_tables.h"

int vkd_utf8_decode(const char *s, size_t len, uint32_t *out, size_t *n_out, size_t *bad_at)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, n = 0;
    while (i < len) {
        uint32_t c = p[i];
        size_t need;
        uint32_t min;
        if (c < 0x80) {
            out[n++] = c;
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            need = 1, min = 0x80, c &= 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2, min = 0x800, c &= 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3, min = 0x10000, c &= 0x07;
        } else {
            goto bad;
        }
        if (len - i <= need)
            goto bad;
        for (size_t k = 1; k <= need; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                goto bad;
            c = (c << 6) | (p[i + k] & 0x3F);
        }
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
            goto bad;
        out[n++] = c;
        i += need + 1;
    }
    *n_out = n;
    return 0;
bad:
    *bad_at = i;
    return -1;
}

int vkd_utf8_encode(uint32_t c, char *out)
{
    unsigned char *o = (unsigned char *)out;
    if (c < 0x80) {
        o[0] = (unsigned char)c;
        return 1;
    }
    if (c < 0x800) {
        o[0] = (unsigned char)(0xC0 | (c >> 6));
        o[1] = (unsigned char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (c >> 12));
        o[1] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (c >> 18));
    o[1] = (unsigned char)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (c & 0x3F));
    return 4;
}

static int in_ranges(const uint32_t (*r)[2], size_t n, uint32_t c)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c < r[mid][0])
            hi = mid;
        else if (c > r[mid][1])
            lo = mid + 1;
        else
            return 1;
    }
    return 0;
}

#define IN(table, c) in_ranges(table, sizeof(table) / sizeof(table[0]), c)

int vkd_uc_is_letter(uint32_t c) { return c < 0x80 ? ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') : IN(uc_letter, c); }
int vkd_uc_is_number(uint32_t c) { return c < 0x80 ? (c >= '0' && c <= '9') : IN(uc_number, c); }
int vkd_uc_is_space(uint32_t c) { return IN(uc_space, c); }
int vkd_uc_is_pyspace(uint32_t c) { return IN(uc_pyspace, c); }
int vkd_uc_is_word(uint32_t c) { return IN(uc_word, c); }

static uint32_t lower1(uint32_t c)
{
    size_t lo = 0, hi = sizeof(uc_lower) / sizeof(uc_lower[0]);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c < uc_lower[mid].first)
            hi = mid;
        else if (c > uc_lower[mid].last)
            lo = mid + 1;
        else
            return (c - uc_lower[mid].first) % uc_lower[mid].stride ? c : (uint32_t)((int32_t)c + uc_lower[mid].delta);
    }
    return c;
}

/* Python's handle_capital_sigma: U+03A3 becomes final sigma when a cased letter comes
 * before it and none after it, case-ignorable characters skipped on both sides. */
static int final_sigma(const uint32_t *t, size_t n, size_t i)
{
    size_t j = i;
    while (j > 0 && IN(uc_case_ignorable, t[j - 1]))
        j--;
    if (j == 0 || !IN(uc_cased, t[j - 1]))
        return 0;
    for (j = i + 1; j < n && IN(uc_case_ignorable, t[j]); j++)
        ;
    return j == n || !IN(uc_cased, t[j]);
}

size_t vkd_uc_lower(const uint32_t *text, size_t n, uint32_t *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = text[i];
        if (c < 0x80) {
            out[o++] = (c >= 'A' && c <= 'Z') ? c + 32 : c;
        } else if (c == 0x0130) {          /* the one full (two code point) lower case */
            out[o++] = 'i';
            out[o++] = 0x0307;
        } else if (c == 0x03A3) {
            out[o++] = final_sigma(text, n, i) ? 0x03C2 : 0x03C3;
        } else {
            out[o++] = lower1(c);
        }
    }
    return o;
}
