/* libFuzzer target: the command's PNG and JPEG decoders (cli/image_read.h) on arbitrary
 * bytes, read as RGB (an init image), as grey (a mask) and as the server's alpha mask
 * (channels 2: one channel out). An accepted image must
 * come back with the size and channels it claims; every pixel is read so a short
 * buffer shows under ASan. The pixel limit is lowered to 1 Mpx: at the real limit
 * (64 Mpx) a 30-byte header would make every input allocate and fill 192 MiB. Seeds:
 * tests/fuzz_corpus/image/ (tools/fuzz_seeds.py). */
#include <stdint.h>
#include <stdlib.h>

#include "cli/image_read.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int ch = 3; ch >= 1; ch--) {
        int och = ch == 2 ? 1 : ch;
        vkd_cli_image img;
        char err[256];
        err[0] = 0;
        if (vkd_cli_image_decode(data, size, "fuzz", ch, 1 << 20, &img, err, sizeof err) != 0) {
            if (img.pixels || !err[0])
                abort(); /* a refusal leaves nothing allocated and says why */
            continue;
        }
        if (!img.pixels || img.channels != och || img.width <= 0 || img.height <= 0 ||
            (int64_t)img.width * img.height > (1 << 20))
            abort();
        unsigned sum = 0;
        for (size_t i = 0; i < (size_t)img.width * img.height * (size_t)och; i++)
            sum += img.pixels[i];
        vkd_cli_image_free(&img);
        if (sum == 0xffffffffu) /* keeps the reads */
            abort();
    }
    return 0;
}
