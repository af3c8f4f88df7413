#include "common.h"
/* Transformer block kernels: scaled dot-product attention with grouped key/value heads,
 * layer normalisation with an optional residual, and a batched transpose.
 *
 * Attention shapes (row-major, last dimension contiguous):
 *   q (B, Tq, H*dk)     query head h = columns [h*dk, (h+1)*dk)
 *   k (B, Tk, Hkv*dk)   key head g
 *   v (B, Tk, Hkv*dv)   value head g
 *   p (B, H, Tq, Tk)    attention probabilities (kept for backward)
 *   o (B, Tq, H*dv)
 * Query head h reads key/value head g = h / (H / Hkv) (contiguous groups, GQA).
 * Backward kernels ACCUMULATE into dq, dk, dv, dx, dgamma, dbeta. */

/* global (Tq, H, B): scores, softmax over the Tk keys, weighted sum of the values; with
 * kv_shared, k and v hold one batch row that every query row reads (forward only) */
__kernel void attn_fwd(__global const float* q, __global const float* k,
                       __global const float* v, __global float* p, __global float* o,
                       const int Tq, const int Tk, const int Hkv, const int dk, const int dv,
                       const float scale, const int kv_shared) {
    const int i = get_global_id(0), h = get_global_id(1), b = get_global_id(2);
    const int H = get_global_size(1);
    const int g = h / (H / Hkv);
    const int kb = kv_shared ? 0 : b;  /* one K/V for every row of the batch */
    __global const float* qr = q + (b * Tq + i) * H * dk + h * dk;
    __global float* pr = p + ((b * H + h) * Tq + i) * Tk;
    for (int j = 0; j < Tk; ++j) {
        __global const float* kr = k + (kb * Tk + j) * Hkv * dk + g * dk;
        float s = 0.0f;
        for (int d = 0; d < dk; ++d) s += qr[d] * kr[d];
        pr[j] = s * scale;
    }
    softmax_block(pr, pr, Tk);
    __global float* orow = o + (b * Tq + i) * H * dv + h * dv;
    for (int d = 0; d < dv; ++d) {
        float acc = 0.0f;
        for (int j = 0; j < Tk; ++j) acc += pr[j] * v[(kb * Tk + j) * Hkv * dv + g * dv + d];
        orow[d] = acc;
    }
}

/* global (Tq, H, B): dP_j = dO . V_j; dS_j = P_j (dP_j - sum_l P_l dP_l) stored in ds
 * (B, H, Tq, Tk); dq += scale * sum_j dS_j K_j when need_dq */
__kernel void attn_bwd_q(__global const float* k, __global const float* v,
                         __global const float* p, __global const float* dout,
                         __global float* ds, __global float* dq, const int Tq, const int Tk,
                         const int Hkv, const int dk, const int dv, const float scale,
                         const int need_dq) {
    const int i = get_global_id(0), h = get_global_id(1), b = get_global_id(2);
    const int H = get_global_size(1);
    const int g = h / (H / Hkv);
    const int prow = ((b * H + h) * Tq + i) * Tk;
    __global const float* dor = dout + (b * Tq + i) * H * dv + h * dv;
    float sp = 0.0f;
    for (int j = 0; j < Tk; ++j) {
        __global const float* vr = v + (b * Tk + j) * Hkv * dv + g * dv;
        float dp = 0.0f;
        for (int d = 0; d < dv; ++d) dp += dor[d] * vr[d];
        ds[prow + j] = dp;
        sp += dp * p[prow + j];
    }
    for (int j = 0; j < Tk; ++j) ds[prow + j] = p[prow + j] * (ds[prow + j] - sp);
    if (need_dq) {
        __global float* dqr = dq + (b * Tq + i) * H * dk + h * dk;
        for (int d = 0; d < dk; ++d) {
            float acc = 0.0f;
            for (int j = 0; j < Tk; ++j) acc += ds[prow + j] * k[(b * Tk + j) * Hkv * dk + g * dk + d];
            dqr[d] += scale * acc;
        }
    }
}

/* global (max(dk, dv), Tk, B*Hkv): sums over the query heads of group g and the queries i:
 * dk[b, j, g, d] += scale * sum dS[b, h, i, j] q[b, i, h, d];
 * dv[b, j, g, d] += sum P[b, h, i, j] dO[b, i, h, d] */
