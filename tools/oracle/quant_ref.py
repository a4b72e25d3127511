#!/usr/bin/env python3
"""ggml's block quantizers and dequantizers in numpy, written from ggml's C source
(ggml/src/ggml-quants.c: quantize_row_{q4_0,q4_1,q5_0,q5_1,q8_0}_ref,
quantize_row_q4_K_ref with make_qkx2_quants, quantize_row_q6_K_ref with make_qx_quants,
dequantize_row_*), independently of vkdiff's C (host/io/quant.c).

Byte-identical results need float32 arithmetic in ggml's order: every operation here is
on float32 arrays (one value per block, vectorised across blocks), sums are accumulated
one element at a time in the C loop order, an int meeting a float becomes a float32, and
nothing is fused. fp16 scales round to nearest even (numpy's astype(float16) does).

    quant_ref.py --golden OUT   write tests/data/quant_golden.bin (see write_golden)

Used as a module by tools/make_gguf.py: quantize(type, x) -> bytes and
dequantize(type, bytes, n) -> float32.
"""
import argparse
import struct
import sys

import numpy as np

F = np.float32
QK = 32
QK_K = 256
GROUP_MAX_EPS = F(1e-15)

# name: (values per block, bytes per block, ggml type id)
TYPES = {
    "q4_0": (32, 18, 2), "q4_1": (32, 20, 3), "q5_0": (32, 22, 6), "q5_1": (32, 24, 7),
    "q8_0": (32, 34, 8), "q2_k": (256, 84, 10), "q3_k": (256, 110, 11), "q4_k": (256, 144, 12),
    "q5_k": (256, 176, 13), "q6_k": (256, 210, 14),
}
QUANTIZABLE = ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_k", "q6_k"]


def f16_bits(v):
    """float32 array -> uint16 fp16 bits, round to nearest even (ggml's GGML_FP32_TO_FP16)."""
    with np.errstate(over="ignore"):
        return np.asarray(v, dtype=F).astype(np.float16).view(np.uint16)


def f16_val(bits):
    return np.asarray(bits, dtype=np.uint16).view(np.float16).astype(F)


def nearest_int(v):
    """ggml's nearest_int: add 1.5*2^23 in float32, read the low mantissa bits."""
    with np.errstate(over="ignore", invalid="ignore"):
        s = (np.asarray(v, dtype=F) + F(12582912.0)).astype(F)
    i = s.view(np.int32).astype(np.int64)
    return (i & 0x007FFFFF) - 0x00400000


def c_trunc_int(v):
    """C's float -> integer conversion (toward zero)."""
    return np.trunc(np.asarray(v, dtype=F)).astype(np.int64)


def c_roundf(v):
    """C's roundf: halves away from zero (exact in float64 for float32 inputs)."""
    d = np.asarray(v, dtype=F).astype(np.float64)
    return (np.sign(d) * np.floor(np.abs(d) + 0.5)).astype(np.int64)


def recip(d):
    """d ? 1.0f/d : 0.0f"""
    with np.errstate(divide="ignore"):
        r = (F(1.0) / d).astype(F)
    return np.where(d != 0, r, F(0)).astype(F)


# ---- 32-value blocks (x: [nb, 32] float32) ---------------------------------------------

def abs_max_signed(x):
    """the value of the first largest |x| in each block (strict '<' update), and its |x|"""
    amax = np.zeros(x.shape[0], F)
    mx = np.zeros(x.shape[0], F)
    for j in range(x.shape[1]):
        a = np.abs(x[:, j])
        upd = amax < a
        amax = np.where(upd, a, amax)
        mx = np.where(upd, x[:, j], mx)
    return amax, mx


def q8_0(x):
    nb = x.shape[0]
    amax = np.zeros(nb, F)
    for j in range(QK):
        amax = np.maximum(amax, np.abs(x[:, j]))
    d = (amax / F(127)).astype(F)
    idd = recip(d)
    q = c_roundf((x * idd[:, None]).astype(F))
    out = np.zeros((nb, 34), np.uint8)
    out[:, 0:2] = h2(d)
    out[:, 2:] = (q & 0xFF).astype(np.uint8)
    return out


def sym_block(x, nbits):
    nb = x.shape[0]
    _, mx = abs_max_signed(x)
    d = (mx / F(-(1 << (nbits - 1)))).astype(F)
    idd = recip(d)
    off = F(8.5) if nbits == 4 else F(16.5)
    top = 15 if nbits == 4 else 31
    q = np.minimum(top, c_trunc_int(((x * idd[:, None]).astype(F) + off).astype(F)))
    return d, q


