/* Pre-tokenization as simple_tokenizer.py does it before BPE: basic_clean (html.unescape
 * twice, strip; ftfy is not done, see text/tokenizer.h), whitespace_clean, lower, then
 * the word pattern. On code points (UTF-32), with the Unicode classes of unicode.c. */
#include <string.h>

#include "text/tokenizer_impl.h"
#include "text/unicode.h"

/* ---- text cleanup ------------------------------------------------------------------ */

/* Python's html.unescape, for numeric references and the named references below (the
 * HTML5 entries for these names, with the legacy forms that need no ';'). */
static const struct {
    const char *name;
    uint32_t cp;
    int legacy;                       /* also valid without ';' */
} entities[] = {
    {"amp", '&', 1}, {"AMP", '&', 1}, {"lt", '<', 1}, {"LT", '<', 1}, {"gt", '>', 1}, {"GT", '>', 1},
    {"quot", '"', 1}, {"QUOT", '"', 1}, {"nbsp", 0xA0, 1}, {"apos", '\'', 0}, {"Lt", 0x226A, 0},
    {"Gt", 0x226B, 0},
};

/* html._invalid_charrefs for 0x80..0x9F: the windows-1252 reading of those bytes */
static const uint16_t cp1252[32] = {
    0x20AC, 0x81, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0x8D, 0x017D, 0x8F, 0x90, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D, 0x017E, 0x0178,
};

/* Returns the replacement of &#num; (0 code points if Python drops it). */
static int charref(uint32_t num, uint32_t *out)
{
    if (num == 0) {
        *out = 0xFFFD;
        return 1;
    }
    if (num == 0x0D) {
        *out = 0x0D;
        return 1;
    }
    if (num >= 0x80 && num <= 0x9F) {
        *out = cp1252[num - 0x80];
        return 1;
    }
    if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) {
        *out = 0xFFFD;
        return 1;
    }
    if ((num >= 0x1 && num <= 0x8) || num == 0xB || (num >= 0xE && num <= 0x1F) || num == 0x7F ||
        (num >= 0xFDD0 && num <= 0xFDEF) || (num & 0xFFFE) == 0xFFFE)
        return 0;
    *out = num;
    return 1;
}

static int is_digit(uint32_t c) { return c >= '0' && c <= '9'; }
static int is_hex(uint32_t c) { return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'); }
static uint32_t hex_val(uint32_t c) { return is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10; }

static int name_eq(const uint32_t *s, size_t n, const char *name)
{
    size_t k = strlen(name);
    if (k != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] != (unsigned char)name[i])
            return 0;
    return 1;
}

/* out may not alias in; the result is never longer than the input. */
static size_t html_unescape(const uint32_t *in, size_t n, uint32_t *out)
{
    size_t o = 0, i = 0;
    while (i < n) {
        if (in[i] != '&') {
            out[o++] = in[i++];
            continue;
        }
        size_t j = i + 1;
        if (j < n && in[j] == '#') {
            uint32_t num = 0;
            size_t k = j + 1;
            if (k < n && is_digit(in[k])) {
                for (; k < n && is_digit(in[k]); k++)
                    num = num > 0x10FFFF ? num : num * 10 + (in[k] - '0');
            } else if (k + 1 < n && (in[k] | 0x20) == 'x' && is_hex(in[k + 1])) {
                for (k++; k < n && is_hex(in[k]); k++)
                    num = num > 0x10FFFF ? num : num * 16 + hex_val(in[k]);
            } else {
                out[o++] = in[i++];
                continue;
            }
            if (k < n && in[k] == ';')
                k++;
            o += (size_t)charref(num, out + o);
            i = k;
            continue;
        }
        /* named: [^\t\n\f <&#;]{1,32};? */
        size_t k = j;
        while (k < n && k - j < 32 && in[k] != '\t' && in[k] != '\n' && in[k] != '\f' && in[k] != ' ' &&
               in[k] != '<' && in[k] != '&' && in[k] != '#' && in[k] != ';')
            k++;
        if (k == j) {
            out[o++] = in[i++];
            continue;
        }
        if (k < n && in[k] == ';')
            k++;
        const uint32_t *s = in + j;
        size_t sl = k - j;
        int done = 0;
        for (size_t e = 0; e < sizeof(entities) / sizeof(entities[0]) && !done; e++) {
            size_t nl = strlen(entities[e].name);
            if ((sl == nl + 1 && s[nl] == ';' && name_eq(s, nl, entities[e].name)) ||
                (entities[e].legacy && name_eq(s, sl, entities[e].name))) {
                out[o++] = entities[e].cp;
                done = 1;
            }
        }
        if (!done) {
            /* the longest legacy name that is a proper prefix (at least 2 long) */
            size_t best = 0;
            uint32_t cp = 0;
            for (size_t e = 0; e < sizeof(entities) / sizeof(entities[0]); e++) {
                size_t nl = strlen(entities[e].name);
                if (entities[e].legacy && nl >= 2 && nl < sl && nl > best && name_eq(s, nl, entities[e].name))
                    best = nl, cp = entities[e].cp;
            }
            if (best) {
                out[o++] = cp;
                for (size_t q = best; q < sl; q++)
                    out[o++] = s[q];
            } else {
                out[o++] = '&';
                for (size_t q = 0; q < sl; q++)
                    out[o++] = s[q];
            }
        }
        i = k;
    }
    return o;
}