__kernel void attn_bwd_kv(__global const float* q, __global const float* p,
                          __global const float* dout, __global const float* ds,
                          __global float* dkey, __global float* dval, const int Tq,
                          const int Tk, const int H, const int Hkv, const int dk, const int dv,
                          const float scale, const int need_dk, const int need_dv) {
    const int d = get_global_id(0), j = get_global_id(1), bg = get_global_id(2);
    const int b = bg / Hkv, g = bg % Hkv, group = H / Hkv;
    if (need_dk && d < dk) {
        float acc = 0.0f;
        for (int h = g * group; h < (g + 1) * group; ++h)
            for (int i = 0; i < Tq; ++i)
                acc += ds[((b * H + h) * Tq + i) * Tk + j] * q[(b * Tq + i) * H * dk + h * dk + d];
        dkey[(b * Tk + j) * Hkv * dk + g * dk + d] += scale * acc;
    }
    if (need_dv && d < dv) {
        float acc = 0.0f;
        for (int h = g * group; h < (g + 1) * group; ++h)
            for (int i = 0; i < Tq; ++i)
                acc += p[((b * H + h) * Tq + i) * Tk + j] * dout[(b * Tq + i) * H * dv + h * dv + d];
        dval[(b * Tk + j) * Hkv * dv + g * dv + d] += acc;
    }
}

/* Layer normalisation of each row of n features, of x + r when has_r:
 * z = x (+ r); xhat = (z - mean) * inv, inv = 1/sqrt(var + eps) (biased var over the row);
 * y = gamma * xhat + beta. xhat (R, n) and inv (R,) are kept for backward. global (R) */
__kernel void ln_fwd(__global const float* x, __global const float* r, const int has_r,
                     __global const float* gamma, __global const float* beta,
                     __global float* y, __global float* xhat, __global float* inv,
                     const int n, const float eps) {
    const int row = get_global_id(0);
    const int base = row * n;
    float m = 0.0f;
    for (int j = 0; j < n; ++j) m += x[base + j] + (has_r ? r[base + j] : 0.0f);
    m /= (float)n;
    float var = 0.0f;
    for (int j = 0; j < n; ++j) {
        const float d = x[base + j] + (has_r ? r[base + j] : 0.0f) - m;
        var += d * d;
    }
    const float iv = 1.0f / sqrt(var / (float)n + eps);
    inv[row] = iv;
    for (int j = 0; j < n; ++j) {
        const float xh = (x[base + j] + (has_r ? r[base + j] : 0.0f) - m) * iv;
        xhat[base + j] = xh;
        y[base + j] = gamma[j] * xh + beta[j];
    }
}

/* dz = inv * (g - mean(g) - xhat * mean(g * xhat)), g = dy * gamma; added to dx and/or dr.
 * global (R) */
__kernel void ln_bwd_x(__global const float* dy, __global const float* xhat,
                       __global const float* inv, __global const float* gamma,
                       __global float* dx, __global float* dr, const int need_dx,
                       const int need_dr, const int n) {
    const int row = get_global_id(0);
    const int base = row * n;
    float sg = 0.0f, sgx = 0.0f;
    for (int j = 0; j < n; ++j) {
        const float g = dy[base + j] * gamma[j];
        sg += g;
        sgx += g * xhat[base + j];
    }
    sg /= (float)n;
    sgx /= (float)n;
    const float iv = inv[row];
    for (int j = 0; j < n; ++j) {
        const float dz = iv * (dy[base + j] * gamma[j] - sg - xhat[base + j] * sgx);
        if (need_dx) dx[base + j] += dz;
        if (need_dr) dr[base + j] += dz;
    }
}

/* dgamma[j] += sum_r dy * xhat; dbeta[j] += sum_r dy. global (n) */
__kernel void ln_bwd_params(__global const float* dy, __global const float* xhat,
                            __global float* dgamma, __global float* dbeta, const int R) {
    const int j = get_global_id(0), n = get_global_size(0);
    float sg = 0.0f, sb = 0.0f;
    for (int r = 0; r < R; ++r) {
        sg += dy[r * n + j] * xhat[r * n + j];
        sb += dy[r * n + j];
    }
    dgamma[j] += sg;
    dbeta[j] += sb;
}

/* dst[b, c, a] (+)= src[b, a, c]: src (B, A, C) -> dst (B, C, A). global (C, A, B) */
__kernel void batch_transpose(__global const float* src, __global float* dst, const int A,
                              const int accumulate) {
    const int c = get_global_id(0), a = get_global_id(1), b = get_global_id(2);
    const int C = get_global_size(0);
    const float val = src[(b * A + a) * C + c];
    __global float* d = dst + (b * C + c) * A + a;
    *d = accumulate ? *d + val : val;
}
