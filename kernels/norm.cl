#include "common.h"
/* Batch normalisation over the rows of x (R, n): feature j = column j (contiguous).
 * gamma, beta, mean, var, inv_feat : (n,); xhat, inv_elem : (R, n).
 * One work-item per feature loops over the rows (R is a batch, n can be 1080).
 * Backward kernels ACCUMULATE into dx, dgamma, dbeta. */

/* Training-mode batch statistics (biased variance for normalising). When update != 0 the
 * running stats move by momentum towards (mean, unbiased variance) like torch. global (n) */
__kernel void bn_batch_fwd(__global const float* x, __global const float* gamma,
                           __global const float* beta, __global float* y,
                           __global float* xhat, __global float* inv_feat,
                           __global float* run_mean, __global float* run_var, const int R,
                           const float eps, const float momentum, const int update) {
    const int j = get_global_id(0), n = get_global_size(0);
    float m = 0.0f;
    for (int r = 0; r < R; ++r) m += x[r * n + j];
    m /= (float)R;
    float v = 0.0f;
    for (int r = 0; r < R; ++r) {
        const float d = x[r * n + j] - m;
        v += d * d;
    }
    v /= (float)R;
    const float inv = 1.0f / sqrt(v + eps);
    for (int r = 0; r < R; ++r) {
        const float xh = (x[r * n + j] - m) * inv;
        xhat[r * n + j] = xh;
        y[r * n + j] = gamma[j] * xh + beta[j];
    }
    inv_feat[j] = inv;
    if (update) {
        run_mean[j] = (1.0f - momentum) * run_mean[j] + momentum * m;
        run_var[j] = (1.0f - momentum) * run_var[j] + momentum * v * (float)R / (float)(R - 1);
    }
}

/* Normalise with given per-feature statistics (eval mode). global (n, R) */
__kernel void bn_stats_fwd(__global const float* x, __global const float* gamma,
                           __global const float* beta, __global const float* mean,
                           __global const float* var, __global float* y, __global float* xhat,
                           __global float* inv_elem, const float eps) {
    const int j = get_global_id(0), r = get_global_id(1), n = get_global_size(0);
    const float inv = 1.0f / sqrt(var[j] + eps);
    const float xh = (x[r * n + j] - mean[j]) * inv;
    xhat[r * n + j] = xh;
    inv_elem[r * n + j] = inv;
    y[r * n + j] = gamma[j] * xh + beta[j];
}

/* The seed's running per-element normaliser (spec 9.1), rows taken in order: with
 * N = min(count + r + 1, window): mean = (mean*(N-1) + x)/N, var = (var*(N-1) + (x-mean)^2)/N,
 * then y = gamma*(x - mean)/sqrt(var + eps) + beta with the updated stats. Features j0 ..
 * j0+7 per work-item as one float8 (vector division and sqrt: the same correctly rounded
 * values as scalar ones, 4x faster here); the last n % 8 features one by one.
 * global (ceil(n / 8)) */
typedef float8 __attribute__((aligned(4))) float8u;  /* unaligned moves: no vload8 (common.h) */
#define BN_RUN(T, LD, ST, j)                                                                   \
    {                                                                                        \
        T m = LD(mean + j), v = LD(var + j);                                                 \
        const T ga = LD(gamma + j), be = LD(beta + j);                                       \
        for (int r = 0; r < R; ++r) {                                                        \
            const float N = FMIN(c0 + (float)(r + 1), window);                               \
            const T xv = LD(x + (size_t)r * n + j);                                          \
            m = (m * (N - 1.0f) + xv) / N;                                                   \
            const T d = xv - m;                                                              \
            v = (v * (N - 1.0f) + d * d) / N;                                                \
            const T inv = 1.0f / sqrt(v + eps);                                              \
            ST(d * inv, xhat + (size_t)r * n + j);                                           \
            ST(inv, inv_elem + (size_t)r * n + j);                                           \
            ST(ga * d * inv + be, y + (size_t)r * n + j);                                    \
        }                                                                                    \
        ST(m, mean + j);                                                                     \
        ST(v, var + j);                                                                      \
    }
#define BN_LD8(p) (*(__global const float8u*)(p))
#define BN_ST8(v, p) (*(__global float8u*)(p) = (v))
#define BN_LD1(p) (*(p))
#define BN_ST1(v, p) (*(p) = (v))

__kernel void bn_running_fwd(__global const float* x, __global const float* gamma,
                             __global const float* beta, __global float* mean,
                             __global float* var, __global const float* count,
                             __global float* y, __global float* xhat, __global float* inv_elem,
                             const int R, const float window, const float eps, const int n) {
    const int j0 = 8 * get_global_id(0);
    const float c0 = count[0];
    if (j0 + 8 <= n) BN_RUN(float8, BN_LD8, BN_ST8, j0)
    else
        for (int j = j0; j < n; ++j) BN_RUN(float, BN_LD1, BN_ST1, j)
}

/* count[0] = min(count[0] + R, window), after bn_running_fwd. global (1) */
__kernel void bn_running_count(__global float* count, const int R, const float window) {
    count[0] = FMIN(count[0] + (float)R, window);
}

/* Backward through batch statistics. global (n) */
__kernel void bn_batch_bwd(__global const float* dy, __global const float* xhat,
                           __global const float* inv_feat, __global const float* gamma,
                           __global float* dx, __global float* dgamma, __global float* dbeta,
                           const int R, const int need_dx, const int need_dparams) {
    const int j = get_global_id(0), n = get_global_size(0);
    float sdy = 0.0f, sdyx = 0.0f;
    for (int r = 0; r < R; ++r) {
        const float g = dy[r * n + j];
        sdy += g;
        sdyx += g * xhat[r * n + j];
    }
    if (need_dparams) {
        dgamma[j] += sdyx;
        dbeta[j] += sdy;
    }
    if (need_dx) {
        const float k = gamma[j] * inv_feat[j] / (float)R;
        for (int r = 0; r < R; ++r)
            dx[r * n + j] += k * ((float)R * dy[r * n + j] - sdy - xhat[r * n + j] * sdyx);
    }
}

/* Backward with the statistics held constant (eval mode, running normaliser):
 * dx = dy * gamma * inv. global (n) */
__kernel void bn_const_bwd(__global const float* dy, __global const float* xhat,
                           __global const float* inv_elem, __global const float* gamma,
                           __global float* dx, __global float* dgamma, __global float* dbeta,
                           const int R, const int need_dx, const int need_dparams) {
    const int j = get_global_id(0), n = get_global_size(0);
    float sdy = 0.0f, sdyx = 0.0f;
    for (int r = 0; r < R; ++r) {
        const float g = dy[r * n + j];
        sdy += g;
        sdyx += g * xhat[r * n + j];
        if (need_dx) dx[r * n + j] += g * gamma[j] * inv_elem[r * n + j];
    }
    if (need_dparams) {
        dgamma[j] += sdyx;
        dbeta[j] += sdy;
    }
}
