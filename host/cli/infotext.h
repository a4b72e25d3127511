/* A1111's generation-parameters text ("infotext": modules/processing.py create_infotext),
 * written into the PNG's tEXt "parameters" chunk by the CLI and the server, and returned
 * by the server's A1111 API in info.infotexts. */
#ifndef VKD_CLI_INFOTEXT_H
#define VKD_CLI_INFOTEXT_H

#include "cli/outputs.h"
#include "vkdiff.h"

/* Appends the infotext of an image made with gp (gp->seed_used is its seed) to b.
 * model and vae are the file names written (vae NULL: the checkpoint's own); loras are
 * written as <lora:NAME:W> tags after the prompt, which keeps its own tags. */
void vkd_infotext(vkd_strbuf *b, const vkd_gen_params *gp, const char *model, const char *vae,
                  const vkd_lora_spec *loras, int n_loras);

/* The file name of a path: what follows the last '/'. */
const char *vkd_base_name(const char *path);

#endif
