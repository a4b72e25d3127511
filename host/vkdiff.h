/* vkdiff public API: text-to-image on any Vulkan device.
 *
 *   vkd_ctx_params cp;  vkd_ctx_params_init(&cp);  cp.model_path = "sd15.safetensors";
 *   vkd_ctx *ctx;       if (vkd_ctx_create(&cp, &ctx)) ...;
 *   vkd_gen_params gp;  vkd_gen_params_init(&gp);   gp.prompt = "a photo of a cat";
 *   uint8_t *rgb = malloc(vkd_image_bytes(&gp));
 *   vkd_generate(ctx, &gp, rgb);       // RGB8, row-major, width*height*3 bytes
 *   vkd_ctx_free(ctx);
 *
 * Every function returns VKD_OK (0) on success or an error code (vkd_result_str()
 * describes it; the log callback received the details). Nothing here exits or
 * prints. The caller owns every buffer it passes. One context is used by one thread
 * at a time; separate contexts are independent. */
#ifndef VKDIFF_H
#define VKDIFF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Result codes: errors are values, grouped in ranges by kind of failure. Every
 * function that can fail returns vkd_result; 0 (VKD_OK) is success. */
typedef enum vkd_result {
    VKD_OK = 0,
    /* 1xx: the caller's input or a file's format */
    VKD_ERR_INVALID_ARG = 100,
    VKD_ERR_IO = 101,              /* open/read/write/mmap of a file failed */
    VKD_ERR_FORMAT = 102,          /* a file is damaged or not what it claims */
    VKD_ERR_UNSUPPORTED = 103,     /* valid but not supported (dtype, model family, pickle) */
    VKD_ERR_SHAPE = 104,           /* tensor shapes do not fit the op */
    VKD_ERR_CANCELLED = 105,       /* the caller's progress callback asked to stop */
    VKD_ERR_NON_FINITE = 106,      /* a stage's output holds NaN or Inf (never drawn as a black image) */
    /* 2xx: memory */
    VKD_ERR_OUT_OF_HOST_MEMORY = 200,
    VKD_ERR_OUT_OF_DEVICE_MEMORY = 201,
    VKD_ERR_TOO_LARGE = 202,       /* over a device limit (allocation size, binding range) */
    /* 3xx: Vulkan */
    VKD_ERR_NO_VULKAN = 300,       /* no loader / no driver */
    VKD_ERR_NO_DEVICE = 301,       /* no usable device, or --device out of range */
    VKD_ERR_VULKAN = 302,          /* a Vulkan call failed */
    VKD_ERR_DEVICE_LOST = 303,
    VKD_ERR_NO_SHADER = 304,       /* a shader name missing from the embedded table */
    /* 9xx: a bug in vkdiff */
    VKD_ERR_INTERNAL = 900,
} vkd_result;

/* A short, static description of a result ("out of device memory"). Never NULL. */
const char *vkd_result_str(vkd_result r);

/* Log messages go to a callback (vkd_ctx_params.log), up to a level. */
typedef enum vkd_log_level { VKD_LOG_ERROR = 0, VKD_LOG_WARN = 1, VKD_LOG_INFO = 2, VKD_LOG_DEBUG = 3 } vkd_log_level;
typedef void (*vkd_log_fn)(vkd_log_level level, const char *msg, void *user);

typedef struct vkd_ctx vkd_ctx;

typedef enum vkd_precision { VKD_PRECISION_AUTO = 0, VKD_PRECISION_FP32, VKD_PRECISION_FP16 } vkd_precision;

