/* 2D convolution over channels-last activations, as an implicit GEMM on the tiled
 * core of shaders/gemm.comp (the conv2d* kernels; 1x1 stride-1 convs run the
 * linear kernel). Feature maps larger than one binding window are split by output
 * rows, each window holding the input rows (halo included) those rows read. */
#ifndef VKD_CONV2D_H
#define VKD_CONV2D_H

#include "ops/op.h"

typedef struct vkd_conv2d_params {
    int stride;
    /* zero padding per side; the VAE encoder's downsample is F.pad(x, (0,1,0,1))
     * then a stride-2 conv: top 0, bottom 1, left 0, right 1 */
    int pad_top, pad_bottom, pad_left, pad_right;
    /* 1: convolve the nearest-neighbour upsampling of x to H x W (the UNet's Upsample,
     * which then never exists in memory): x is [N, up_h*up_w, Cin], H and W are the
     * upsampled size the padding and output refer to */
    int upsample;
    /* fp32 partial sums for split-K (vkd_gemm_split_scratch_numel elements, with m = N *
     * OH * OW, n = Cout, k = KH * KW * Cin, kstep = Cin), or NULL: the GEMM runs unsplit */
    const vkd_tensor *scratch;
    /* with upsample: x's stored size; 0, 0: H/2 x W/2, an exact 2x. Otherwise nearest
     * as torch's F.interpolate(size=(H, W)): source row floor(y * up_h / H), which is
     * how diffusers' UNet meets a skip connection of odd size (Upsample2D output_size) */
    int up_h, up_w;
} vkd_conv2d_params;

/* stride s, the same padding p on every side (nn.Conv2d(padding=p)) */
static inline vkd_conv2d_params vkd_conv2d_params_sym(int s, int p)
{
    vkd_conv2d_params c = {s, p, p, p, p, 0, NULL, 0, 0};
    return c;
}

/* Elements [e0, e0 + n) of a conv kernel re-laid from PyTorch's [cout, cin, kh, kw] to
 * [cout, kh, kw, cin] (what vkd_op_conv2d reads), as 16-bit values: src holds the whole
 * kernel in PyTorch's order (no alignment needed), dst receives the n elements. For
 * uploads in chunks straight from a file's mapping (models/wstore.c). */
void vkd_conv2d_relay_f16(void *dst, int64_t e0, int64_t n, const void *src, int64_t cout, int64_t cin, int64_t kh,
                          int64_t kw);

/* Output size of a conv along one axis: (in + pad_lo + pad_hi - k) / stride + 1. */
static inline int64_t vkd_conv2d_out_dim(int64_t in, int k, int stride, int pad_lo, int pad_hi)
{
    return (in + pad_lo + pad_hi - k) / stride + 1;
}

/* Re-lay PyTorch conv weights w [cout, cin, kh, kw] (fp32, host) as [cout, kh, kw, cin]
 * (so the GEMM reduction index k = (ky*kw + kx)*cin + ci runs along memory) and upload
 * into a new tensor of dtype dt with shape [cout, kh, kw, cin]. Caller owns *out. */
vkd_result vkd_conv2d_weight_upload(vkd_device *d, vkd_dtype dt, const float *w_pytorch, int64_t cout, int64_t cin,
                                    int kh, int kw, vkd_tensor *out);

/* The checks every conv kernel's op shares (vkd_op_conv2d, the Winograd conv): out is
 * [nimg, pixels, cout], bias has cout elements, residual out's shape, and weight, bias,
 * residual and out all have x's dtype. VKD_ERR_SHAPE (logged, naming op) otherwise. */
vkd_result vkd_conv_check_epilogue(const char *op, const vkd_tensor *x, const vkd_tensor *weight,
                                   const vkd_tensor *bias, const vkd_tensor *residual, const vkd_tensor *out,
                                   int64_t nimg, int64_t pixels, int64_t cout);

/* x: [N, H*W, Cin] (h, w given); weight: [Cout, kh, kw, Cin] from vkd_conv2d_weight_upload;
 * bias: [Cout] or NULL; residual: out's shape or NULL (may be out itself);
 * out: [N, OH*OW, Cout] with OH, OW from vkd_conv2d_out_dim. One dtype for all;
 * out must not overlap x. VKD_ERR_SHAPE (logged) on a mismatch. */
vkd_result vkd_op_conv2d(vkd_cmd *c, const vkd_tensor *x, int64_t h, int64_t w, const vkd_tensor *weight,
                         const vkd_tensor *bias, const vkd_tensor *residual, const vkd_conv2d_params *p,
                         vkd_tensor *out);

#endif
