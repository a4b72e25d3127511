/* PNG output for the CLI (the library itself never touches PNG, decision 11). */
#ifndef VKD_PNG_WRITE_H
#define VKD_PNG_WRITE_H
#include <stddef.h>
#include <stdint.h>

/* Write an 8-bit RGB image with an optional tEXt chunk "parameters" (A1111's
 * generation-parameters format, read back by other tools). The file is written
 * under a temporary name in the same folder and renamed, so a failure never
 * leaves half an image; a SIGINT/SIGTERM that arrives meanwhile (cli/interrupt.h) removes
 * the temporary file and writes nothing. test_pause_ms > 0 holds the finished temporary
 * file that long before the rename (a test's window for a signal). Returns 0 on
 * success, else prints why and returns -1. */
int vkd_png_write(const char *path, const uint8_t *rgb, int width, int height, const char *parameters,
                  int test_pause_ms);

/* The same PNG in memory: malloc'd bytes in *out, their count in *len (the server's
 * responses). 0 on success; -1 when out of memory or built without libpng. */
int vkd_png_encode(const uint8_t *rgb, int width, int height, const char *parameters, uint8_t **out, size_t *len);

#endif
