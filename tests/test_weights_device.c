/* Weights on the device: every tensor of a checkpoint, uploaded through the weight
 * store and read back, equals the file's values after the declared conversion
 * (fp32 device: exact; fp16 device: the file's fp16 bits, or fp32 -> fp16 rounding). */
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
        size_t n = vkd_weights_count(w), bad = 0, checked = 0;
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
            checked++;
            free(file);
            free(dev);
            /* keep device memory flat: drop what was checked */
            vkd_wstore_release(ws, wt->name);
        }
        printf("%s: %zu tensors on the device as %s, %zu differ%s%s\n", path, checked, vkd_dtype_suffix(dts[k]), bad,
               first_bad ? ", first: " : "", first_bad ? first_bad : "");
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