def asym_block(x, nbits):
    nb = x.shape[0]
    mn = np.full(nb, F(3.402823466e38))
    mx = np.full(nb, F(-3.402823466e38))
    for j in range(QK):
        mn = np.where(x[:, j] < mn, x[:, j], mn)
        mx = np.where(x[:, j] > mx, x[:, j], mx)
    d = ((mx - mn).astype(F) / F((1 << nbits) - 1)).astype(F)
    idd = recip(d)
    v = c_trunc_int((((x - mn[:, None]).astype(F) * idd[:, None]).astype(F) + F(0.5)).astype(F))
    q = np.minimum(15, v) if nbits == 4 else (v & 0xFF)  # q5_1: plain (uint8_t), no clamp
    return d, mn, q


def pack_nibbles(q):
    return ((q[:, :16] & 0xF) | ((q[:, 16:] & 0xF) << 4)).astype(np.uint8)


def pack_qh(q):
    qh = np.zeros(q.shape[0], np.uint64)
    for j in range(32):
        qh |= (((q[:, j] >> 4) & 1).astype(np.uint64) << np.uint64(j))
    return np.stack([(qh >> np.uint64(8 * k)) & np.uint64(0xFF) for k in range(4)], axis=1).astype(np.uint8)


def bits2(bits):
    """uint16 per block -> 2 little-endian bytes per block"""
    bits = np.asarray(bits, np.int64)
    return np.stack([bits & 0xFF, bits >> 8], axis=1).astype(np.uint8)


def h2(v):
    return bits2(f16_bits(v))


def q4_0(x):
    d, q = sym_block(x, 4)
    return np.concatenate([h2(d), pack_nibbles(q)], axis=1)


def q5_0(x):
    d, q = sym_block(x, 5)
    return np.concatenate([h2(d), pack_qh(q), pack_nibbles(q)], axis=1)


def q4_1(x):
    d, m, q = asym_block(x, 4)
    return np.concatenate([h2(d), h2(m), pack_nibbles(q)], axis=1)


def q5_1(x):
    d, m, q = asym_block(x, 5)
    return np.concatenate([h2(d), h2(m), pack_qh(q), pack_nibbles(q)], axis=1)


# ---- K-quants ------------------------------------------------------------------------

def make_qkx2_quants(x, w, nmax, rmin, rdelta, nstep):
    """x, w: [nb, n]. Returns (scale [nb], the_min [nb], L [nb, n])."""
    nb, n = x.shape
    mn = x[:, 0].copy()
    mx = x[:, 0].copy()
    sum_w = w[:, 0].copy()
    sum_x = (sum_w * x[:, 0]).astype(F)
    for i in range(1, n):
        mn = np.where(x[:, i] < mn, x[:, i], mn)
        mx = np.where(x[:, i] > mx, x[:, i], mx)
        sum_w = (sum_w + w[:, i]).astype(F)
        sum_x = (sum_x + (w[:, i] * x[:, i]).astype(F)).astype(F)
    mn = np.where(mn > 0, F(0), mn).astype(F)
    flat = mx == mn
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        rng = (mx - mn).astype(F)
        iscale = (F(nmax) / rng).astype(F)
        scale = (F(1) / iscale).astype(F)
        L = np.zeros((nb, n), np.int64)
        best = np.zeros(nb, F)
        for i in range(n):
            l = nearest_int((iscale * (x[:, i] - mn).astype(F)).astype(F))
            L[:, i] = np.clip(l, 0, nmax)
            diff = (((scale * L[:, i].astype(F)).astype(F) + mn).astype(F) - x[:, i]).astype(F)
            best = (best + (w[:, i] * (diff * diff).astype(F)).astype(F)).astype(F)
        # ggml updates `min` when a step wins, and later steps measure from the new min
        cur_min = mn.copy()
        for step in range(nstep + 1):
            isc = ((F(rmin) + (F(rdelta) * F(step)).astype(F)).astype(F) + F(nmax)).astype(F)
            isc = (isc / (mx - cur_min).astype(F)).astype(F)
            sl = np.zeros(nb, F)
            sl2 = np.zeros(nb, F)
            sxl = np.zeros(nb, F)
            La = np.zeros((nb, n), np.int64)
            for i in range(n):
                l = np.clip(nearest_int((isc * (x[:, i] - cur_min).astype(F)).astype(F)), 0, nmax)
                La[:, i] = l
                lf = l.astype(F)
                wl = (w[:, i] * lf).astype(F)
                sl = (sl + wl).astype(F)
                sl2 = (sl2 + (wl * lf).astype(F)).astype(F)
                sxl = (sxl + (wl * x[:, i]).astype(F)).astype(F)
            D = ((sum_w * sl2).astype(F) - (sl * sl).astype(F)).astype(F)
            ok = D > 0
            ts = (((sum_w * sxl).astype(F) - (sum_x * sl).astype(F)).astype(F) / D).astype(F)
            tm = (((sl2 * sum_x).astype(F) - (sl * sxl).astype(F)).astype(F) / D).astype(F)
            pos = tm > 0
            tm = np.where(pos, F(0), tm).astype(F)
            ts = np.where(pos, (sxl / sl2).astype(F), ts).astype(F)
            err = np.zeros(nb, F)
            for i in range(n):
                diff = (((ts * La[:, i].astype(F)).astype(F) + tm).astype(F) - x[:, i]).astype(F)
                err = (err + (w[:, i] * (diff * diff).astype(F)).astype(F)).astype(F)
            take = ok & (err < best)
            L = np.where(take[:, None], La, L)
            best = np.where(take, err, best).astype(F)
            scale = np.where(take, ts, scale).astype(F)
            cur_min = np.where(take, tm, cur_min).astype(F)
    scale = np.where(flat, F(0), scale).astype(F)
    L = np.where(flat[:, None], 0, L)
    the_min = np.where(flat, -mn, -cur_min).astype(F)
    return scale, the_min, L


