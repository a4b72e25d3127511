/* Weights on the device: every tensor of a checkpoint, uploaded through the weight
 * store and read back, equals the file's values after the declared conversion
 * (fp32 device: exact; fp16 device: the file's fp16 bits, or fp32 -> fp16 rounding). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/half.h"
#include "harness.h"
#include "io/layout.h"
#include "models/wstore.h"

static void check_file(vkd_device *d, const char *path)
{
    vkd_weights *w = NULL;
    vkd_result r = vkd_weights_open(path, NULL, &w);
    TEST_CHECK(r == VKD_OK, "open %s: %s", path, vkd_result_str(r));
    if (r)
        return;
    vkd_dtype dts[2];
    int ndt = test_dtypes(d, dts);
    for (int k = 0; k < ndt; k++) {
        vkd_wstore *ws = NULL;
        TEST_CHECK(vkd_wstore_create(d, w, dts[k], &ws) == VKD_OK, "store");
        size_t n = vkd_weights_count(w), bad = 0, checked = 0, kinds = 0;
        const char *first_bad = NULL;
        for (size_t i = 0; i < n; i++) {
            const vkd_wtensor *wt = vkd_weights_at(w, i);
            const vkd_tensor *t = vkd_wstore_get(ws, VKD_W_RAW, "%s", wt->name);
            if (!t) {
                bad++;
                first_bad = first_bad ? first_bad : wt->name;
                continue;
            }
            float *file = malloc(wt->nelem * sizeof *file), *dev = malloc(wt->nelem * sizeof *dev);
            vkd_wtensor_read_f32(wt, file);
            vkd_tensor_download_f32(d, t, dev);
            int same = 1;
            for (size_t e = 0; e < wt->nelem; e++) {
                float want = dts[k] == VKD_F16 ? vkd_half_to_float(vkd_float_to_half(file[e])) : file[e];
                if (memcmp(&want, &dev[e], 4) != 0) {
                    same = 0;
                    break;
                }
            }
            if (!same) {
                bad++;
                first_bad = first_bad ? first_bad : wt->name;
            }
            /* the conv kind re-lays [cout, cin, kh, kw] as [cout, kh, kw, cin]; the linear
             * kind keeps the order: both from the same values (the fp16 bytes as they are
             * where the file is fp16, wstore.c direct_f16) */
            bool conv = wt->rank == 4 && wt->shape[2] * wt->shape[3] > 1;
            bool lin = wt->rank == 2 || (wt->rank == 4 && !conv);
            const vkd_tensor *tk = conv || lin ? vkd_wstore_get(ws, conv ? VKD_W_CONV : VKD_W_LINEAR, "%s", wt->name)
                                               : NULL;
            if (tk) {
                vkd_tensor_download_f32(d, tk, dev);
                int64_t co = wt->shape[0], ci = wt->shape[1], kh = conv ? wt->shape[2] : 1, kw = conv ? wt->shape[3] : 1;
                if (lin)
                    ci = (int64_t)wt->nelem / co;
                for (int64_t o = 0; o < co && same; o++)
                    for (int64_t c = 0; c < ci && same; c++)
                        for (int64_t y = 0; y < kh; y++)
                            for (int64_t x = 0; x < kw; x++) {
                                float f = file[((o * ci + c) * kh + y) * kw + x];
                                float want = dts[k] == VKD_F16 ? vkd_half_to_float(vkd_float_to_half(f)) : f;
                                if (memcmp(&want, &dev[((o * kh + y) * kw + x) * ci + c], 4) != 0)
                                    same = 0;
                            }
                if (!same) {
                    bad++;
                    first_bad = first_bad ? first_bad : wt->name;
                }
                kinds++;
            } else if (conv || lin) {
                bad++;
                first_bad = first_bad ? first_bad : wt->name;
            }
            checked++;
            free(file);
            free(dev);
            /* keep device memory flat: drop what was checked */
            vkd_wstore_release(ws, wt->name);
        }
        printf("%s: %zu tensors on the device as %s (%zu also as conv or linear weights), %zu differ%s%s\n", path,
               checked, vkd_dtype_suffix(dts[k]), kinds, bad, first_bad ? ", first: " : "", first_bad ? first_bad : "");
        TEST_CHECK(kinds > 100, "%s: only %zu conv or linear weights", path, kinds);
        TEST_CHECK(bad == 0 && checked == n, "%s %s: %zu of %zu tensors differ (first %s)", path,
                   vkd_dtype_suffix(dts[k]), bad, n, first_bad ? first_bad : "-");
        vkd_wstore_destroy(ws);
    }
    vkd_weights_close(w);
}

int main(void)
{
    vkd_device *d = test_device_open(0);
    check_file(d, test_data_path("tiny-sd1.safetensors"));
    check_file(d, test_data_path("tiny-sd2.safetensors"));
    test_device_close(d);
    return test_finish();
}
