/* How much workgroup (shared) memory a compute module declares once specialized: a
 * small SPIR-V reader (spirv_shared.h). Our kernels size their shared arrays from
 * specialization constants (gemm.comp's As[BK * BMP], attention.comp's
 * os[R * gl_WorkGroupSize.x * OS]), so the size is known only at pipeline creation:
 * the reader folds the constants and OpSpecConstantOp expressions with the pipeline's
 * values and adds up the Workgroup-class variables.
 *
 * Layout: each variable's type is sized with std430-like rules (scalars their width,
 * vec3 aligned as vec4, arrays of elements rounded to their alignment, structs padded
 * to their largest member's alignment) and variables are packed one after the other,
 * each at its own alignment. Drivers may pad more; this is the size the Vulkan spec's
 * maxComputeSharedMemorySize rule counts (VUID-RuntimeSpirv-Workgroup-06530 sums the
 * variables' sizes). Anything this reader does not know refuses (VKD_ERR_INTERNAL): a
 * kernel whose shared memory cannot be sized must not pass a limits check unseen. */
#include "vk/spirv_shared.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"

/* SPIR-V opcodes and enums used here (the SPIR-V specification, section 3) */
enum {
    OP_DECORATE = 71,
    OP_TYPE_BOOL = 20,
    OP_TYPE_INT = 21,
    OP_TYPE_FLOAT = 22,
    OP_TYPE_VECTOR = 23,
    OP_TYPE_MATRIX = 24,
    OP_TYPE_ARRAY = 28,
    OP_TYPE_STRUCT = 30,
    OP_TYPE_POINTER = 32,
    OP_CONSTANT_TRUE = 41,
    OP_CONSTANT_FALSE = 42,
    OP_CONSTANT = 43,
    OP_CONSTANT_COMPOSITE = 44,
    OP_SPEC_CONSTANT_TRUE = 48,
    OP_SPEC_CONSTANT_FALSE = 49,
    OP_SPEC_CONSTANT = 50,
    OP_SPEC_CONSTANT_COMPOSITE = 51,
    OP_SPEC_CONSTANT_OP = 52,
    OP_VARIABLE = 59,
    OP_FUNCTION = 54,
    DEC_SPEC_ID = 1,
    SC_WORKGROUP = 4,
};

typedef enum { K_NONE, K_SCALAR, K_VECTOR, K_MATRIX, K_ARRAY, K_STRUCT, K_POINTER } kind;

typedef struct id_info {
    kind k;
    bool sized;           /* types: size and align are known (not a runtime array, say) */
    uint32_t size, align; /* types: bytes and alignment */
    uint32_t pointee;     /* pointers: the type; scalars: 0 */
    uint32_t storage;     /* pointers: the storage class */
    bool is_const;        /* constants: value below is known */
    uint32_t value;       /* 32-bit constants (bools as 0/1) */
    int32_t spec_id;      /* SpecId decoration, -1: none */
    uint32_t first, count;/* composites: constituents at ids[first .. first + count) */
} id_info;

typedef struct reader {
    const uint32_t *w;
    size_t n;
    uint32_t bound;
    id_info *ids;
    uint32_t *parts; /* constituents of composite constants */
    size_t n_parts;
} reader;

static bool id_ok(const reader *r, uint32_t id) { return id > 0 && id < r->bound; }

static bool const_of(const reader *r, uint32_t id, uint32_t *v)
{
    if (!id_ok(r, id) || !r->ids[id].is_const)
        return false;
    *v = r->ids[id].value;
    return true;
}

/* OpSpecConstantOp over 32-bit integers and booleans: the operations glslang emits for
 * array sizes (arithmetic, comparisons, ?:, .x of gl_WorkGroupSize) */