def make_qx_quants(x, nmax, qw=None):
    """rmse_type 1; weights qw [nb, n], or x^2 when None. x: [nb, n]. Returns (scale, L+nmax)."""
    nb, n = x.shape
    amax = np.zeros(nb, F)
    mx = np.zeros(nb, F)
    for i in range(n):
        a = np.abs(x[:, i])
        upd = a > amax
        amax = np.where(upd, a, amax)
        mx = np.where(upd, x[:, i], mx)
    zero = amax < GROUP_MAX_EPS
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        def sums(isc):
            slx = np.zeros(nb, F)
            sl2 = np.zeros(nb, F)
            Ls = np.zeros((nb, n), np.int64)
            for i in range(n):
                l = np.clip(nearest_int((isc * x[:, i]).astype(F)), -nmax, nmax - 1)
                Ls[:, i] = l + nmax
                lf = l.astype(F)
                w = (x[:, i] * x[:, i]).astype(F) if qw is None else qw[:, i]
                slx = (slx + ((w * x[:, i]).astype(F) * lf).astype(F)).astype(F)
                sl2 = (sl2 + ((w * lf).astype(F) * lf).astype(F)).astype(F)
            return slx, sl2, Ls
        isc = (F(-nmax) / mx).astype(F)
        slx, sl2, L = sums(isc)
        scale = np.where(sl2 != 0, (slx / sl2).astype(F), F(0)).astype(F)
        best = (scale * slx).astype(F)
        for s in range(-9, 10):
            if s == 0:
                continue
            isc = (-((F(nmax) + (F(0.1) * F(s)).astype(F)).astype(F)) / mx).astype(F)
            slx, sl2, Ls = sums(isc)
            take = (sl2 > 0) & ((slx * slx).astype(F) > (best * sl2).astype(F))
            L = np.where(take[:, None], Ls, L)
            scale = np.where(take, (slx / sl2).astype(F), scale).astype(F)
            best = np.where(take, (scale * slx).astype(F), best).astype(F)
    scale = np.where(zero, F(0), scale).astype(F)
    L = np.where(zero[:, None], 0, L)
    return scale, L


def q4_k(x):
    nb = x.shape[0]
    xs = x.reshape(nb, 8, 32)
    scales = np.zeros((nb, 8), F)
    mins = np.zeros((nb, 8), F)
    L = np.zeros((nb, 256), np.int64)
    for j in range(8):
        sub = xs[:, j, :]
        sx2 = np.zeros(nb, F)
        for l in range(32):
            sx2 = (sx2 + (sub[:, l] * sub[:, l]).astype(F)).astype(F)
        av = np.sqrt((sx2 / F(32)).astype(F)).astype(F)
        w = (av[:, None] + np.abs(sub)).astype(F)
        s, m, Lj = make_qkx2_quants(sub, w, 15, -1.0, 0.1, 20)
        scales[:, j], mins[:, j], L[:, 32 * j:32 * j + 32] = s, m, Lj
    max_scale = np.zeros(nb, F)
    max_min = np.zeros(nb, F)
    for j in range(8):
        max_scale = np.where(scales[:, j] > max_scale, scales[:, j], max_scale)
        max_min = np.where(mins[:, j] > max_min, mins[:, j], max_min)
    with np.errstate(divide="ignore"):
        inv_s = np.where(max_scale > 0, (F(63) / max_scale).astype(F), F(0)).astype(F)
        inv_m = np.where(max_min > 0, (F(63) / max_min).astype(F), F(0)).astype(F)
    sc = np.zeros((nb, 12), np.int64)
    ls_all, lm_all = [], []
    for j in range(8):
        ls = np.minimum(63, nearest_int((inv_s * scales[:, j]).astype(F)) & 0xFF)
        lm = np.minimum(63, nearest_int((inv_m * mins[:, j]).astype(F)) & 0xFF)
        ls_all.append(ls)
        lm_all.append(lm)
    for j in range(8):
        ls, lm = ls_all[j], lm_all[j]
        if j < 4:
            sc[:, j] = ls
            sc[:, j + 4] = lm
        else:
            sc[:, j + 4] = (ls & 0xF) | ((lm & 0xF) << 4)
            sc[:, j - 4] |= (ls >> 4) << 6
            sc[:, j] |= (lm >> 4) << 6
    dbits = f16_bits((max_scale / F(63)).astype(F))
    mbits = f16_bits((max_min / F(63)).astype(F))
    d = f16_val(dbits)
    dmin = f16_val(mbits)
    for j in range(8):
        s6, m6 = unpack_scale_min(sc, j)
        dd = (d * s6.astype(F)).astype(F)
        dm = (dmin * m6.astype(F)).astype(F)
        with np.errstate(divide="ignore", invalid="ignore"):
            for ii in range(32):
                l = np.clip(nearest_int(((xs[:, j, ii] + dm).astype(F) / dd).astype(F)), 0, 15)
                L[:, 32 * j + ii] = np.where(dd != 0, l, L[:, 32 * j + ii])
    qs = np.zeros((nb, 128), np.int64)
    for g in range(4):
        qs[:, 32 * g:32 * g + 32] = L[:, 64 * g:64 * g + 32] | (L[:, 64 * g + 32:64 * g + 64] << 4)
    return np.concatenate([bits2(dbits), bits2(mbits), sc.astype(np.uint8), qs.astype(np.uint8)], axis=1)