typedef struct vkd_ctx_params {
    const char *model_path;      /* .safetensors (CompVis/A1111 layout) or a diffusers folder */
    int model_fd;                /* >= 0 and model_path NULL: a CompVis .safetensors read from this open
                                    descriptor at [model_fd_offset, +model_fd_length) (Android assets);
                                    the caller may close it after vkd_ctx_create */
    uint64_t model_fd_offset;
    size_t model_fd_length;
    const char *vae_path;        /* optional separate VAE */
    const char *tokenizer_path;  /* bpe_simple_vocab_16e6.txt(.gz), or a folder with vocab.json + merges.txt;
                                    NULL: the model's tokenizer/ folder */
    const char *tokenizer_bpe;   /* or the text of bpe_simple_vocab_16e6.txt (uncompressed) in memory */
    size_t tokenizer_bpe_len;
    int device_index;            /* -1: best device */
    vkd_precision precision;     /* AUTO: fp16 storage where the device has it */
    const char *cache_dir;       /* pipeline cache folder; NULL: none */
    const char *coopmat;         /* cooperative-matrix GEMM kernels: "off", "nv", "khr"; NULL: the device's best */
    bool validation;             /* Vulkan validation layer (debugging, tests) */
    bool gpu_timestamps;         /* time every dispatch; the first UNet evaluation's profile is logged (INFO) */
    uint32_t memory_budget_mb;   /* device memory a generation may hold; 0: VK_EXT_memory_budget's heapBudget,
                                    else the device-local heap's size. The pre-flight plan keeps within it
                                    (frees the UNet before the VAE, decodes in tiles) or refuses before
                                    allocating (VKD_ERR_OUT_OF_DEVICE_MEMORY) */
    vkd_log_fn log;              /* NULL: errors and warnings to stderr */
    void *log_user;
    vkd_log_level log_level;
    const struct vkd_dev_options *dev; /* developer knobs (vkdiff_dev.h); NULL: defaults */
    const char *weight_type;     /* the UNet's linear and conv weights kept quantized in device memory:
                                    "q8_0", "q5_1", "q5_0", "q4_1", "q4_0", "q4_k", "q6_k" (stable-diffusion.cpp's
                                    names; ggml's block formats, docs/gguf.md); NULL, "f16" or "f32": float
                                    (precision decides). A GGUF file's quantized tensors stay quantized anyway */
} vkd_ctx_params;

void vkd_ctx_params_init(vkd_ctx_params *p);
vkd_result vkd_ctx_create(const vkd_ctx_params *p, vkd_ctx **out);
void vkd_ctx_free(vkd_ctx *ctx); /* NULL is fine */

/* Return nonzero to cancel: generation stops within one step with VKD_ERR_CANCELLED. */
typedef int (*vkd_gen_progress_fn)(void *user, int step, int total);
/* A preview during sampling: after step `step` of `total`, the sampler's denoised estimate
 * decoded with TAESD, RGB8 row-major width x height (the image's size), valid during the
 * call only. Return nonzero to stop the generation (VKD_ERR_CANCELLED). */
typedef int (*vkd_gen_preview_fn)(void *user, int step, int total, const uint8_t *rgb, int width, int height);

/* A LoRA file and its multiplier (A1111's weight: 1 is the LoRA as trained, 0 leaves the model as it is). */
typedef struct vkd_lora_spec {
    const char *path;
    float weight;
} vkd_lora_spec;

