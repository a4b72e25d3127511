/* vkdiff command line: generation, plus the verbs info, tokenize, bench, serve. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/env.h"
#include "cli/host_sgemm.h"
#include "cli/image_read.h"
#include "cli/infotext.h"
#include "cli/interrupt.h"
#include "cli/names.h"
#include "cli/outputs.h"
#include "cli/png_write.h"
#include "cli/preview.h"
#include "vkdiff.h"
#include "vkdiff_dev.h"

#ifdef VKD_HAVE_SERVE
int vkd_serve_main(int argc, char **argv); /* host/serve/serve.h: the server is a verb of the command */
#endif

static void usage(FILE *f)
{
    fprintf(f,
            "usage: vkdiff -m MODEL -p PROMPT [options]      generate an image\n"
            "       vkdiff [-p PROMPT] [options]             the same with the shipped shapes model (weights/)\n"
            "       vkdiff --list-devices                    list Vulkan devices and their features\n"
            "       vkdiff info MODEL [--vae FILE]           describe a checkpoint (family, config, memory)\n"
            "       vkdiff tokenize --tokenizer PATH TEXT    print CLIP token ids\n"
            "       vkdiff bench ops [--device N]            time each op at SD1.5 512x512 shapes\n"
            "       vkdiff bench model [-m MODEL] [-W -H]    per-stage time, GFLOP/s, dispatches, memory\n"
            "       vkdiff bench lora -m MODEL --lora FILE   time to apply and restore a LoRA on a warm context\n"
            "       vkdiff serve [-m MODEL] [--port N]       HTTP server: OpenAI and A1111 APIs, a web page (--help)\n"
            "\n"
            "generation options:\n"
            "  -m, --model PATH       .safetensors checkpoint (CompVis/A1111 layout) or diffusers folder\n"
            "  --vae PATH             a separate VAE replacing the checkpoint's\n"
            "  --tokenizer PATH       bpe_simple_vocab_16e6.txt.gz or a folder with vocab.json + merges.txt\n"
            "                         (default: the model's tokenizer/ folder)\n"
            "  -p, --prompt TEXT      what to draw; (word:1.3) / (word) / [word] emphasis as in A1111\n"
            "  -n, --negative TEXT    negative prompt\n"
            "  -W, --width N          image width, multiple of 8 (default 512)\n"
            "  -H, --height N         image height, multiple of 8 (default 512)\n"
            "  --steps N              sampling steps (default 20)\n"
            "  --cfg X                guidance scale (default 7; 1 = no guidance, one UNet pass per step)\n"
            "  --seed N               seed (default -1: random, printed)\n"
            "  --sampler NAME         euler, euler_a (default), heun, dpm++2m, ddim, lcm, lms, dpm2, dpm2_a,\n"
            "                         dpm++2s_a, dpm++sde, dpm++2m_sde, dpm++2m_sde_heun, dpm++3m_sde, uni_pc,\n"
            "                         uni_pc_bh2, restart; or A1111's names (\"DPM++ 2M SDE Karras\") and\n"
            "                         ComfyUI's (dpmpp_2m_sde, euler_ancestral): docs/samplers.md\n"
            "  --schedule NAME        discrete (default), karras, trailing (SD-Turbo), exponential,\n"
            "                         polyexponential, sgm_uniform, simple, normal, ddim_uniform, beta,\n"
            "                         kl_optimal, ays, ays_sdxl; A1111's labels (\"SGM Uniform\", \"Align Your\n"
            "                         Steps\", \"Automatic\": the sampler's A1111 default)\n"
            "  --rng cpu|cuda         torch CPU randn (ComfyUI, default) or CUDA Philox (A1111)\n"
            "  --prediction eps|v     model output type (default eps; v for SD 2.x 768)\n"
            "  --clip-skip N          2 = penultimate text-encoder layer (SD1); SD2 and SDXL always use it\n"
            "  --batch-count N        images in a row, seed + i each, files numbered (default 1)\n"
            "  --precision fp16|fp32  storage precision (default: fp16 where the device has 16-bit storage)\n"
            "  --weight-type TYPE     keep the UNet's weights quantized on the device: q8_0, q5_1, q5_0, q4_1,\n"
            "                         q4_0, q4_k, q6_k (ggml's formats; f16 / f32 = --precision); GGUF files\n"
            "                         keep their own types (docs/gguf.md)\n"
            "  --device N             Vulkan device (default: discrete, then integrated, then CPU)\n"
            "image input (img2img, inpainting; docs/img2img.md):\n"
            "  -i, --init-img FILE    start from this PNG or JPEG (size: -W/-H, else the image's, to a multiple of 8)\n"
            "  --strength S           denoising strength 0..1 (default 0.75): the last int(S * steps) + 1 steps run\n"
            "  --mask FILE            inpainting: white = repaint, black = keep (grey: partial)\n"
            "  --mask-blur PX         blur the mask as A1111 (default 4)\n"
            "  --no-paste-back        keep the decoded pixels outside the mask (default: the input's are put back)\n"
            "  --pad L,T,R,B          outpainting: grow the canvas by these pixels (multiples of 8), filled with\n"
            "                         the edge colour and masked, then inpaint (strength 1 suits it)\n"
            "LoRA (docs/lora.md): kohya/A1111, LoCon, LoHa, LoKr, diffusers/PEFT files\n"
            "  --lora FILE[:W]        apply this LoRA at weight W (default 1); repeatable\n"
            "  <lora:NAME:W>          in the prompt: NAME.safetensors from --lora-dir (the tag leaves the text)\n"
            "  --lora-dir DIR         where prompt tags look (default: the model's folder)\n"
            "hires fix (A1111's): the image at -W x -H, upscaled, then img2img at the larger size:\n"
            "  --hires-scale X        upscale factor (e.g. 2; off by default)\n"
            "  --hires-steps N        second-pass steps (default: --steps)\n"
            "  --hires-strength S     second-pass denoising strength (default 0.7)\n"
            "  --hires-upscale latent|lanczos  the latent, bilinear (default), or the pixels, Lanczos\n"
            "  --mem-budget MIB       device memory to stay within (default: the driver's budget or heap size);\n"
            "                         the plan (-v prints it) frees the UNet before the VAE and decodes in tiles\n"
            "                         when needed, or refuses before allocating\n"
            "  --vae-tiling           always decode (and encode) in tiles (default: when the memory plan needs it)\n"
            "  --no-vae-tiling        never decode or encode in tiles\n"
            "  --vae-tile PX          tile edge in pixels, multiple of 8 (default 512; overlap a quarter)\n"
            "  -o, --output PATH      PNG to write (default output.png)\n"
            "TAESD (docs/taesd.md; TAESD for SD1.x/SD2.x, TAESDXL for SDXL):\n"
            "  --taesd PATH           decode the final image with this TAESD decoder instead of the VAE\n"
            "  --preview FILE         write a TAESD preview PNG of the denoised estimate while sampling\n"
            "                         (decoder: --taesd, else <model>_taesd_decoder.safetensors beside the model)\n"
            "  --preview-every N      a preview every N steps and at the last (default 1)\n"
            "\n"
            "SDXL (default size 1024x1024; SDXL-Turbo: -W 512 -H 512 --steps 1..4 --cfg 1 --sampler euler_a\n"
            "--schedule trailing):\n"
            "  --original-size WxH    size conditioning: the original size (default: the image's)\n"
            "  --target-size WxH      size conditioning: the target size (default: the image's)\n"
            "  --crop TOP,LEFT        size conditioning: the crop's top-left corner (default 0,0)\n"
            "  --empty-negative zeros|encode\n"
            "                         an empty negative prompt as zeros (default; diffusers, A1111)\n"
            "                         or as the encoding of \"\" (ComfyUI)\n"
            "  -v                     verbose: per-stage times, the memory plan\n"
            "  -vv                    also GPU timestamps on every dispatch: the UNet's time by op\n"
            "\n"
            "Compiled pipelines are kept in $VKD_CACHE_DIR, else $XDG_CACHE_HOME/vkdiff or ~/.cache/vkdiff\n"
            "(VKD_CACHE_DIR= turns the cache off).\n");
}