def unpack_scale_min(q, j):
    if j < 4:
        return q[:, j] & 63, q[:, j + 4] & 63
    return (q[:, j + 4] & 0xF) | ((q[:, j - 4] >> 6) << 4), (q[:, j + 4] >> 4) | ((q[:, j] >> 6) << 4)


def q6_k(x, ones=False):
    """ones: quantize_row_q6_K_impl with an importance matrix of ones (weights 1)"""
    nb = x.shape[0]
    xs = x.reshape(nb, 16, 16)
    scales = np.zeros((nb, 16), F)
    L = np.zeros((nb, 256), np.int64)
    for ib in range(16):
        s, Lb = make_qx_quants(xs[:, ib, :], 32, np.ones((nb, 16), F) if ones else None)
        scales[:, ib] = s
        L[:, 16 * ib:16 * ib + 16] = Lb
    max_abs = np.zeros(nb, F)
    max_s = np.zeros(nb, F)
    for ib in range(16):
        a = np.abs(scales[:, ib])
        upd = a > max_abs
        max_abs = np.where(upd, a, max_abs)
        max_s = np.where(upd, scales[:, ib], max_s)
    zero = max_abs < GROUP_MAX_EPS
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        isc = (F(-128) / max_s).astype(F)
        dbits = f16_bits((F(1) / isc).astype(F))
        sc = np.minimum(127, nearest_int((isc[:, None] * scales).astype(F)))
        d = f16_val(dbits)
        for j in range(16):
            dd = (d * sc[:, j].astype(F)).astype(F)
            for ii in range(16):
                l = np.clip(nearest_int((xs[:, j, ii] / dd).astype(F)), -32, 31) + 32
                L[:, 16 * j + ii] = np.where(dd != 0, l, L[:, 16 * j + ii])
    ql = np.zeros((nb, 128), np.int64)
    qh = np.zeros((nb, 64), np.int64)
    for h in range(2):
        Lh = L[:, 128 * h:128 * h + 128]
        a, b, c, e = Lh[:, 0:32], Lh[:, 32:64], Lh[:, 64:96], Lh[:, 96:128]
        ql[:, 64 * h:64 * h + 32] = (a & 0xF) | ((c & 0xF) << 4)
        ql[:, 64 * h + 32:64 * h + 64] = (b & 0xF) | ((e & 0xF) << 4)
        qh[:, 32 * h:32 * h + 32] = (a >> 4) | ((b >> 4) << 2) | ((c >> 4) << 4) | ((e >> 4) << 6)
    out = np.concatenate([ql, qh, sc & 0xFF, bits2(dbits).astype(np.int64)],
                         axis=1).astype(np.uint8)
    out[zero] = 0
    return out


# ---- ggml's importance-matrix quantizers (quantize_row_*_impl), with a matrix of ones:
# what stable-diffusion.cpp runs (it passes a dummy matrix of ones to ggml_quantize_chunk)