/* str.strip(), in place; returns the new length. */
static size_t py_strip(uint32_t *t, size_t n)
{
    size_t a = 0;
    while (a < n && vkd_uc_is_pyspace(t[a]))
        a++;
    while (n > a && vkd_uc_is_pyspace(t[n - 1]))
        n--;
    memmove(t, t + a, (n - a) * sizeof(*t));
    return n - a;
}

/* re.sub(r'\s+', ' ', text), in place. */
static size_t collapse_space(uint32_t *t, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        if (vkd_uc_is_space(t[i])) {
            while (i < n && vkd_uc_is_space(t[i]))
                i++;
            t[o++] = ' ';
        } else {
            t[o++] = t[i++];
        }
    }
    return o;
}

/* ---- word splitting ------------------------------------------------------------------ */

/* The pattern is compiled with re.IGNORECASE; on lower-cased text the only letter that
 * still folds onto another is U+017F (long s), which matches 's'. */
static int ci_eq(uint32_t c, char want)
{
    return c == (unsigned char)want || (want == 's' && c == 0x017F);
}

static size_t match_lit(const uint32_t *t, size_t n, size_t i, const char *lit)
{
    size_t k = 0;
    for (; lit[k]; k++)
        if (i + k >= n || !ci_eq(t[i + k], lit[k]))
            return 0;
    return k;
}

/* Length of the match of
 *   <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
 * at t[i], 0 if none (whitespace). Alternatives are tried in order, as the regex does. */
size_t vkd_pretok_match_word(const uint32_t *t, size_t n, size_t i)
{
    static const char *const lits[] = {"<|startoftext|>", "<|endoftext|>", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    for (size_t k = 0; k < sizeof(lits) / sizeof(lits[0]); k++) {
        size_t m = match_lit(t, n, i, lits[k]);
        if (m)
            return m;
    }
    size_t j = i;
    if (vkd_uc_is_letter(t[i])) {
        while (j < n && vkd_uc_is_letter(t[j]))
            j++;
        return j - i;
    }
    if (vkd_uc_is_number(t[i]))
        return 1;
    while (j < n && !vkd_uc_is_space(t[j]) && !vkd_uc_is_letter(t[j]) && !vkd_uc_is_number(t[j]))
        j++;
    return j - i;
}

size_t vkd_pretok_clean(uint32_t *a, size_t n, uint32_t *b)
{
    /* basic_clean (less ftfy): unescape twice, strip; whitespace_clean; lower */
    n = html_unescape(a, n, b);
    n = html_unescape(b, n, a);
    n = py_strip(a, n);
    n = collapse_space(a, n);
    n = py_strip(a, n);
    return vkd_uc_lower(a, n, b);
}