typedef struct progress_state {
    int tty;
    double t0;
    int image, images;
} progress_state;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int progress(void *user, int step, int total)
{
    progress_state *s = user;
    double el = now_s() - s->t0;
    double rate = step > 0 ? step / el : 0;
    double eta = rate > 0 ? (total - step) / rate : 0;
    if (s->tty) {
        int width = 30, fill = total ? step * width / total : 0;
        fprintf(stderr, "\r  [%.*s%*s] %d/%d  %.2f it/s  ETA %.0fs ", fill, "##############################",
                width - fill, "", step, total, rate, eta);
        if (step == total)
            fputc('\n', stderr);
    } else if (step == total || step == 1 || step % 5 == 0) {
        fprintf(stderr, "step %d/%d  %.2f it/s  ETA %.0fs\n", step, total, rate, eta);
    }
    return vkd_cli_interrupted() ? 1 : 0; /* Ctrl-C: the sampler stops at this step (VKD_ERR_CANCELLED) */
}

/* "AxB" (sep 'x') or "A,B" (sep ','): two integers in [0, 65536] */
static int parse_pair(const char *s, const char *opt, char sep, int *a, int *b)
{
    char *end;
    long x = strtol(s, &end, 10);
    if (end != s && *end == sep) {
        const char *s2 = end + 1;
        long y = strtol(s2, &end, 10);
        if (end != s2 && !*end && x >= 0 && y >= 0 && x <= 65536 && y <= 65536) {
            *a = (int)x, *b = (int)y;
            return 0;
        }
    }
    fprintf(stderr, "vkdiff: %s expects %s with numbers from 0 to 65536 (got '%s')\n", opt,
            sep == 'x' ? "WIDTHxHEIGHT" : "TOP,LEFT", s);
    return 1;
}

