/* `vkdiff info MODEL`: what a checkpoint is, without loading it onto a device. */
#ifndef VKD_MODELS_INFO_H
#define VKD_MODELS_INFO_H

#include <stdio.h>

#include "common/result.h"

/* Print to `out`: layout and files, family and every config number, parameters per
 * part, source dtypes, metadata, the device memory the weights take in fp16 and fp32,
 * and ignored / missing / wrong-shape / unused tensors (lists are cut at 20 entries
 * unless the log level is VKD_LOG_DEBUG). vae_path may be NULL. Returns VKD_OK, or the
 * open / detection error (the report is still printed as far as it got). */
vkd_result vkd_info_print(FILE *out, const char *model_path, const char *vae_path);

#endif
