/* The models and LoRAs a request may name: files (and diffusers folders) directly in
 * --model-dir and --lora-dir, named by their file name. A name with a path in it ('/',
 * '\\', "..", a leading '.') is refused, so no file outside those folders can be read
 * through the API. */
#ifndef VKD_SERVE_MODELS_H
#define VKD_SERVE_MODELS_H

#include "serve/request.h"
#include "serve/serve.h"

typedef struct vkd_model_entry {
    char file[256];         /* "shapes.safetensors" (A1111's title) */
    char stem[256];         /* "shapes" (A1111's model_name, the OpenAI id) */
    char path[4096];
} vkd_model_entry;

enum { VKD_LIST_CHECKPOINTS, VKD_LIST_LORAS };

/* The checkpoints (a .safetensors whose header names model.diffusion_model., or a folder
 * with model_index.json) or the LoRAs (lora_/hada_/lokr_ keys) in dir, sorted by name.
 * *out malloc'd; -1 when dir cannot be read. */
int vkd_models_list(const char *dir, int kind, vkd_model_entry **out, int *n);

/* A requested model name (A1111's title "name.safetensors [hash]", the file name, or its
 * stem) to its path; NULL or "" is the server's default model. 0, or -1 with e set (400
 * for a path in the name, 404 when there is no such model). *path and *file malloc'd. */
int vkd_models_resolve(vkd_server *srv, const char *name, char **path, char **file, vkd_req_err *e);

#endif
