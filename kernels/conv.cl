/* 1-D convolution per variable, no padding. Layouts (row-major, last index contiguous):
 *   x    : (B, V, L)          input, variable v of sample b is the row bv = b*V + v
 *   w    : (Vw, F, W)         Vw = V with independent weights (indep = 1), else 1
 *   bias : (Vw, F)
 *   y    : (B, V, U, F)       U = (L - W) / step + 1 positions, filters contiguous
 * y[b,v,u,f] = bias[v',f] + sum_j w[v',f,j] * x[b,v,u*step + j], v' = indep ? v : 0.
 * Backward kernels ACCUMULATE into dx, dw, dbias. */

/* global (F, U, B*V) */
__kernel void conv1d_fwd(__global const float* x, __global const float* w,
                         __global const float* bias, __global float* y, const int V,
                         const int L, const int W, const int step, const int indep,
                         const int has_bias) {
    const int f = get_global_id(0), u = get_global_id(1), bv = get_global_id(2);
    const int F = get_global_size(0), U = get_global_size(1);
    const int wv = indep ? bv % V : 0;
    __global const float* wr = w + (size_t)(wv * F + f) * W;
    __global const float* xr = x + (size_t)bv * L + u * step;
    float s = has_bias ? bias[wv * F + f] : 0.0f;
    for (int j = 0; j < W; ++j) s += wr[j] * xr[j];
    y[((size_t)bv * U + u) * F + f] = s;
}

/* dx[b,v,l] += sum over the positions u whose window covers l and all filters f.
 * global (L, B*V) */
__kernel void conv1d_bwd_input(__global const float* dy, __global const float* w,
                               __global float* dx, const int V, const int U, const int F,
                               const int W, const int step, const int indep) {
    const int l = get_global_id(0), bv = get_global_id(1);
    const int L = get_global_size(0);
    const int wv = indep ? bv % V : 0;
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

/* dw[v',f,j] (j < W) and, when has_bias, dbias[v',f] += sum over samples, positions and,
 * with shared weights, all variables. Each work-item sums CONV_JC consecutive columns j (the
 * first column chunk also the bias): it reads dy once per (sample, variable, position) for
 * all of them and the input window in one run; one work-item per column re-read every dy and
 * x line per column. global (ceil(W / CONV_JC), F, Vw) */
#define CONV_JC 16
__kernel void conv1d_bwd_weight(__global const float* dy, __global const float* x,
                                __global float* dw, __global float* dbias, const int B,
                                const int V, const int L, const int U, const int W,
                                const int step, const int indep, const int has_bias) {
    const int j0 = get_global_id(0) * CONV_JC, f = get_global_id(1), wv = get_global_id(2);
    const int F = get_global_size(1);
    const int v0 = indep ? wv : 0, v1 = indep ? wv + 1 : V;
    const int nj = W - j0 < CONV_JC ? W - j0 : CONV_JC;
    float s[CONV_JC];
    for (int q = 0; q < CONV_JC; ++q) s[q] = 0.0f;
    float sb = 0.0f;
    for (int b = 0; b < B; ++b)
        for (int v = v0; v < v1; ++v) {
            const size_t bv = (size_t)b * V + v;
            __global const float* g = dy + bv * U * F + f;
            __global const float* xr = x + bv * L + j0;
            for (int u = 0; u < U; ++u) {
                const float gu = g[(size_t)u * F];
                __global const float* xu = xr + u * step;
                if (nj == CONV_JC) {
                    for (int q = 0; q < CONV_JC; ++q) s[q] += gu * xu[q];
                } else {
                    for (int q = 0; q < nj; ++q) s[q] += gu * xu[q];
                }
                sb += gu;
            }
        }
    for (int q = 0; q < nj; ++q) dw[(size_t)(wv * F + f) * W + j0 + q] += s[q];
    if (has_bias && j0 == 0) dbias[wv * F + f] += sb;
}
