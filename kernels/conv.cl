/* 1-D convolution per variable, no padding. Layouts (row-major, last index contiguous):
 *   x    : (B, V, L)          input, variable v of sample b is the row bv = b*V + v
 *   w    : (Vw, F, W)         Vw = V with independent weights (indep = 1), else 1
 *   bias : (Vw, F)
 *   y    : (B, V, U, F)       U = (L - W) / step + 1 positions, filters contiguous
 * y[b,v,u,f] = bias[v',f] + sum_j w[v',f,j] * x[b,v,u*step + j], v' = indep ? v : 0.
 * Backward kernels ACCUMULATE into dx, dw, dbias. */

/* CONV_C consecutive outputs per work-item (filters in the forward, input positions in the
 * backward): one work-item per output spent more on its own start than on its few MACs. */
#define CONV_C 16

/* global (ceil(F / CONV_C), U, B*V) */
__kernel void conv1d_fwd(__global const float* x, __global const float* w,
                         __global const float* bias, __global float* y, const int V,
                         const int L, const int W, const int step, const int indep,
                         const int has_bias, const int F) {
    const int f0 = get_global_id(0) * CONV_C, u = get_global_id(1), bv = get_global_id(2);
    const int U = get_global_size(1);
    const int wv = indep ? bv % V : 0;
    const int f1 = F - f0 < CONV_C ? F : f0 + CONV_C;
    __global const float* xr = x + (size_t)bv * L + u * step;
    for (int f = f0; f < f1; ++f) {
        __global const float* wr = w + (size_t)(wv * F + f) * W;
        float s = has_bias ? bias[wv * F + f] : 0.0f;
        for (int j = 0; j < W; ++j) s += wr[j] * xr[j];
        y[((size_t)bv * U + u) * F + f] = s;
    }
}

/* dx[b,v,l] += sum over the positions u whose window covers l and all filters f.
 * global (ceil(L / CONV_C), B*V) */
__kernel void conv1d_bwd_input(__global const float* dy, __global const float* w,
                               __global float* dx, const int V, const int U, const int F,
                               const int W, const int step, const int indep, const int L) {
    const int l0 = get_global_id(0) * CONV_C, bv = get_global_id(1);
    const int wv = indep ? bv % V : 0;
    const int l1 = L - l0 < CONV_C ? L : l0 + CONV_C;
    for (int l = l0; l < l1; ++l) {
        int u_lo = l - W + 1 > 0 ? (l - W + 1 + step - 1) / step : 0;
        int u_hi = l / step;
        if (u_hi > U - 1) u_hi = U - 1;
        float s = 0.0f;
        for (int u = u_lo; u <= u_hi; ++u) {
            const int j = l - u * step;
            __global const float* g = dy + ((size_t)bv * U + u) * F;
            for (int f = 0; f < F; ++f) s += w[(size_t)(wv * F + f) * W + j] * g[f];
        }
        dx[(size_t)bv * L + l] += s;
    }
}

/* dw[v',f,j] (j < W) and, when has_bias, dbias[v',f] += sum over samples, positions and,
 * with shared weights, all variables. Each work-item sums CONV_C consecutive columns j of
 * CONV_FW consecutive filters f (the first column chunk also their biases): one pass over the
 * samples reads each dy and input line once for all of them (the samples of one variable lie
 * a row apart: a line and often a page per sample). global (ceil(W / CONV_C),
 * ceil(F / CONV_FW), Vw) */
#define CONV_FW 4
__kernel void conv1d_bwd_weight(__global const float* dy, __global const float* x,
                                __global float* dw, __global float* dbias, const int B,
                                const int V, const int L, const int U, const int W,
                                const int step, const int indep, const int has_bias,
                                const int F) {
    const int j0 = get_global_id(0) * CONV_C, f0 = get_global_id(1) * CONV_FW;
    const int wv = get_global_id(2);
    const int v0 = indep ? wv : 0, v1 = indep ? wv + 1 : V;
    const int nj = W - j0 < CONV_C ? W - j0 : CONV_C;
    const int nf = F - f0 < CONV_FW ? F - f0 : CONV_FW;
    float s[CONV_FW][CONV_C];
    float sb[CONV_FW];
    for (int p = 0; p < CONV_FW; ++p) {
        sb[p] = 0.0f;
        for (int q = 0; q < CONV_C; ++q) s[p][q] = 0.0f;
    }
    for (int b = 0; b < B; ++b)
        for (int v = v0; v < v1; ++v) {
            const size_t bv = (size_t)b * V + v;
            __global const float* g = dy + bv * U * F + f0;
            __global const float* xr = x + bv * L + j0;
            for (int u = 0; u < U; ++u) {
                __global const float* gu = g + (size_t)u * F;
                __global const float* xu = xr + u * step;
                for (int p = 0; p < nf; ++p) {
                    const float gp = gu[p];
                    if (nj == CONV_C) {
                        for (int q = 0; q < CONV_C; ++q) s[p][q] += gp * xu[q];
                    } else {
                        for (int q = 0; q < nj; ++q) s[p][q] += gp * xu[q];
                    }
                    sb[p] += gp;
                }
            }
        }
    for (int p = 0; p < nf; ++p) {
        const int f = f0 + p;
        for (int q = 0; q < nj; ++q) dw[(size_t)(wv * F + f) * W + j0 + q] += s[p][q];
        if (has_bias && j0 == 0) dbias[wv * F + f] += sb[p];
    }
}
