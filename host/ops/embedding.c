/* Embedding lookup (shaders/embedding.comp): tokens chunked by the output window,
 * the token table by row windows. */
#include "ops/embedding.h"

#include "common/log.h"
#include "push_embedding.h"

#define LOCAL 256

vkd_result vkd_op_embedding(vkd_cmd *c, const vkd_buffer *ids, VkDeviceSize ids_offset, const vkd_tensor *tok,
                            const vkd_tensor *pos, vkd_tensor *out)
{
    if (tok->ndim != 2)
        return vkd_op_shape_error("embedding", "want a token table [V, C]", tok);
    int64_t v = tok->shape[0], ch = tok->shape[1];
    if (out->ndim != 3 || out->shape[2] != ch || out->dtype != tok->dtype)
        return vkd_op_shape_error("embedding", "out must be [N, L, C] in the table's dtype", out);
    int64_t l = out->shape[1], ntok = out->shape[0] * l;
    if (pos->ndim != 2 || pos->shape[1] != ch || pos->shape[0] < l || pos->dtype != tok->dtype)
        return vkd_op_shape_error("embedding", "pos must be [P >= L, C] in the table's dtype", pos);
    if (!ids || ids_offset % 4 || ids_offset + (VkDeviceSize)ntok * 4 > ids->size) {
        VKD_ERROR("embedding: %lld ids at byte offset %llu do not fit the id buffer (%llu bytes, 4-byte aligned)",
                  (long long)ntok, (unsigned long long)ids_offset, ids ? (unsigned long long)ids->size : 0ull);
        return VKD_ERR_INVALID_ARG;
    }
    if (v > 0xffffffffll || ntok * ch > 0xffffffffll) {
        VKD_ERROR("embedding: table or output too large for 32-bit indexing");
        return VKD_ERR_TOO_LARGE;
    }
    int64_t maxe = vkd_op_max_elems(c, tok->dtype);
    int64_t rows_per_window = maxe / ch;
    if (rows_per_window < 1 || l * ch > maxe) {
        VKD_ERROR("embedding: the position table [%lld, %lld] exceeds a binding window", (long long)l, (long long)ch);
        return VKD_ERR_TOO_LARGE;
    }
    const vkd_pipeline *p;
    uint32_t spec[3] = {LOCAL, 1, 1};
    vkd_result r = vkd_op_pipeline(c, VKD_KERNEL_EMBEDDING, tok->dtype, spec, 3, &p);
    if (r)
        return r;
    vkd_device *d = vkd_cmd_device(c);
    for (int64_t t0 = 0; t0 < ntok; t0 += rows_per_window) {
        int64_t nt = ntok - t0 < rows_per_window ? ntok - t0 : rows_per_window;
        for (int64_t v0 = 0; v0 < v; v0 += rows_per_window) {
            int64_t vn = v - v0 < rows_per_window ? v - v0 : rows_per_window;
            vkd_push_embedding pc = {.n = (uint32_t)(nt * ch), .c = (uint32_t)ch, .t0 = (uint32_t)t0, .l = (uint32_t)l,
                                     .v0 = (uint32_t)v0, .vn = (uint32_t)vn, .v = (uint32_t)v, .first = v0 == 0};
            vkd_binding b[4];
            if ((r = vkd_binding_window(d, ids, ids_offset + (VkDeviceSize)t0 * 4, (VkDeviceSize)nt * 4, 4, &b[0],
                                        &pc.id_off)) ||
                (r = vkd_op_bind(c, tok, v0 * ch, vn * ch, &b[1], &pc.t_off)) ||
                (r = vkd_op_bind(c, pos, 0, l * ch, &b[2], &pc.p_off)) ||
                (r = vkd_op_bind(c, out, t0 * ch, nt * ch, &b[3], &pc.o_off)))
                return r;
            uint32_t gx, gy;
            vkd_op_grid_1d(pc.n, LOCAL, &gx, &gy);
            if ((r = vkd_cmd_dispatch(c, p, b, 4, &pc, sizeof pc, gx, gy, 1, "embedding")))
                return r;
        }
    }
    return VKD_OK;
}