typedef struct vkd_gen_params {
    const char *prompt;
    const char *negative;        /* NULL or "" : empty */
    int width, height;           /* multiples of 8; default 512 */
    int steps;                   /* default 20 */
    float cfg;                   /* classifier-free guidance scale, default 7; 1 = no guidance (one UNet pass) */
    int64_t seed;                /* < 0: random (written back to seed_used) */
    const char *sampler;         /* euler, euler_a (default), heun, dpm++2m, ddim, lcm, lms, dpm2, dpm2_a,
                                    dpm++2s_a, dpm++sde, dpm++2m_sde, dpm++2m_sde_heun, dpm++3m_sde,
                                    uni_pc, uni_pc_bh2, restart (docs/samplers.md) */
    const char *schedule;        /* discrete (default), karras, trailing, exponential, polyexponential,
                                    sgm_uniform, simple, normal, ddim_uniform, beta, kl_optimal, ays
                                    (the SDXL table for an SDXL model), ays_sdxl */
    const char *rng;             /* cpu (torch CPU randn, ComfyUI; default) or cuda (torch CUDA Philox, A1111) */
    const char *prediction;      /* NULL: eps (v for a diffusers SD2-768 whose scheduler config says so), "eps", "v" */
    int clip_skip;               /* 0/1: last layer (SD1) ; 2: penultimate. SD2 always uses the penultimate layer */
    int vae_tiling;              /* 0: when the memory plan needs it (default), 1: always, -1: never */
    int vae_tile;                /* tile edge in image pixels, a multiple of 8 (0: 512; the overlap is a quarter) */
    /* SDXL's size conditioning (sd_xl_base.yaml; diffusers original_size, crops_coords_top_left,
       target_size); 0: the image's size, crop 0, 0. Ignored by other families. */
    int sdxl_original_width, sdxl_original_height;
    int sdxl_crop_top, sdxl_crop_left;
    int sdxl_target_width, sdxl_target_height;
    bool sdxl_encode_empty_negative; /* false (default): an empty negative prompt is zeros, as diffusers
                                        (force_zeros_for_empty_prompt) and A1111 do; true: "" is encoded
                                        (ComfyUI). docs/sdxl.md */
    /* Image input (docs/img2img.md). init_image: RGB8, row-major, init_width x init_height, resized
       to width x height (Lanczos) when the sizes differ; NULL: text to image. */
    const uint8_t *init_image;
    int init_width, init_height;
    double strength;             /* denoising strength 0..1 (default 0.75): img2img runs the last
                                    int(min(strength, 0.999) * steps) + 1 steps of the schedule (A1111) */
    const uint8_t *mask;         /* inpainting: grey8 mask_width x mask_height, 255 = repaint, 0 = keep,
                                    resized like the image; NULL: no mask */
    int mask_width, mask_height;
    int mask_blur;               /* Gaussian blur of the mask in pixels, as A1111's "Mask blur" (default 4) */
    bool no_paste_back;          /* inpainting: keep the decoded pixels outside the mask (default: the input's
                                    pixels are pasted back, blended by the blurred mask, as A1111 does) */
    /* Outpainting: grow the canvas of the init image (at width x height) by these many pixels
       (multiples of 8), fill the new area with the nearest edge's colour, mask it (with the mask, if
       any, inside) and inpaint; the output is (width + left + right) x (height + top + bottom). */
    int pad_left, pad_top, pad_right, pad_bottom;
    /* Hires fix (A1111 "Hires. fix"): the image at width x height, upscaled by hires_scale (to a
       multiple of 8), then img2img at that size. 0 or 1: off. */
    double hires_scale;
    int hires_steps;             /* the second pass's steps (0: steps) */
    double hires_strength;       /* its denoising strength (default 0.7, A1111's) */
    const char *hires_upscale;   /* "latent" (default: the latent, bilinear, A1111's "Latent") or "lanczos"
                                    (decoded, resized in pixels, encoded again) */
    /* LoRAs (docs/lora.md): these, then those the prompt names as <lora:NAME:WEIGHT> (the tags are
       removed from the text before tokenizing; NAME is NAME.safetensors or NAME in lora_dir, by
       default the model's folder). Applied to the weights on the device; the next image with
       another set restores only what this one changed. */
    const vkd_lora_spec *loras;
    int n_loras;
    const char *lora_dir;
    vkd_gen_progress_fn progress;
    void *progress_user;
    int64_t seed_used;           /* out */
    /* TAESD (docs/taesd.md); appended, so the fields above keep their offsets */
    const char *taesd;           /* a TAESD decoder (TAESDXL for SDXL; a file or folder in madebyollin's or
                                    diffusers' layout): the final image is decoded with it instead of the
                                    VAE. NULL: the VAE */
    vkd_gen_preview_fn preview;  /* NULL: no previews */
    void *preview_user;
    int preview_every;           /* a preview after every N-th sampler step and the last (0 or 1: each) */
    const char *preview_taesd;   /* the previews' TAESD decoder; NULL: taesd (one of them is needed) */
} vkd_gen_params;

void vkd_gen_params_init(vkd_gen_params *p);
/* The output image's size: width x height, the hires fix's larger one, or the outpainted one. */
void vkd_image_size(const vkd_gen_params *p, int *width, int *height);
/* Bytes the output image takes: its width * height * 3. */
size_t vkd_image_bytes(const vkd_gen_params *p);
/* Check the parameters without touching the GPU (sizes, steps, names). */
vkd_result vkd_gen_params_check(const vkd_gen_params *p);
/* Generate one image into rgb (vkd_image_bytes bytes, caller-owned). */
vkd_result vkd_generate(vkd_ctx *ctx, vkd_gen_params *p, uint8_t *rgb);

/* Per-stage wall times of the last vkd_generate, in ms, and what it held. */
typedef struct vkd_timings {
    double load_ms, text_ms, unet_ms, vae_ms, total_ms;
    double encode_ms;            /* image input: the VAE encoder(s) */
    double unet_setup_ms;        /* the plan, the UNet's weights uploaded (where not resident) and its recording */
    int unet_evals;
    int vae_tiles;               /* 1: decoded whole */
    uint64_t planned_peak_bytes; /* the pre-flight plan's peak */
    uint64_t peak_bytes;         /* device memory held at most (allocator blocks), since the context was made */
    double lora_ms;              /* the LoRAs opened and applied (0 when the set did not change) */
} vkd_timings;
void vkd_last_timings(const vkd_ctx *ctx, vkd_timings *t);
/* Model description for messages: family name ("SD1.x") */
const char *vkd_ctx_family(const vkd_ctx *ctx);

#ifdef __cplusplus
}
#endif

#endif
