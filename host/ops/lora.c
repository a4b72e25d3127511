/* LoRA weight updates in place: the low-rank product by the GEMM into the weight, dense
 * deltas and row sums by shaders/lora.comp (rows chunked so every window fits one binding). */
#include "ops/lora.h"

#include "common/log.h"
#include "ops/matmul.h"
#include "push_lora.h"

#define LOCAL 256

/* Rows per dispatch: W's and U's windows fit in one binding each. */
static int64_t rows_per_dispatch(vkd_cmd *c, const vkd_tensor *w, int64_t ldw, int64_t u_cols)
{
    int64_t by_w = vkd_op_max_elems(c, w->dtype) / (ldw > 0 ? ldw : 1);
    int64_t by_u = vkd_op_max_elems(c, VKD_F32) / (u_cols > 0 ? u_cols : 1);
    return by_w < by_u ? by_w : by_u;
}

static vkd_result check_window(const char *op, const vkd_tensor *w, int64_t row0, int64_t rows, int64_t cols,
                               int64_t ldw)
{
    if (row0 < 0 || rows < 1 || cols < 1 || ldw < cols || (row0 + rows - 1) * ldw + cols > vkd_tensor_numel(w))
        return vkd_op_shape_error(op, "rows/cols/ldw must lie inside the weight", w);
    if (ldw > UINT32_MAX || (row0 + rows) * ldw > UINT32_MAX)
        return vkd_op_shape_error(op, "a row is too long for one dispatch", w);
    return VKD_OK;
}

vkd_result vkd_op_lora_product(vkd_cmd *c, const vkd_tensor *w, int64_t row0, int64_t rows, int64_t cols,
                               const vkd_tensor *u, const vkd_tensor *dt)
{
    static const char op[] = "lora_product";
    int64_t n = vkd_tensor_numel(w), rank = u->ndim == 2 ? u->shape[1] : 0;
    if (cols < 1 || n % cols || row0 < 0 || rows < 1 || row0 + rows > n / cols)
        return vkd_op_shape_error(op, "rows of cols elements must lie inside the weight", w);
    if (u->dtype != w->dtype || u->ndim != 2 || u->shape[0] != rows || rank < 1)
        return vkd_op_shape_error(op, "u must be [rows, rank] of the weight's dtype", u);
    if (dt->dtype != w->dtype || dt->ndim != 2 || dt->shape[0] != cols || dt->shape[1] != rank)
        return vkd_op_shape_error(op, "dt must be [cols, rank] of the weight's dtype", dt);
    vkd_tensor all, part;
    int64_t shape[2] = {n / cols, cols};
    vkd_result r = vkd_tensor_reshape(w, 2, shape, &all);
    if (r)
        return r;
    part = vkd_tensor_rows(&all, row0, rows);
    return vkd_op_linear(c, u, dt, NULL, &part, &part); /* out = u dt^T + out */
}

/* The element-wise kernel over rows [row0, row0 + rows) of w in chunks whose windows fit:
 * DENSE reads u[o, c] (cols a row), ROW_SUM writes u[o] (one a row). */
static vkd_result rows_dispatch(vkd_cmd *c, const char *op, uint32_t mode, const vkd_tensor *w, int64_t row0,
                                int64_t rows, int64_t cols, int64_t ldw, const vkd_tensor *u, int64_t u0,
                                float scale)
{
    int64_t per_row = mode == VKD_LORA_DENSE ? cols : 1;
    int64_t chunk = rows_per_dispatch(c, w, ldw, per_row);
    if (chunk < 1) {
        VKD_ERROR("%s: one row of %lld elements exceeds a binding window", op, (long long)ldw);
        return VKD_ERR_TOO_LARGE;
    }
    const vkd_pipeline *p;
    uint32_t spec[3] = {LOCAL, 1, 1};
    vkd_result r = vkd_op_pipeline(c, VKD_KERNEL_LORA, w->dtype, spec, 3, &p);
    for (int64_t o0 = 0; o0 < rows && !r; o0 += chunk) {
        int64_t n = rows - o0 < chunk ? rows - o0 : chunk;
        vkd_push_lora pc = {.rows = (uint32_t)n, .cols = (uint32_t)cols, .ldw = (uint32_t)ldw, .mode = mode,
                            .scale = scale};
        vkd_binding b[2];
        if ((r = vkd_op_bind(c, w, (row0 + o0) * ldw, (n - 1) * ldw + cols, &b[0], &pc.w_off)) ||
            (r = vkd_op_bind(c, u, u0 + o0 * per_row, n * per_row, &b[1], &pc.u_off)))
            return r;
        uint32_t gx, gy;
        vkd_op_grid_1d((uint64_t)(n * per_row), LOCAL, &gx, &gy);
        r = vkd_cmd_dispatch(c, p, b, 2, &pc, sizeof pc, gx, gy, 1, op);
    }
    return r;
}

vkd_result vkd_op_lora_update(vkd_cmd *c, const vkd_tensor *w, int64_t row0, int64_t rows, int64_t cols, int64_t ldw,
                              const vkd_tensor *u, float scale)
{
    static const char op[] = "lora_update";
    vkd_result r = check_window(op, w, row0, rows, cols, ldw);
    if (r)
        return r;
    if (u->dtype != VKD_F32 || vkd_tensor_numel(u) != rows * cols)
        return vkd_op_shape_error(op, "u must be fp32 [rows, cols] (a dense delta)", u);
    return rows_dispatch(c, op, VKD_LORA_DENSE, w, row0, rows, cols, ldw, u, 0, scale);
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
    return rows_dispatch(c, op, VKD_LORA_ROW_SUM, w, row0, rows, cols, ldw, out, out0, 0.0f);
}