def make_qp_quants(x, nmax, qw):
    """x, qw: [nb, n] non-negative values and weights. Returns (scale, L)."""
    nb, n = x.shape
    mx = np.zeros(nb, F)
    for i in range(n):
        mx = np.maximum(mx, x[:, i])
    zero = mx < GROUP_MAX_EPS
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        iscale = (F(nmax) / mx).astype(F)
        L = nearest_int((iscale[:, None] * x).astype(F)) & 0xFF  # stored in uint8_t
        scale = (F(1) / iscale).astype(F)
        best = np.zeros(nb, F)
        for i in range(n):
            diff = (x[:, i] - (scale * L[:, i].astype(F)).astype(F)).astype(F)
            best = (best + ((qw[:, i] * diff).astype(F) * diff).astype(F)).astype(F)  # (w*diff)*diff
        for s_ in range(-4, 5):
            if s_ == 0:
                continue
            isc = (((F(0.1) * F(s_)).astype(F) + F(nmax)).astype(F) / mx).astype(F)
            sc = (F(1) / isc).astype(F)
            mse = np.zeros(nb, F)
            for i in range(n):
                l = np.minimum(nmax, nearest_int((isc * x[:, i]).astype(F)))
                diff = (x[:, i] - (sc * l.astype(F)).astype(F)).astype(F)
                mse = (mse + ((qw[:, i] * diff).astype(F) * diff).astype(F)).astype(F)
            take = mse < best
            best = np.where(take, mse, best).astype(F)
            iscale = np.where(take, isc, iscale).astype(F)
        slx = np.zeros(nb, F)
        sl2 = np.zeros(nb, F)
        for i in range(n):
            l = np.minimum(nmax, nearest_int((iscale * x[:, i]).astype(F)))
            L[:, i] = l & 0xFF
            lf = l.astype(F)
            slx = (slx + ((qw[:, i] * x[:, i]).astype(F) * lf).astype(F)).astype(F)
            sl2 = (sl2 + ((qw[:, i] * lf).astype(F) * lf).astype(F)).astype(F)
        active = np.ones(nb, bool)
        for _ in range(5):
            changed = np.zeros(nb, bool)
            for i in range(n):
                w = qw[:, i]
                Li = L[:, i].astype(F)
                a = (slx - ((w * x[:, i]).astype(F) * Li).astype(F)).astype(F)
                b = (sl2 - ((w * Li).astype(F) * Li).astype(F)).astype(F)
                ok = active & (a > 0) & (b > 0)
                nl = np.minimum(nmax, nearest_int((((x[:, i] * b).astype(F)) / a).astype(F)))
                ok &= nl != L[:, i]
                nlf = nl.astype(F)
                a2 = (a + ((w * x[:, i]).astype(F) * nlf).astype(F)).astype(F)
                b2 = (b + ((w * nlf).astype(F) * nlf).astype(F)).astype(F)
                better = ok & ((((a2 * a2).astype(F) * sl2).astype(F)) > (((slx * slx).astype(F) * b2).astype(F)))
                L[:, i] = np.where(better, nl & 0xFF, L[:, i])
                slx = np.where(better, a2, slx).astype(F)
                sl2 = np.where(better, b2, sl2).astype(F)
                changed |= better
            active &= changed  # a block stops at its first pass without a change
        scale = np.where(sl2 > 0, (slx / sl2).astype(F), F(0)).astype(F)
    scale = np.where(zero, F(0), scale).astype(F)
    L = np.where(zero[:, None], 0, L)
    return scale, L


def row_weights(x, sigma2):
    """qw * sqrtf(sigma2 + x*x) with qw = 1 (1*v is v exactly). x: [nb, n], sigma2: [nb]"""
    return np.sqrt((sigma2[:, None] + (x * x).astype(F)).astype(F)).astype(F)


def small_weighted(t, x, sigma2):
    nb = x.shape[0]
    w = row_weights(x, sigma2)
    five = t in ("q5_0", "q5_1")
    if t in ("q4_1", "q5_1"):
        d, the_min, L = make_qkx2_quants(x, w, 31 if five else 15, -0.9, 0.05, 36)  # = make_qkx3_quants
        head = [h2(d), h2((-the_min).astype(F))]
    else:
        d, L = make_qx_quants(x, 16 if five else 8, w)
        head = [h2(d)]
    if five:
        head.append(pack_qh(L))
    return np.concatenate(head + [pack_nibbles(L)], axis=1)