static int parse_int(const char *s, const char *opt, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi) {
        fprintf(stderr, "vkdiff: %s expects an integer between %lld and %lld (got '%s')\n", opt, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int readable(const char *path, const char *what)
{
    struct stat st;
    errno = 0;
    if (stat(path, &st) != 0 || (!S_ISDIR(st.st_mode) && access(path, R_OK) != 0)) {
        fprintf(stderr, "vkdiff: cannot read %s '%s': %s\n", what, path, strerror(errno ? errno : EACCES));
        return 0;
    }
    if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) { /* a FIFO would block the open */
        fprintf(stderr, "vkdiff: %s '%s' is not a regular file or a folder\n", what, path);
        return 0;
    }
    return 1;
}

/* The folder of the running executable: argv0's, or where PATH finds it when argv0 has
 * no slash (a command run by name). */
static void exe_dir(const char *argv0, char *dir, size_t n)
{
    const char *slash = strrchr(argv0, '/');
    if (slash) {
        snprintf(dir, n, "%.*s", (int)(slash - argv0), argv0);
        return;
    }
    snprintf(dir, n, ".");
    const char *path = getenv("PATH");
    while (path && *path) {
        const char *end = strchr(path, ':');
        size_t len = end ? (size_t)(end - path) : strlen(path);
        char cand[4096];
        if (len > 0 && len < 2048) {
            snprintf(cand, sizeof cand, "%.*s/%.1024s", (int)len, path, argv0);
            if (access(cand, X_OK) == 0) {
                snprintf(dir, n, "%.*s", (int)len, path);
                return;
            }
        }
        path = end ? end + 1 : NULL;
    }
}

/* weights/shapes.safetensors: where `cmake --install` puts it (<bin>/../share/vkdiff/
 * weights), beside the source tree the binary was built from, or ../weights and
 * ./weights relative to the executable and the working directory. */
static int find_shipped_model(const char *argv0, char model[4096], char tok[4096], size_t n)
{
    char dir[2048];
    exe_dir(argv0, dir, sizeof dir);
    char cands[4][2200];
    snprintf(cands[0], sizeof cands[0], "%s/../share/vkdiff/weights", dir);
#ifdef VKD_WEIGHTS_DIR
    snprintf(cands[1], sizeof cands[1], "%s", VKD_WEIGHTS_DIR);
#else
    snprintf(cands[1], sizeof cands[1], "weights");
#endif
    snprintf(cands[2], sizeof cands[2], "%s/../weights", dir);
    snprintf(cands[3], sizeof cands[3], "weights");
    for (int i = 0; i < 4; i++) {
        snprintf(model, n, "%.2150s/shapes.safetensors", cands[i]);
        snprintf(tok, n, "%.2150s/tokenizer", cands[i]);
        if (access(model, R_OK) == 0 && access(tok, R_OK) == 0)
            return 1;
    }
    return 0;
}

int vkd_cli_bench_model(int argc, char **argv, const char *default_model, const char *default_tok);
int vkd_cli_bench_lora(int argc, char **argv);

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "serve")) {
#ifdef VKD_HAVE_SERVE
        return vkd_serve_main(argc - 1, argv + 1);
#else
        fprintf(stderr, "vkdiff: built without the server (needs libmicrohttpd: Debian libmicrohttpd-dev)\n");
        return 2;
#endif
    }
    if (argc >= 3 && !strcmp(argv[1], "bench") && !strcmp(argv[2], "model")) {
        char m[4096], t[4096];
        int found = find_shipped_model(argv[0], m, t, sizeof m);
        return vkd_cli_bench_model(argc - 1, argv + 1, found ? m : NULL, found ? t : NULL);
    }
    if (argc >= 3 && !strcmp(argv[1], "bench") && !strcmp(argv[2], "lora"))
        return vkd_cli_bench_lora(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "bench")) {
        vkd_cli_env env;
        vkd_cli_env_read(&env);
        vkd_bench_ops_opts bo = {.coopmat = env.coopmat, .passes = env.bench_passes,
                                 .host_sgemm_ms = vkd_cli_time_sgemm};
        return vkd_bench_ops_main(argc - 1, argv + 1, &bo);
    }
    if (argc >= 2 && !strcmp(argv[1], "tokenize"))
        return vkd_tokenize_main(argc - 1, argv + 1, stdout);
    if (argc >= 2 && !strcmp(argv[1], "info")) {
        const char *model = NULL, *vae = NULL;
        for (int i = 2; i < argc; i++) {
            if (!strcmp(argv[i], "--vae") && i + 1 < argc)
                vae = argv[++i];
            else if (!strcmp(argv[i], "-v"))
                vkd_log_set(NULL, NULL, VKD_LOG_DEBUG);
            else if (!model)
                model = argv[i];
        }
        if (!model) {
            fprintf(stderr, "usage: vkdiff info MODEL [--vae FILE] [-v]\n");
            return 2;
        }
        return vkd_info_print(stdout, model, vae) == VKD_OK ? 0 : 1;
    }

    vkd_ctx_params cp;
    vkd_ctx_params_init(&cp);
    vkd_cli_env env;
    vkd_cli_env_read(&env);
    cp.cache_dir = env.cache_dir;
    cp.coopmat = env.coopmat;
    vkd_gen_params gp;
    vkd_gen_params_init(&gp);
    vkd_cli_preview preview = {0};
    char taesd_beside[4096];
    const char *out = "output.png";
    long long batch_count = 1, v;
    int verbose = 0;
    const char *precision = "auto";
    /* which options the user gave: the shipped model has its own defaults for the rest */
    int set_size = 0, set_steps = 0, set_cfg = 0, set_sampler = 0, set_schedule = 0;
    const char *init_path = NULL, *mask_path = NULL;
    enum { MAX_LORAS = 16 };
    vkd_lora_spec loras[MAX_LORAS];
    char lora_paths[MAX_LORAS][4096];
    int n_loras = 0;
    vkd_cli_image init = {0}, mask = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
