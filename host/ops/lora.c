/* LoRA weight updates in place (shaders/lora.comp); rows chunked so every window fits one binding. */
#include "ops/lora.h"

#include "common/log.h"
#include "push_lora.h"

#define TILE 16 /* the shader's tile: local size TILE x TILE */

/* Rows per dispatch: W's and U's windows fit, and the grid's y stays within 65535 groups. */
static int64_t rows_per_dispatch(vkd_cmd *c, const vkd_tensor *w, int64_t ldw, int64_t u_cols)
{
    int64_t by_w = vkd_op_max_elems(c, w->dtype) / (ldw > 0 ? ldw : 1);
    int64_t by_u = vkd_op_max_elems(c, VKD_F32) / (u_cols > 0 ? u_cols : 1);
    int64_t n = by_w < by_u ? by_w : by_u;
    if (n > 65535ll * TILE)
        n = 65535ll * TILE;
    if (n >= TILE)
        n -= n % TILE;
    return n;
}

static vkd_result check_window(const char *op, const vkd_tensor *w, int64_t row0, int64_t rows, int64_t cols,
                               int64_t ldw)
{
    if (row0 < 0 || rows < 1 || cols < 1 || ldw < cols || (row0 + rows - 1) * ldw + cols > vkd_tensor_numel(w))
        return vkd_op_shape_error(op, "rows/cols/ldw must lie inside the weight", w);
    if (ldw > UINT32_MAX || cols > 65535ll * TILE)
        return vkd_op_shape_error(op, "a row is too long for one dispatch", w);
    return VKD_OK;
}

vkd_result vkd_op_lora_update(vkd_cmd *c, const vkd_tensor *w, int64_t row0, int64_t rows, int64_t cols, int64_t ldw,
                              const vkd_tensor *u, const vkd_tensor *d, int64_t rank, float scale)
{
    static const char op[] = "lora_update";
    vkd_result r = check_window(op, w, row0, rows, cols, ldw);
    if (r)
        return r;
    int64_t u_cols = d ? rank : cols;
    if (u->dtype != VKD_F32 || vkd_tensor_numel(u) != rows * u_cols)
        return vkd_op_shape_error(op, "u must be fp32 [rows, rank] (or [rows, cols] without d)", u);
    if (d && (rank < 1 || d->dtype != VKD_F32 || vkd_tensor_numel(d) != rank * cols))
        return vkd_op_shape_error(op, "d must be fp32 [rank, cols]", d);
    if (d && rank * cols > vkd_op_max_elems(c, VKD_F32)) {
        VKD_ERROR("%s: the down factor [%lld, %lld] exceeds one binding window", op, (long long)rank,
                  (long long)cols);
        return VKD_ERR_TOO_LARGE;
    }
    int64_t chunk = rows_per_dispatch(c, w, ldw, u_cols);
    if (chunk < 1) {
        VKD_ERROR("%s: one row of %lld elements exceeds a binding window", op, (long long)ldw);
        return VKD_ERR_TOO_LARGE;
    }
    const vkd_pipeline *p;
    uint32_t spec[3] = {TILE, TILE, 1};
    if ((r = vkd_op_pipeline(c, VKD_KERNEL_LORA, w->dtype, spec, 3, &p)))
        return r;
    vkd_cmd_add_flops(c, 2.0 * (double)rows * (double)cols * (double)(d ? rank : 1));
    for (int64_t o0 = 0; o0 < rows; o0 += chunk) {
        int64_t n = rows - o0 < chunk ? rows - o0 : chunk;
        vkd_push_lora pc = {.rows = (uint32_t)n, .cols = (uint32_t)cols, .rank = (uint32_t)(d ? rank : 0),
                            .ldw = (uint32_t)ldw, .mode = d ? VKD_LORA_LOW_RANK : VKD_LORA_DENSE, .scale = scale};
        vkd_binding b[3];
        if ((r = vkd_op_bind(c, w, (row0 + o0) * ldw, (n - 1) * ldw + cols, &b[0], &pc.w_off)) ||
            (r = vkd_op_bind(c, u, o0 * u_cols, n * u_cols, &b[1], &pc.u_off)))
            return r;
        if (d && (r = vkd_op_bind(c, d, 0, rank * cols, &b[2], &pc.d_off)))
            return r;
        if (!d)
            b[2] = b[1]; /* unused, but bound */
        uint32_t gx = (uint32_t)((cols + TILE - 1) / TILE), gy = (uint32_t)((n + TILE - 1) / TILE);
        if ((r = vkd_cmd_dispatch(c, p, b, 3, &pc, sizeof pc, gx, gy, 1, "lora_update")))
            return r;
    }
    return VKD_OK;
}

vkd_result vkd_op_row_sum(vkd_cmd *c, const vkd_tensor *w, int64_t row0, int64_t rows, int64_t cols, int64_t ldw,
                          vkd_tensor *out, int64_t out0)
{
    static const char op[] = "row_sum";
    vkd_result r = check_window(op, w, row0, rows, cols, ldw);
    if (r)
        return r;
    if (out->dtype != VKD_F32 || out0 < 0 || out0 + rows > vkd_tensor_numel(out))
        return vkd_op_shape_error(op, "out must be fp32 with room for a sum per row", out);
    int64_t chunk = rows_per_dispatch(c, w, ldw, 1);
    if (chunk < 1) {
        VKD_ERROR("%s: one row of %lld elements exceeds a binding window", op, (long long)ldw);
        return VKD_ERR_TOO_LARGE;
    }
    const vkd_pipeline *p;
    uint32_t spec[3] = {TILE, TILE, 1};
    if ((r = vkd_op_pipeline(c, VKD_KERNEL_LORA, w->dtype, spec, 3, &p)))
        return r;
    for (int64_t o0 = 0; o0 < rows; o0 += chunk) {
        int64_t n = rows - o0 < chunk ? rows - o0 : chunk;
        vkd_push_lora pc = {.rows = (uint32_t)n, .cols = (uint32_t)cols, .ldw = (uint32_t)ldw,
                            .mode = VKD_LORA_ROW_SUM};
        vkd_binding b[3];
        if ((r = vkd_op_bind(c, w, (row0 + o0) * ldw, (n - 1) * ldw + cols, &b[0], &pc.w_off)) ||
            (r = vkd_op_bind(c, out, out0 + o0, n, &b[1], &pc.u_off)))
            return r;
        b[2] = b[1];
        uint32_t gx, gy;
        vkd_op_grid_1d((uint64_t)n, TILE * TILE, &gx, &gy);
        if ((r = vkd_cmd_dispatch(c, p, b, 3, &pc, sizeof pc, gx, gy, 1, "row_sum")))
            return r;
    }
    return VKD_OK;
}