def q4_k_weighted(x):
    nb = x.shape[0]
    xs = x.reshape(nb, 8, 32)
    sx2 = np.zeros(nb, F)
    for l in range(256):
        sx2 = (sx2 + (x[:, l] * x[:, l]).astype(F)).astype(F)
    sigma2 = ((F(2) * sx2).astype(F) / F(256)).astype(F)
    scales = np.zeros((nb, 8), F)
    mins = np.zeros((nb, 8), F)
    sw = np.zeros((nb, 8), F)
    L = np.zeros((nb, 256), np.int64)
    for j in range(8):
        sub = xs[:, j, :]
        w = row_weights(sub, sigma2)
        sumw = np.zeros(nb, F)
        for l in range(32):
            sumw = (sumw + w[:, l]).astype(F)
        sw[:, j] = sumw
        s_, m_, Lj = make_qkx2_quants(sub, w, 15, -0.9, 0.05, 36)
        scales[:, j], mins[:, j], L[:, 32 * j:32 * j + 32] = s_, m_, Lj
    d_block, Ls = make_qp_quants(scales, 63, sw)
    m_block, Lm = make_qp_quants(mins, 63, sw)
    sc = np.zeros((nb, 12), np.int64)
    for j in range(8):
        ls, lm = Ls[:, j], Lm[:, j]
        if j < 4:
            sc[:, j] = ls
            sc[:, j + 4] = lm
        else:
            sc[:, j + 4] = (ls & 0xF) | ((lm & 0xF) << 4)
            sc[:, j - 4] |= (ls >> 4) << 6
            sc[:, j] |= (lm >> 4) << 6
    sc &= 0xFF
    dbits, mbits = f16_bits(d_block), f16_bits(m_block)
    d, dmin = f16_val(dbits), f16_val(mbits)
    for j in range(8):
        s6, m6 = unpack_scale_min(sc, j)
        dd = (d * s6.astype(F)).astype(F)
        dm = (dmin * m6.astype(F)).astype(F)
        with np.errstate(divide="ignore", invalid="ignore"):
            for ii in range(32):
                l = np.clip(nearest_int(((xs[:, j, ii] + dm).astype(F) / dd).astype(F)), 0, 15)
                L[:, 32 * j + ii] = np.where(dd != 0, l, L[:, 32 * j + ii])
    qs = np.zeros((nb, 128), np.int64)
    for g in range(4):
        qs[:, 32 * g:32 * g + 32] = L[:, 64 * g:64 * g + 32] | (L[:, 64 * g + 32:64 * g + 64] << 4)
    return np.concatenate([bits2(dbits), bits2(mbits), sc.astype(np.uint8), qs.astype(np.uint8)], axis=1)


def quantize_blocks_sdcpp(t, blocks, sigma2):
    """blocks [nb, block] with each block's row mean square (used by the 32-value types)"""
    if t == "q8_0":
        return q8_0(blocks)
    if t == "q4_k":
        return q4_k_weighted(blocks)
    if t == "q6_k":
        return q6_k(blocks, ones=True)
    return small_weighted(t, blocks, sigma2)


def row_sigma2(rows):
    """float32 sum of x*x along each row, in order, over n_per_row (ggml's sigma2)."""
    s = np.zeros(rows.shape[0], F)
    for j in range(rows.shape[1]):
        s = (s + (rows[:, j] * rows[:, j]).astype(F)).astype(F)
    return (s / F(rows.shape[1])).astype(F)