#define TAKES_VALUE                                                              \
    do {                                                                         \
        if (!val) {                                                              \
            fprintf(stderr, "vkdiff: %s needs a value\n", a);                    \
            return 2;                                                            \
        }                                                                        \
        i++;                                                                     \
    } while (0)
        if (!strcmp(a, "--list-devices")) {
            vkd_result r = vkd_device_list(stdout);
            if (r)
                fprintf(stderr, "vkdiff: %s\n", vkd_result_str(r));
            return r ? 1 : 0;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-v")) {
            verbose = 1;
        } else if (!strcmp(a, "-vv")) {
            verbose = 2;
            cp.gpu_timestamps = true;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            TAKES_VALUE;
            cp.model_path = val;
        } else if (!strcmp(a, "--vae")) {
            TAKES_VALUE;
            cp.vae_path = val;
        } else if (!strcmp(a, "--taesd")) {
            TAKES_VALUE;
            gp.taesd = val;
        } else if (!strcmp(a, "--preview")) {
            TAKES_VALUE;
            preview.path = val;
        } else if (!strcmp(a, "--preview-every")) {
            TAKES_VALUE;
            char *end;
            long n_every = strtol(val, &end, 10);
            if (*end || end == val || n_every < 1 || n_every > 10000) {
                fprintf(stderr, "vkdiff: --preview-every expects a number of steps from 1 (got '%s')\n", val);
                return 2;
            }
            gp.preview_every = (int)n_every;
        } else if (!strcmp(a, "--tokenizer")) {
            TAKES_VALUE;
            cp.tokenizer_path = val;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            TAKES_VALUE;
            gp.prompt = val;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--negative")) {
            TAKES_VALUE;
            gp.negative = val;
        } else if (!strcmp(a, "-W") || !strcmp(a, "--width")) {
            TAKES_VALUE;
            if (parse_int(val, a, 1, 1 << 16, &v))
                return 2;
            gp.width = (int)v; set_size = 1;
        } else if (!strcmp(a, "-H") || !strcmp(a, "--height")) {
            TAKES_VALUE;
            if (parse_int(val, a, 1, 1 << 16, &v))
                return 2;
            gp.height = (int)v; set_size = 1;
        } else if (!strcmp(a, "--steps")) {
            TAKES_VALUE;
            if (parse_int(val, a, 1, 1000, &v))
                return 2;
            gp.steps = (int)v; set_steps = 1;
        } else if (!strcmp(a, "--cfg")) {
            TAKES_VALUE;
            char *end;
            gp.cfg = strtof(val, &end);
            set_cfg = 1;
            if (*end || end == val) {
                fprintf(stderr, "vkdiff: --cfg expects a number (got '%s')\n", val);
                return 2;
            }
        } else if (!strcmp(a, "--seed")) {
            TAKES_VALUE;
            if (parse_int(val, a, -1, 0x7fffffffffffffffll, &v))
                return 2;
            gp.seed = v;
        } else if (!strcmp(a, "--sampler")) {
            TAKES_VALUE;
            gp.sampler = val;
            set_sampler = 1;
        } else if (!strcmp(a, "--schedule")) {
            TAKES_VALUE;
            gp.schedule = val;
            set_schedule = 1;
        } else if (!strcmp(a, "--rng")) {
            TAKES_VALUE;
            gp.rng = val;
        } else if (!strcmp(a, "--prediction")) {
            TAKES_VALUE;
            gp.prediction = val;
        } else if (!strcmp(a, "--clip-skip")) {
            TAKES_VALUE;
            if (parse_int(val, a, 0, 12, &v))
                return 2;
            gp.clip_skip = (int)v;
        } else if (!strcmp(a, "-i") || !strcmp(a, "--init-img")) {
            TAKES_VALUE;
            init_path = val;
        } else if (!strcmp(a, "--mask")) {
            TAKES_VALUE;
            mask_path = val;
        } else if (!strcmp(a, "--strength")) {
            TAKES_VALUE;
            char *end;
            gp.strength = strtod(val, &end);
            if (*end || end == val || !(gp.strength >= 0 && gp.strength <= 1)) {
                fprintf(stderr, "vkdiff: --strength expects a number from 0 to 1 (got '%s')\n", val);
                return 2;
            }
        } else if (!strcmp(a, "--mask-blur")) {
            TAKES_VALUE;
            if (parse_int(val, a, 0, 256, &v))
                return 2;
            gp.mask_blur = (int)v;
        } else if (!strcmp(a, "--hires-scale") || !strcmp(a, "--hires-strength")) {
            TAKES_VALUE;
            char *end;
            double x = strtod(val, &end);
            if (*end || end == val) {
                fprintf(stderr, "vkdiff: %s expects a number (got '%s')\n", a, val);
                return 2;
            }
            if (!strcmp(a, "--hires-scale"))
                gp.hires_scale = x;
            else
                gp.hires_strength = x;
        } else if (!strcmp(a, "--hires-steps")) {
            TAKES_VALUE;
            if (parse_int(val, a, 0, 1000, &v))
                return 2;
            gp.hires_steps = (int)v;
        } else if (!strcmp(a, "--lora")) {
            TAKES_VALUE;
            if (n_loras == MAX_LORAS || strlen(val) >= sizeof lora_paths[0]) {
                fprintf(stderr, "vkdiff: --lora: at most %d, each a path under 4096 bytes\n", MAX_LORAS);
                return 2;
            }
            /* FILE:W when what follows the last ':' is a number, else the whole is the file */
            strcpy(lora_paths[n_loras], val);
            const char *colon = strrchr(val, ':');
            char *end = NULL;
            double w = colon ? strtod(colon + 1, &end) : 1.0;
            if (colon && end != colon + 1 && !*end)
                lora_paths[n_loras][colon - val] = 0;
            else
                w = 1.0;
            loras[n_loras] = (vkd_lora_spec){lora_paths[n_loras], (float)w};
            n_loras++;
            gp.loras = loras, gp.n_loras = n_loras;
        } else if (!strcmp(a, "--lora-dir")) {
            TAKES_VALUE;
            gp.lora_dir = val;
        } else if (!strcmp(a, "--hires-upscale")) {
            TAKES_VALUE;
            gp.hires_upscale = val;
        } else if (!strcmp(a, "--pad")) {
            TAKES_VALUE;
            char tail;
            if (sscanf(val, "%d,%d,%d,%d%c", &gp.pad_left, &gp.pad_top, &gp.pad_right, &gp.pad_bottom, &tail) != 4) {
                fprintf(stderr, "vkdiff: --pad expects LEFT,TOP,RIGHT,BOTTOM in pixels (got '%s')\n", val);
                return 2;
            }
        } else if (!strcmp(a, "--no-paste-back")) {
            gp.no_paste_back = true;
        } else if (!strcmp(a, "--original-size")) {
            TAKES_VALUE;
            if (parse_pair(val, a, 'x', &gp.sdxl_original_width, &gp.sdxl_original_height))
                return 2;
        } else if (!strcmp(a, "--target-size")) {
            TAKES_VALUE;
            if (parse_pair(val, a, 'x', &gp.sdxl_target_width, &gp.sdxl_target_height))
                return 2;
        } else if (!strcmp(a, "--crop")) {
            TAKES_VALUE;
            if (parse_pair(val, a, ',', &gp.sdxl_crop_top, &gp.sdxl_crop_left))
                return 2;
        } else if (!strcmp(a, "--empty-negative")) {
            TAKES_VALUE;
            if (strcmp(val, "zeros") && strcmp(val, "encode")) {
                fprintf(stderr, "vkdiff: --empty-negative expects zeros or encode (got '%s')\n", val);
                return 2;
            }
            gp.sdxl_encode_empty_negative = !strcmp(val, "encode");
        } else if (!strcmp(a, "--batch-count")) {
            TAKES_VALUE;
            if (parse_int(val, a, 1, 10000, &batch_count))
                return 2;
        } else if (!strcmp(a, "--precision")) {
            TAKES_VALUE;
            precision = val;
        } else if (!strcmp(a, "--weight-type") || !strcmp(a, "--type")) { /* --type: stable-diffusion.cpp's */
            TAKES_VALUE;
            if (!strcmp(val, "f16") || !strcmp(val, "f32"))
                precision = !strcmp(val, "f16") ? "fp16" : "fp32";
            else
                cp.weight_type = val;
        } else if (!strcmp(a, "--device")) {
            TAKES_VALUE;
            if (parse_int(val, a, 0, 64, &v))
                return 2;
            cp.device_index = (int)v;
        } else if (!strcmp(a, "--vae-tiling")) {
            gp.vae_tiling = 1;
        } else if (!strcmp(a, "--no-vae-tiling")) {
            gp.vae_tiling = -1;
        } else if (!strcmp(a, "--vae-tile")) {
            TAKES_VALUE;
            if (parse_int(val, a, 64, 8192, &v))
                return 2;
            if (v % 8) {
                fprintf(stderr, "vkdiff: --vae-tile must be a multiple of 8 (got %lld)\n", (long long)v);
                return 2;
            }
            gp.vae_tile = (int)v;
        } else if (!strcmp(a, "--mem-budget")) {
            TAKES_VALUE;
            if (parse_int(val, a, 64, 1 << 22, &v))
                return 2;
            cp.memory_budget_mb = (uint32_t)v;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            TAKES_VALUE;
            out = val;
        } else {
            fprintf(stderr, "vkdiff: unknown argument '%s' (see vkdiff --help)\n", a);
            return 2;
        }
    }
    char shipped_model[4096], shipped_tok[4096];
    if (!cp.model_path) {
        /* No -m: the small model trained by this project (weights/, issue 5), with the
         * settings its adherence test uses unless the user chose others. */
        if (!find_shipped_model(argv[0], shipped_model, shipped_tok, sizeof shipped_model)) {
            fprintf(stderr, "vkdiff: no model: pass -m MODEL (the shipped weights/shapes.safetensors was not "
                            "found; see vkdiff --help)\n");
            return 2;
        }
        cp.model_path = shipped_model;
        if (!cp.tokenizer_path)
            cp.tokenizer_path = shipped_tok;
        if (!set_size)
            gp.width = gp.height = 64;
        if (!set_steps)
            gp.steps = 10;
        if (!set_cfg)
            gp.cfg = 5;
        if (!set_sampler)
            gp.sampler = "dpm++2m";
        if (!set_schedule)
            gp.schedule = "karras";
        if (!gp.prompt)
            gp.prompt = "a large red circle in the center on a blue background";
        fprintf(stderr, "vkdiff: using the shipped shapes model %s\n", shipped_model);
    }
    if (preview.path) { /* previews need a TAESD decoder: --taesd, else the one shipped beside the model */
        gp.preview = vkd_cli_preview_write, gp.preview_user = &preview;
        if (!gp.taesd && vkd_cli_taesd_beside(cp.model_path, taesd_beside, sizeof taesd_beside))
            gp.preview_taesd = taesd_beside;
        if (!gp.taesd && !gp.preview_taesd) {
            fprintf(stderr, "vkdiff: --preview needs a TAESD decoder: pass --taesd FILE (none beside the model: %s)\n",
                    taesd_beside);
            return 2;
        }
    }
    if (!strcmp(precision, "fp32"))
        cp.precision = VKD_PRECISION_FP32;
    else if (!strcmp(precision, "fp16"))
        cp.precision = VKD_PRECISION_FP16;
    else if (strcmp(precision, "auto")) {
        fprintf(stderr, "vkdiff: --precision expects fp16, fp32 or auto (got '%s')\n", precision);
        return 2;
    }
    if (!gp.prompt) {
        fprintf(stderr, "vkdiff: no prompt: pass -p TEXT\n");
        return 2;
    }
    /* image input: read and checked before the GPU is touched */
    if (mask_path && !init_path) {
        fprintf(stderr, "vkdiff: --mask needs an image to inpaint: pass -i FILE\n");
        return 2;
    }
    if (init_path) {
        char err[512];
        if (vkd_cli_image_read(init_path, &init, err, sizeof err) ||
            (mask_path && vkd_cli_mask_read(mask_path, &mask, err, sizeof err))) {
            fprintf(stderr, "vkdiff: %s\n", err);
            vkd_cli_image_free(&init);
            return 1;
        }
        gp.init_image = init.pixels, gp.init_width = init.width, gp.init_height = init.height;
        if (mask_path)
            gp.mask = mask.pixels, gp.mask_width = mask.width, gp.mask_height = mask.height;
        if (!set_size) { /* the image's size, to the nearest multiple of 8 (at least 8) */
            gp.width = (init.width + 4) / 8 * 8 < 8 ? 8 : (init.width + 4) / 8 * 8;
            gp.height = (init.height + 4) / 8 * 8 < 8 ? 8 : (init.height + 4) / 8 * 8;
            set_size = 1;
        }
    }
    /* A1111 and ComfyUI spellings ("DPM++ 2M SDE", "SGM Uniform", "Automatic") to the
     * library's names; an unknown one is left for the library's message */
    vkd_names_resolve(&gp.sampler, &gp.schedule, set_schedule);
    /* everything that can be checked without the GPU, before touching it */
    if (vkd_gen_params_check(&gp) != VKD_OK) {
        vkd_cli_image_free(&init), vkd_cli_image_free(&mask);
        return 2;
    }
    if (!readable(cp.model_path, "model") || (cp.vae_path && !readable(cp.vae_path, "VAE")) ||
        (gp.taesd && !readable(gp.taesd, "TAESD decoder")) ||
        (cp.tokenizer_path && !readable(cp.tokenizer_path, "tokenizer")))
        goto fail_images;
    for (int k = 0; k < n_loras; k++)
        if (!readable(loras[k].path, "LoRA"))
            goto fail_images;
    /* never write over an input: every file name the batch will write, checked now */
    for (long long b = 0; b < batch_count; b++) {
        char *path = vkd_cli_batch_path(out, b, batch_count);
        if (!path) {
            fprintf(stderr, "vkdiff: out of memory\n");
            goto fail_images;
        }
        int clash = vkd_cli_output_is_input(path, cp.model_path, "model") ||
                    vkd_cli_output_is_input(path, cp.vae_path, "VAE") ||
                    vkd_cli_output_is_input(path, cp.tokenizer_path, "tokenizer") ||
                    vkd_cli_output_is_input(path, init_path, "init image") ||
                    vkd_cli_output_is_input(path, mask_path, "mask") ||
                    vkd_cli_output_is_input(path, gp.taesd, "TAESD decoder") ||
                    vkd_cli_output_is_input(path, preview.path, "preview");
        for (int k = 0; k < n_loras; k++)
            clash = clash || vkd_cli_output_is_input(path, loras[k].path, "LoRA");
        free(path);
        if (clash)
            goto fail_images_2;
    }
    if (preview.path && (vkd_cli_output_is_input(preview.path, cp.model_path, "model") ||
                         vkd_cli_output_is_input(preview.path, gp.taesd, "TAESD decoder") ||
                         vkd_cli_output_is_input(preview.path, gp.preview_taesd, "TAESD decoder") ||
                         vkd_cli_output_is_input(preview.path, init_path, "init image") ||
                         vkd_cli_output_is_input(preview.path, mask_path, "mask")))
        goto fail_images_2;
    vkd_log_set(NULL, NULL, verbose ? VKD_LOG_INFO : VKD_LOG_WARN);
    vkd_cli_interrupt_install();

    vkd_ctx *ctx = NULL;
    vkd_result r = vkd_ctx_create(&cp, &ctx);