static bool spec_op(const reader *r, const uint32_t *ins, uint32_t wc, uint32_t *out)
{
    uint32_t op = ins[3], a = 0, b = 0, c = 0;
    if (op == 81) { /* OpCompositeExtract: composite, one index */
        if (wc != 6 || !id_ok(r, ins[4]) || r->ids[ins[4]].count <= ins[5])
            return false;
        return const_of(r, r->parts[r->ids[ins[4]].first + ins[5]], out);
    }
    uint32_t nops = wc - 4;
    if (nops < 1 || nops > 3 || !const_of(r, ins[4], &a) || (nops > 1 && !const_of(r, ins[5], &b)) ||
        (nops > 2 && !const_of(r, ins[6], &c)))
        return false;
    int32_t sa = (int32_t)a, sb = (int32_t)b;
    switch (op) {
    case 113: case 114: *out = a; return nops == 1;   /* UConvert, SConvert (32-bit only) */
    case 126: *out = (uint32_t)-sa; return nops == 1; /* SNegate */
    case 200: *out = ~a; return nops == 1;            /* Not */
    case 168: *out = !a; return nops == 1;            /* LogicalNot */
    case 169: *out = a ? b : c; return nops == 3;     /* Select */
    default: break;
    }
    if (nops != 2)
        return false;
    switch (op) {
    case 128: *out = a + b; return true;                          /* IAdd */
    case 130: *out = a - b; return true;                          /* ISub */
    case 132: *out = a * b; return true;                          /* IMul */
    case 134: if (!b) return false; *out = a / b; return true;    /* UDiv */
    case 135: if (!b) return false; *out = (uint32_t)(sa / sb); return true; /* SDiv */
    case 137: if (!b) return false; *out = a % b; return true;    /* UMod */
    case 138: case 139: if (!b) return false; *out = (uint32_t)(sa % sb); return true; /* SRem, SMod (>= 0 here) */
    case 194: *out = b < 32 ? a >> b : 0; return true;           /* ShiftRightLogical */
    case 195: *out = b < 32 ? (uint32_t)(sa >> b) : 0; return true; /* ShiftRightArithmetic */
    case 196: *out = b < 32 ? a << b : 0; return true;           /* ShiftLeftLogical */
    case 197: *out = a | b; return true;
    case 198: *out = a ^ b; return true;
    case 199: *out = a & b; return true;
    case 164: case 170: *out = a == b; return true;               /* LogicalEqual, IEqual */
    case 165: case 171: *out = a != b; return true;               /* LogicalNotEqual, INotEqual */
    case 166: *out = a || b; return true;
    case 167: *out = a && b; return true;
    case 172: *out = a > b; return true;
    case 173: *out = sa > sb; return true;
    case 174: *out = a >= b; return true;
    case 175: *out = sa >= sb; return true;
    case 176: *out = a < b; return true;
    case 177: *out = sa < sb; return true;
    case 178: *out = a <= b; return true;
    case 179: *out = sa <= sb; return true;
    default: return false;
    }
}

static uint32_t round_up(uint32_t v, uint32_t a) { return a ? (v + a - 1) / a * a : v; }

