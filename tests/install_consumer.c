/* A program built against an installed vkdiff through `pkg-config vkdiff` alone
 * (tests/install_test.sh): it includes only <vkdiff.h>, makes a context on the shipped
 * shapes model, draws one 64x64 image in two steps, checks that the image is not
 * blank and writes it as a PPM.
 *   install_consumer MODEL TOKENIZER OUT.ppm */
#include <vkdiff.h>

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL TOKENIZER OUT.ppm\n", argv[0]);
        return 2;
    }
    vkd_ctx_params cp;
    vkd_ctx_params_init(&cp);
    cp.model_path = argv[1];
    cp.tokenizer_path = argv[2];
    vkd_ctx *ctx = NULL;
    vkd_result r = vkd_ctx_create(&cp, &ctx);
    if (r != VKD_OK) {
        fprintf(stderr, "install_consumer: vkd_ctx_create: %s (%d)\n", vkd_result_str(r), (int)r);
        return 1;
    }
    vkd_gen_params gp;
    vkd_gen_params_init(&gp);
    gp.prompt = "a large red circle in the center on a blue background";
    gp.width = gp.height = 64;
    gp.steps = 2;
    gp.cfg = 5;
    gp.seed = 7;
    size_t n = vkd_image_bytes(&gp);
    uint8_t *rgb = malloc(n);
    if (!rgb) {
        vkd_ctx_free(ctx);
        return 1;
    }
    r = vkd_generate(ctx, &gp, rgb);
    vkd_ctx_free(ctx);
    if (r != VKD_OK) {
        fprintf(stderr, "install_consumer: vkd_generate: %s (%d)\n", vkd_result_str(r), (int)r);
        free(rgb);
        return 1;
    }
    /* not blank: the pixel values vary (in each channel) */
    int rc = 0;
    for (int c = 0; c < 3; c++) {
        double sum = 0, sum2 = 0;
        size_t px = n / 3;
        for (size_t i = 0; i < px; i++) {
            double v = rgb[i * 3 + (size_t)c];
            sum += v;
            sum2 += v * v;
        }
        double mean = sum / (double)px, var = sum2 / (double)px - mean * mean;
        printf("install_consumer: channel %d mean %.1f variance %.1f\n", c, mean, var);
        if (!(var > 1.0))
            rc = 1;
    }
    FILE *f = fopen(argv[3], "wb");
    if (!f || fprintf(f, "P6\n%d %d\n255\n", gp.width, gp.height) < 0 || fwrite(rgb, 1, n, f) != n) {
        fprintf(stderr, "install_consumer: cannot write %s\n", argv[3]);
        rc = 1;
    }
    if (f && fclose(f) != 0)
        rc = 1;
    free(rgb);
    if (rc)
        fprintf(stderr, "install_consumer: FAIL\n");
    else
        printf("install_consumer: wrote %s\n", argv[3]);
    return rc;
}
