/* Winograd F(2x2,3x3) convolution (shaders/winograd.comp; host/ops/winograd.c):
 * 3x3, stride 1, padding 1 over channels-last [N, H*W, Cin] -> [N, H*W, Cout].
 * Element offsets (*_off) are positions inside binding windows. */
#ifndef VKD_PUSH_WINOGRAD_H
#define VKD_PUSH_WINOGRAD_H
#include "push.h"

#define VKD_WINO_BIAS 1u     /* flags: add bias[co] */
#define VKD_WINO_RESIDUAL 2u /* flags: add res (out's layout) */

VKD_PUSH_BEGIN(vkd_push_winograd)
    pc_uint cin;
    pc_uint cinp;    /* U's channel stride: cin rounded up to 8 (vkd_conv2d_winograd_cin_padded) */
    pc_uint cout;
    pc_uint h;       /* image height and width (input and output) */
    pc_uint w;
    pc_uint th;      /* tile rows per image in this dispatch: ceil(h / 2), or a band's */
    pc_uint twg;     /* groups of TT tiles per tile row: ceil(ceil(w / 2) / TT) */
    pc_uint groups;  /* tile groups in this dispatch: images * th * twg */
    pc_uint a_off;   /* x (the weight kernel: the re-laid weight [Cout, 3, 3, Cin]) */
    pc_uint u_off;   /* U [Cout, 16, cinp] */
    pc_uint b_off;
    pc_uint r_off;
    pc_uint o_off;
    pc_uint flags;
    /* a band of one image (the image exceeds a binding window): its first tile row, and
     * the first input row the input window holds; the output window starts at output
     * row 2 * ty0. Whole images: 0, 0. */
    pc_uint ty0;
    pc_uint iy_lo;
VKD_PUSH_END(vkd_push_winograd)

#endif
