/* The pre-flight memory plan (issue 6): before a generation allocates anything, say
 * what the device will hold at each stage and choose how to fit the budget.
 *
 * Each stage states its request (text_stage.h, denoise_stage.h, decode_stage.h):
 * activation figures from a dry run of its real recording (models/graph.h: the same
 * model code with shapes only), so they follow the code, not a formula; weight
 * figures are the bytes the dry run reads, from the checkpoint header. The plan
 * composes them. Stages and what is resident in each:
 *
 *   text:  text-encoder weights + its activations (+ the UNet, when kept from the
 *          previous image)
 *   encoder (image input only): VAE-encoder weights + its activations (+ the UNet, when kept)
 *   UNet:  UNet weights + the recorded evaluation's activation pool
 *   VAE:   decoder weights + its activations, for the whole image or one tile
 *          (+ the UNet, when kept)
 *
 * Choices, in order: encode in tiles when the whole-image encode alone does not fit
 * (or when asked); keep the UNet (weights and recorded pool) and the text encoder's
 * weights resident between images when everything fits with both (issue 24: the text
 * encoder's upload was most of its time per image), else the UNet alone; otherwise free it before the VAE (it is uploaded again
 * for the next image); decode in tiles when the whole-image decode does not fit (or
 * when asked); refuse, before allocating, when the UNet stage alone does not fit. */
#ifndef VKD_PIPELINE_MEMPLAN_H
#define VKD_PIPELINE_MEMPLAN_H

#include <stdbool.h>
#include <stdint.h>

#include "pipeline/stage_in.h"

typedef struct vkd_memplan {
    uint64_t budget;                 /* bytes the plan may use */
    bool budget_from_driver;         /* VK_EXT_memory_budget's heapBudget (else heap size or the caller's) */
    uint64_t w_text, w_unet, w_vae;  /* weight bytes per stage */
    uint64_t a_text, a_unet, a_vae;  /* activation bytes per stage (a_vae: whole image or one tile) */
    uint64_t w_enc, a_enc;           /* the VAE encoder (image input), 0 without one (a_enc: whole or one tile) */
    uint64_t a_enc_whole;            /* the whole-image encode's activations */
    uint64_t a_vae_whole;            /* the whole-image decode's activations */
    uint64_t r_unet;                 /* of a_unet: room kept for its temporaries' fragmentation
                                      * (dequantized weights, Winograd's U; denoise_stage.c) */
    uint64_t stage_text, stage_unet, stage_vae; /* resident bytes during each stage */
    uint64_t stage_enc;              /* during the encoder (after the text stage, before the UNet) */
    uint64_t peak;                   /* the largest of the three */
    uint32_t unet_ops;               /* ops in one UNet evaluation (dry run) */
    uint64_t unet_act_written;       /* bytes of all UNet activations (each written once) */
    bool keep_unet;                  /* UNet stays resident through the VAE and the next prompt */
    bool keep_text;                  /* the text encoder's weights too (its recordings are freed): a whole
                                      * decode with everything resident fits; saves their upload per image */
    int vae_tile;                    /* 0: whole image; else tile edge in latent pixels */
    int vae_overlap;                 /* tile overlap in latent pixels */
    int enc_tile;                    /* the encoder's: 0 whole image, else tile edge in latent pixels (its
                                      * overlap: vkd_vae_encode_overlap) */
    bool fits;
} vkd_memplan;



/* Dry-run the stages and decide. Fails only on a model the dry run cannot follow;
 * a plan that does not fit is returned with fits = false (the caller refuses). */
vkd_result vkd_memplan_make(const vkd_memplan_in *in, vkd_memplan *out);
/* The plan at INFO level (what `vkdiff -v` prints). */
void vkd_memplan_log(const vkd_memplan *p);
/* One-line reason a plan does not fit, for the error message. */
void vkd_memplan_explain(const vkd_memplan *p, char *buf, size_t n);


#endif