def quantize_sdcpp(t, x, n_per_row):
    """ggml_quantize_chunk with an importance matrix of ones, rows of n_per_row."""
    bk = TYPES[t][0]
    rows = np.asarray(x, dtype=F).reshape(-1, n_per_row)
    sig = np.repeat(row_sigma2(rows), n_per_row // bk)
    return quantize_blocks_sdcpp(t, rows.reshape(-1, bk), sig).astype(np.uint8).tobytes()


QUANT = {"q8_0": q8_0, "q4_0": q4_0, "q4_1": q4_1, "q5_0": q5_0, "q5_1": q5_1, "q4_k": q4_k, "q6_k": q6_k}


def quantize(t, x):
    bk, bb, _ = TYPES[t]
    x = np.ascontiguousarray(np.asarray(x, dtype=F).reshape(-1))
    assert x.size % bk == 0
    return QUANT[t](x.reshape(-1, bk)).astype(np.uint8).tobytes()


# ---- dequantization -------------------------------------------------------------------

def dequantize(t, data, n):
    bk, bb, _ = TYPES[t]
    nb = n // bk
    b = np.frombuffer(data, np.uint8, nb * bb).reshape(nb, bb).astype(np.int64)

    def fp16(o):
        return f16_val((b[:, o] | (b[:, o + 1] << 8)).astype(np.uint16))

    y = np.zeros((nb, bk), F)
    if t in ("q4_0", "q4_1", "q5_0", "q5_1"):
        asym = t.endswith("_1")
        d = fp16(0)
        m = fp16(2) if asym else None
        qs = b[:, bb - 16:]
        q = np.concatenate([qs & 0xF, qs >> 4], axis=1)
        if t.startswith("q5"):
            o = 4 if asym else 2
            qh = b[:, o] | (b[:, o + 1] << 8) | (b[:, o + 2] << 16) | (b[:, o + 3] << 24)
            hi = np.stack([(qh >> j) & 1 for j in range(32)], axis=1)
            q = q | (hi << 4)
            off = 16
        else:
            off = 8
        if asym:
            y = ((q.astype(F) * d[:, None]).astype(F) + m[:, None]).astype(F)
        else:
            y = ((q - off).astype(F) * d[:, None]).astype(F)
    elif t == "q8_0":
        q = b[:, 2:].astype(np.uint8).view(np.int8).astype(F)
        y = (q * fp16(0)[:, None]).astype(F)
    elif t in ("q4_k", "q5_k"):
        five = t == "q5_k"
        d, dmin = fp16(0), fp16(2)
        sc = b[:, 4:16]
        qh = b[:, 16:48]
        ql = b[:, 48:176] if five else b[:, 16:144]
        for g in range(4):
            q = ql[:, 32 * g:32 * g + 32]
            for half in range(2):
                s6, m6 = unpack_scale_min(sc, 2 * g + half)
                dl = (d * s6.astype(F)).astype(F)
                ml = (dmin * m6.astype(F)).astype(F)
                v = (q & 0xF) if half == 0 else (q >> 4)
                if five:
                    v = v + np.where(qh & (1 << (2 * g + half)), 16, 0)
                y[:, 64 * g + 32 * half:64 * g + 32 * half + 32] = \
                    ((dl[:, None] * v.astype(F)).astype(F) - ml[:, None]).astype(F)
    elif t == "q6_k":
        ql, qh = b[:, 0:128], b[:, 128:192]
        sc = b[:, 192:208].astype(np.uint8).view(np.int8).astype(F)
        d = fp16(208)
        for h in range(2):
            l_ = ql[:, 64 * h:64 * h + 64]
            h_ = qh[:, 32 * h:32 * h + 32]
            qs = [((l_[:, 0:32] & 0xF) | ((h_ & 3) << 4)) - 32,
                  ((l_[:, 32:64] & 0xF) | (((h_ >> 2) & 3) << 4)) - 32,
                  ((l_[:, 0:32] >> 4) | (((h_ >> 4) & 3) << 4)) - 32,
                  ((l_[:, 32:64] >> 4) | (((h_ >> 6) & 3) << 4)) - 32]
            for k in range(4):
                for l in range(32):
                    s = sc[:, 8 * h + l // 16 + 2 * k]
                    y[:, 128 * h + 32 * k + l] = ((d * s).astype(F) * qs[k][:, l].astype(F)).astype(F)
    elif t == "q2_k":
        sc, q = b[:, 0:16], b[:, 16:80]
        d, dmin = fp16(80), fp16(82)
        k = 0
        for g in range(2):
            for shift in range(0, 8, 2):
                for half in range(2):
                    s = sc[:, 8 * g + 2 * (shift // 2) + half]
                    dl = (d * (s & 0xF).astype(F)).astype(F)
                    ml = (dmin * (s >> 4).astype(F)).astype(F)
                    v = (q[:, 32 * g + 16 * half:32 * g + 16 * half + 16] >> shift) & 3
                    y[:, k:k + 16] = ((dl[:, None] * v.astype(F)).astype(F) - ml[:, None]).astype(F)
                    k += 16
    elif t == "q3_k":
        hm, q, s = b[:, 0:32], b[:, 32:96], b[:, 96:108]
        d = fp16(108)
        scales = []
        for j in range(16):
            lo = (s[:, j] & 0xF) if j < 8 else (s[:, j - 8] >> 4)
            hi = (s[:, 8 + j % 4] >> (2 * (j // 4))) & 3
            scales.append((lo | (hi << 4)) - 32)
        k, is_, m = 0, 0, 1
        for g in range(2):
            for shift in range(0, 8, 2):
                for half in range(2):
                    dl = (d * scales[is_].astype(F)).astype(F)
                    is_ += 1
                    qq = q[:, 32 * g + 16 * half:32 * g + 16 * half + 16]
                    hh = hm[:, 16 * half:16 * half + 16]
                    v = ((qq >> shift) & 3) - np.where(hh & m, 0, 4)
                    y[:, k:k + 16] = (dl[:, None] * v.astype(F)).astype(F)
                    k += 16
                m <<= 1
    else:
        raise ValueError(t)
    return y.reshape(-1).astype(F)


# ---- golden file ----------------------------------------------------------------------

def golden_inputs():
    """Named float32 inputs: 768 values (3 K-blocks) for "normal", 256 (one K-block,
    8 small blocks) for the edge cases."""
    rng = np.random.default_rng(25)
    cases = []
    cases.append(("normal", rng.standard_normal(768).astype(F)))
    cases.append(("normal_x0.02", (rng.standard_normal(256) * 0.02).astype(F)))
    cases.append(("zeros", np.zeros(256, F)))
    v = rng.standard_normal(256).astype(F)
    v[37] = F(1e4)
    v[200] = F(-3e3)
    cases.append(("one_huge", v))
    v = rng.standard_normal(256).astype(F)
    for blk in range(8):  # the largest |x| of every block is negative
        v[blk * 32 + 5] = -F(4.0) - F(blk)
    cases.append(("negative_max", v))
    # scales that fall in fp16's subnormal range or under it (d rounds to 0)
    cases.append(("tiny_1e-5", (rng.standard_normal(256) * 1e-5).astype(F)))
    cases.append(("tiny_1e-9", (rng.standard_normal(256) * 1e-9).astype(F)))
    cases.append(("tiny_1e-30", (rng.standard_normal(256) * 1e-30).astype(F)))
    v = rng.uniform(0.5, 2.0, 256).astype(F)  # all positive: min > 0 paths
    cases.append(("positive", v))
    v = np.round(rng.standard_normal(256) * 4).astype(F) / F(4)  # ties in nearest_int
    cases.append(("quarters", v))
    # exact halves: each 32-block's largest |x| is 127 (Q8_0: d = 1, so x*id lands on
    # k + 0.5 and roundf's away-from-zero shows) or 8 (Q4_0: d = -1)
    v = (rng.integers(-200, 200, 256) * 0.5).astype(F)
    v = np.clip(v, -100, 100).astype(F)
    v[0::32] = F(127.0)
    v[16::64] = F(-127.0)
    cases.append(("halves", v))
    v = (rng.integers(-15, 16, 256) * 0.5).astype(F)
    v[0::32] = F(-8.0)
    cases.append(("halves_small", v))
    v = np.zeros(256, F)
    v[::7] = F(1.0)  # constant sub-blocks mixed with spikes
    cases.append(("sparse", v))
    return cases


def write_golden(path):
    """Format (little-endian):
      'VKQG' u32 version=1, u32 n_cases, u32 n_types
      per case: u32 name_len, name, u32 n, n float32 inputs
        per quantizable type (QUANTIZABLE order): u32 type_name_len, type name,
          u32 nbytes, bytes, n float32 dequantized
      u32 n_dq; per type (all ten): u32 type_name_len, type name, u32 nbytes, bytes,
          u32 n, n float32 dequantized
      u32 n_sd; per (case, quantizable type): u32 case index, u32 type_name_len, type
          name, u32 n_per_row, u32 nbytes, bytes of quantize_sdcpp (importance matrix of
          ones, stable-diffusion.cpp's path; the case is one row)
    """
    cases = golden_inputs()
    out = bytearray(b"VKQG")
    out += struct.pack("<III", 1, len(cases), len(QUANTIZABLE))
    for name, x in cases:
        out += struct.pack("<I", len(name)) + name.encode()
        out += struct.pack("<I", x.size) + x.astype("<f4").tobytes()
        for t in QUANTIZABLE:
            q = quantize(t, x)
            y = dequantize(t, q, x.size)
            out += struct.pack("<I", len(t)) + t.encode()
            out += struct.pack("<I", len(q)) + q + y.astype("<f4").tobytes()
    # dequantization of random blocks, every type (Q2_K, Q3_K, Q5_K have no quantizer
    # here): random bytes with the fp16 scales replaced by finite random halves
    rng = np.random.default_rng(2525)
    scale_at = {"q4_0": [0], "q4_1": [0, 2], "q5_0": [0], "q5_1": [0, 2], "q8_0": [0], "q2_k": [80, 82],
                "q3_k": [108], "q4_k": [0, 2], "q5_k": [0, 2], "q6_k": [208]}
    out += struct.pack("<I", len(TYPES))
    for t, (bk, bb, _) in TYPES.items():
        nb = 3
        raw = rng.integers(0, 256, (nb, bb)).astype(np.uint8)
        for o in scale_at[t]:
            h = (rng.standard_normal(nb) * 0.05).astype(np.float16).view(np.uint16)
            raw[:, o] = h & 0xFF
            raw[:, o + 1] = h >> 8
        y = dequantize(t, raw.tobytes(), nb * bk)
        out += struct.pack("<I", len(t)) + t.encode()
        out += struct.pack("<I", nb * bb) + raw.tobytes() + struct.pack("<I", nb * bk) + y.astype("<f4").tobytes()
    # stable-diffusion.cpp's path: ggml_quantize_chunk with an importance matrix of ones,
    # each case one row (768 values for "normal": the row's mean square is not a block's)
    entries = [(ci, t) for ci in range(len(cases)) for t in QUANTIZABLE]
    out += struct.pack("<I", len(entries))
    for ci, t in entries:
        n = cases[ci][1].size
        q = quantize_sdcpp(t, cases[ci][1], n)
        out += struct.pack("<I", ci) + struct.pack("<I", len(t)) + t.encode()
        out += struct.pack("<II", n, len(q)) + q
    with open(path, "wb") as f:
        f.write(out)
    print(f"{path}: {len(cases)} cases x {len(QUANTIZABLE)} types, {len(out)} bytes")


def self_check():
    """Quantize -> dequantize error within each type's bound on N(0,1) data."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal(4096).astype(F)
    for t in QUANTIZABLE:
        y = dequantize(t, quantize(t, x), x.size)
        rmse = float(np.sqrt(np.mean((y - x) ** 2)))
        print(f"{t}: rmse {rmse:.4f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--golden", help="write the golden file here")
    ap.add_argument("--check", action="store_true", help="print round-trip errors")
    a = ap.parse_args()
    if a.golden:
        write_golden(a.golden)
    if a.check:
        self_check()
    if not a.golden and not a.check:
        ap.print_help()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