#ifdef VKD_SANITIZE_BUILD
    vkd_pin_driver_libs(); /* vkdiff_dev.h */
#endif
    if (r) {
        fprintf(stderr, "vkdiff: %s\n", vkd_result_str(r));
        vkd_cli_image_free(&init), vkd_cli_image_free(&mask);
        return vkd_cli_interrupted() ? 128 + vkd_cli_interrupted() : 1;
    }
    if (!set_size && !strcmp(vkd_ctx_family(ctx), "SDXL")) { /* the base model's native size */
        gp.width = gp.height = 1024;
        fprintf(stderr, "vkdiff: SDXL at 1024x1024 (-W/-H for another size; SDXL-Turbo: 512x512)\n");
    }
    int out_w, out_h; /* the hires fix's output is larger */
    vkd_image_size(&gp, &out_w, &out_h);
    uint8_t *rgb = malloc(vkd_image_bytes(&gp));
    if (!rgb) {
        fprintf(stderr, "vkdiff: out of memory\n");
        vkd_ctx_free(ctx);
        goto fail_images;
    }
    progress_state ps = {.tty = isatty(2), .images = (int)batch_count};
    gp.progress = progress;
    gp.progress_user = &ps;
    int64_t seed0 = gp.seed;
    int rc = 0;
    for (long long b = 0; b < batch_count && rc == 0 && !vkd_cli_interrupted(); b++) {
        gp.seed = seed0 < 0 ? (b == 0 ? -1 : gp.seed_used + 1) : seed0 + b;
        ps.t0 = now_s();
        ps.image = (int)b;
        r = vkd_generate(ctx, &gp, rgb);
        if (r) {
            if (r != VKD_ERR_CANCELLED)
                fprintf(stderr, "vkdiff: %s\n", vkd_result_str(r));
            rc = 1;
            break;
        }
        if (seed0 < 0 && b == 0)
            fprintf(stderr, "seed %lld\n", (long long)gp.seed_used);
        char *path = vkd_cli_batch_path(out, b, batch_count);
        /* A1111 infotext, as long as the prompts */
        vkd_strbuf params = {0};
        vkd_infotext(&params, &gp, vkd_base_name(cp.model_path), cp.vae_path ? vkd_base_name(cp.vae_path) : NULL,
                     loras, n_loras);
        if (!path || params.failed) {
            fprintf(stderr, "vkdiff: out of memory\n");
            free(path);
            vkd_strbuf_free(&params);
            rc = 1;
            break;
        }
        int wr = vkd_png_write(path, rgb, out_w, out_h, params.s, env.write_pause_ms);
        vkd_strbuf_free(&params);
        if (wr) {
            free(path);
            rc = 1;
            break;
        }
        vkd_timings t;
        vkd_last_timings(ctx, &t);
        fprintf(stderr, "wrote %s (%.1f s)\n", path, t.total_ms / 1000);
        free(path);
        if (verbose) {
            if (b == 0)
                fprintf(stderr, "  model opened in %.0f ms (header, device, weight index)\n", t.load_ms);
            fprintf(stderr, "  text %.0f ms, UNet setup %.0f ms, UNet %.0f ms for %d evaluations (%.0f ms each), VAE %.0f ms",
                    t.text_ms, t.unet_setup_ms, t.unet_ms, t.unet_evals, t.unet_evals ? t.unet_ms / t.unet_evals : 0,
                    t.vae_ms);
            if (t.vae_tiles > 1)
                fprintf(stderr, " (%d tiles)", t.vae_tiles);
            if (t.encode_ms > 0)
                fprintf(stderr, ", VAE encoder %.0f ms", t.encode_ms);
            fprintf(stderr, "\n  device memory: peak %.1f MiB held (plan: %.1f MiB)\n", t.peak_bytes / 1048576.0,
                    t.planned_peak_bytes / 1048576.0);
        }
    }
    free(rgb);
    vkd_ctx_free(ctx);
    vkd_cli_image_free(&init), vkd_cli_image_free(&mask);
    if (vkd_cli_interrupted()) /* the shell's convention: 128 + the signal */
        return 128 + vkd_cli_interrupted();
    return rc;
fail_images:
    vkd_cli_image_free(&init), vkd_cli_image_free(&mask);
    return 1;
fail_images_2:
    vkd_cli_image_free(&init), vkd_cli_image_free(&mask);
    return 2;
}