/* One instruction of the module's declarations. false: something this reader cannot size. */
static bool declare(reader *r, const uint32_t *ins, uint32_t wc, const uint32_t *spec, uint32_t n_spec,
                    uint64_t *shared)
{
    uint32_t op = ins[0] & 0xffffu;
    id_info *t;
    switch (op) {
    case OP_DECORATE:
        if (wc >= 4 && ins[2] == DEC_SPEC_ID && id_ok(r, ins[1]))
            r->ids[ins[1]].spec_id = (int32_t)ins[3];
        return true;
    case OP_TYPE_BOOL: case OP_TYPE_INT: case OP_TYPE_FLOAT:
        if (!id_ok(r, ins[1]))
            return false;
        t = &r->ids[ins[1]];
        t->k = K_SCALAR;
        t->size = t->align = op == OP_TYPE_BOOL ? 4 : ins[2] / 8;
        t->sized = t->size > 0;
        return true;
    case OP_TYPE_VECTOR: case OP_TYPE_MATRIX:
        if (wc < 4 || !id_ok(r, ins[1]) || !id_ok(r, ins[2]))
            return false;
        t = &r->ids[ins[1]];
        t->k = op == OP_TYPE_VECTOR ? K_VECTOR : K_MATRIX;
        if (!(t->sized = r->ids[ins[2]].sized))
            return true;
        if (op == OP_TYPE_VECTOR) {
            uint32_t comp = r->ids[ins[2]].size;
            t->align = comp * (ins[3] == 3 ? 4 : ins[3]);
            t->size = comp * ins[3];
        } else {
            t->align = r->ids[ins[2]].align;
            t->size = round_up(r->ids[ins[2]].size, t->align) * ins[3];
        }
        return true;
    case OP_TYPE_ARRAY: {
        uint32_t len;
        if (wc < 4 || !id_ok(r, ins[1]) || !id_ok(r, ins[2]))
            return false;
        t = &r->ids[ins[1]];
        id_info *e = &r->ids[ins[2]];
        t->k = K_ARRAY;
        /* a length this reader cannot fold leaves the type unsized: fine unless shared */
        if (!e->sized || !const_of(r, ins[3], &len))
            return true;
        t->align = e->align;
        uint64_t bytes = (uint64_t)round_up(e->size, e->align) * len;
        if (bytes > 0xffffffffu)
            return false;
        t->size = (uint32_t)bytes;
        t->sized = true;
        return true;
    }
    case OP_TYPE_STRUCT: {
        if (!id_ok(r, ins[1]))
            return false;
        uint32_t off = 0, align = 1;
        for (uint32_t i = 2; i < wc; i++) {
            if (!id_ok(r, ins[i]))
                return false;
            if (!r->ids[ins[i]].sized)
                return true; /* a buffer block with a runtime array */
            id_info *m = &r->ids[ins[i]];
            off = round_up(off, m->align) + m->size;
            if (m->align > align)
                align = m->align;
        }
        t = &r->ids[ins[1]];
        t->k = K_STRUCT;
        t->align = align;
        t->size = round_up(off, align);
        t->sized = true;
        return true;
    }
    case OP_TYPE_POINTER:
        if (wc < 4 || !id_ok(r, ins[1]))
            return false;
        t = &r->ids[ins[1]];
        t->k = K_POINTER;
        t->storage = ins[2];
        t->pointee = ins[3];
        return true;
    case OP_CONSTANT: case OP_SPEC_CONSTANT:
    case OP_CONSTANT_TRUE: case OP_CONSTANT_FALSE: case OP_SPEC_CONSTANT_TRUE: case OP_SPEC_CONSTANT_FALSE:
        if (wc < 3 || !id_ok(r, ins[2]))
            return false;
        t = &r->ids[ins[2]];
        t->is_const = true;
        t->value = op == OP_CONSTANT || op == OP_SPEC_CONSTANT ? (wc > 3 ? ins[3] : 0)
                   : op == OP_CONSTANT_TRUE || op == OP_SPEC_CONSTANT_TRUE;
        if (op >= OP_SPEC_CONSTANT_TRUE && t->spec_id >= 0 && (uint32_t)t->spec_id < n_spec) {
            if (op == OP_SPEC_CONSTANT)
                t->value = spec[t->spec_id];
            else
                t->value = spec[t->spec_id] != 0; /* VkBool32 */
        }
        return true;
    case OP_CONSTANT_COMPOSITE: case OP_SPEC_CONSTANT_COMPOSITE:
        if (wc < 3 || !id_ok(r, ins[2]))
            return false;
        t = &r->ids[ins[2]];
        t->first = (uint32_t)r->n_parts;
        t->count = wc - 3;
        for (uint32_t i = 3; i < wc; i++)
            r->parts[r->n_parts++] = ins[i];
        return true;
    case OP_SPEC_CONSTANT_OP: {
        uint32_t v;
        if (wc < 5 || !id_ok(r, ins[2]))
            return true; /* unsized use is fine: only a size that needs it fails (const_of) */
        if (spec_op(r, ins, wc, &v)) {
            r->ids[ins[2]].is_const = true;
            r->ids[ins[2]].value = v;
        }
        return true;
    }
    case OP_VARIABLE:
        if (wc < 4 || ins[3] != SC_WORKGROUP)
            return true;
        if (!id_ok(r, ins[1]) || r->ids[ins[1]].k != K_POINTER || !id_ok(r, r->ids[ins[1]].pointee) ||
            !r->ids[r->ids[ins[1]].pointee].sized)
            return false;
        t = &r->ids[r->ids[ins[1]].pointee];
        *shared = round_up((uint32_t)*shared, t->align) + (uint64_t)t->size;
        return true;
    default:
        return true;
    }
}

vkd_result vkd_spirv_shared_bytes(const uint32_t *code, size_t n_words, const uint32_t *spec, uint32_t n_spec,
                                  uint64_t *bytes)
{
    *bytes = 0;
    if (!code || n_words < 5 || code[0] != 0x07230203u || code[3] == 0 || code[3] > (1u << 22))
        return VKD_ERR_INTERNAL;
    reader r = {.w = code, .n = n_words, .bound = code[3]};
    r.ids = calloc(r.bound, sizeof *r.ids);
    r.parts = malloc(n_words * sizeof *r.parts); /* constituents never outnumber the words */
    vkd_result res = VKD_OK;
    if (!r.ids || !r.parts) {
        res = VKD_ERR_OUT_OF_HOST_MEMORY;
        goto done;
    }
    for (uint32_t i = 0; i < r.bound; i++)
        r.ids[i].spec_id = -1;
    for (size_t at = 5; at < n_words;) {
        uint32_t wc = code[at] >> 16, op = code[at] & 0xffffu;
        if (wc == 0 || at + wc > n_words) {
            res = VKD_ERR_INTERNAL;
            goto done;
        }
        if (op == OP_FUNCTION) /* declarations end where the first function starts */
            break;
        if (!declare(&r, code + at, wc, spec, n_spec, bytes)) {
            VKD_ERROR("SPIR-V: cannot size the shared memory (instruction %u at word %zu)", op, at);
            res = VKD_ERR_INTERNAL;
            goto done;
        }
        at += wc;
    }
done:
    free(r.ids);
    free(r.parts);
    return res;
}
