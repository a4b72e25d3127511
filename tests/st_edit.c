/* See st_edit.h. */
#include "st_edit.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/half.h"

int st_load(const char *path, st_image *s)
{
    memset(s, 0, sizeof *s);
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    s->size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    s->bytes = malloc(s->size);
    if (!s->bytes || fread(s->bytes, 1, s->size, f) != s->size) {
        fclose(f);
        return -1;
    }
    fclose(f);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | s->bytes[i];
    s->data0 = 8 + (size_t)n;
    char *json = malloc((size_t)n + 1);
    memcpy(json, s->bytes + 8, (size_t)n);
    json[n] = 0;
    s->header = cJSON_Parse(json);
    free(json);
    return s->header ? 0 : -1;
}

/* Write s with tensor `name` given dtype (NULL: unchanged) and its last dimension
 * grown by `grow`; its data (zeros past the original bytes) is appended at the end. */
int st_write_changed(const st_image *s, const char *name, const char *dtype, int grow, const char *out)
{
    cJSON *h = cJSON_Duplicate(s->header, 1);
    cJSON *t = cJSON_GetObjectItemCaseSensitive(h, name);
    cJSON *shape = cJSON_GetObjectItemCaseSensitive(t, "shape");
    cJSON *offs = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
    cJSON *dt = cJSON_GetObjectItemCaseSensitive(t, "dtype");
    int rank = cJSON_GetArraySize(shape);
    if (dtype)
        cJSON_SetValuestring(dt, dtype);
    const char *d = dt->valuestring;
    size_t esize = !strcmp(d, "I64") || !strcmp(d, "F64") ? 8 : !strcmp(d, "F32") || !strcmp(d, "I32") ? 4
                   : !strcmp(d, "U8") || !strcmp(d, "I8") ? 1 : 2;
    size_t numel = 1;
    for (int i = 0; i < rank; i++) {
        cJSON *dim = cJSON_GetArrayItem(shape, i);
        if (i == rank - 1 && grow)
            cJSON_SetNumberValue(dim, dim->valuedouble + grow);
        numel *= (size_t)cJSON_GetArrayItem(shape, i)->valuedouble;
    }
    size_t old0 = (size_t)cJSON_GetArrayItem(offs, 0)->valuedouble;
    size_t old1 = (size_t)cJSON_GetArrayItem(offs, 1)->valuedouble;
    size_t data_len = s->size - s->data0, nbytes = numel * esize;
    cJSON_SetNumberValue(cJSON_GetArrayItem(offs, 0), (double)data_len);
    cJSON_SetNumberValue(cJSON_GetArrayItem(offs, 1), (double)(data_len + nbytes));
    char *json = cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    FILE *f = fopen(out, "wb");
    if (!f || !json) {
        free(json);
        return -1;
    }
    uint64_t n = strlen(json);
    unsigned char len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)(n >> (8 * i));
    unsigned char *tail = calloc(1, nbytes + 1);
    size_t keep = dtype ? 0 : old1 - old0 < nbytes ? old1 - old0 : nbytes; /* another dtype: zeros */
    memcpy(tail, s->bytes + s->data0 + old0, keep);
    int ok = fwrite(len, 1, 8, f) == 8 && fwrite(json, 1, n, f) == n &&
             fwrite(s->bytes + s->data0, 1, data_len, f) == data_len && fwrite(tail, 1, nbytes, f) == nbytes;
    free(tail);
    free(json);
    return fclose(f) == 0 && ok ? 0 : -1;
}

void st_free(st_image *s)
{
    cJSON_Delete(s->header);
    free(s->bytes);
    memset(s, 0, sizeof *s);
}

int st_write_value(const st_image *s, const char *name, size_t index, float value, const char *out)
{
    cJSON *t = cJSON_GetObjectItemCaseSensitive(s->header, name);
    cJSON *offs = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
    cJSON *dt = cJSON_GetObjectItemCaseSensitive(t, "dtype");
    if (!t || !offs || !dt)
        return -1;
    size_t at = s->data0 + (size_t)cJSON_GetArrayItem(offs, 0)->valuedouble;
    size_t end = s->data0 + (size_t)cJSON_GetArrayItem(offs, 1)->valuedouble;
    unsigned char *copy = malloc(s->size);
    if (!copy)
        return -1;
    memcpy(copy, s->bytes, s->size);
    int ok = 1;
    if (!strcmp(dt->valuestring, "F32") && at + 4 * (index + 1) <= end) {
        memcpy(copy + at + 4 * index, &value, 4);
    } else if (!strcmp(dt->valuestring, "F16") && at + 2 * (index + 1) <= end) {
        uint16_t h = vkd_float_to_half(value);
        memcpy(copy + at + 2 * index, &h, 2);
    } else {
        ok = 0;
    }
    FILE *f = ok ? fopen(out, "wb") : NULL;
    ok = f && fwrite(copy, 1, s->size, f) == s->size;
    if (f && fclose(f) != 0)
        ok = 0;
    free(copy);
    return ok ? 0 : -1;
}
