/* Tests' edits of a safetensors file: one tensor's shape, dtype or value changed, the
 * rest of the file as it was (damaged checkpoints for the hardening tests, issue 18). */
#ifndef VKD_TESTS_ST_EDIT_H
#define VKD_TESTS_ST_EDIT_H

#include <cjson/cJSON.h>
#include <stddef.h>

typedef struct {
    unsigned char *bytes;
    size_t size;
    size_t data0; /* start of the data section */
    cJSON *header;
} st_image;

int st_load(const char *path, st_image *s); /* 0 on success */
void st_free(st_image *s);
/* s with tensor `name` given dtype (NULL: unchanged) and its last dimension grown by
 * `grow`, written to out; its data (zeros past the original bytes; all zeros when the
 * dtype changes) appended at the end */
int st_write_changed(const st_image *s, const char *name, const char *dtype, int grow, const char *out);
/* s with element `index` of tensor `name` (F32 or F16) set to value, written to out */
int st_write_value(const st_image *s, const char *name, size_t index, float value, const char *out);

#endif
