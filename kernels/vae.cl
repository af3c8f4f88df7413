/* VAE reparameterisation head. x : (B, 2k) rows [mu (k) | logvar (k)], contiguous columns;
 * y, eps : (B, k). Backward kernels ACCUMULATE into dx. */
#include "common.h"

#define WG 256  /* must match nn/ops/vae.py */
#define TWO_PI 6.283185307179586f

/* eps ~ N(0, 1) by Box-Muller on two counter-based uniforms (indices 2i, 2i+1), so the same
 * (seed, counter, i) gives the same draw on every device; y = mu + exp(0.5 logvar) * eps. */
static inline __attribute__((always_inline)) void vae_draw(__global const float* x, __global float* y, __global float* eps,
                           const int b, const int j, const int k, const uint seed,
                           const uint counter, const uint i) {
    const float u1 = uniform01(seed, counter, 2u * i);
    const float u2 = uniform01(seed, counter, 2u * i + 1u);
    const float e = sqrt(-2.0f * log(u1)) * cos(TWO_PI * u2);
    const float mu = x[b * 2 * k + j], lv = x[b * 2 * k + k + j];
    eps[b * k + j] = e;
    y[b * k + j] = mu + exp(0.5f * lv) * e;
}

/* One seed for the batch: element (b, j) draws index i = b * k + j. global (k, B) */
__kernel void vae_sample_fwd(__global const float* x, __global float* y, __global float* eps,
                             const uint seed, const uint counter) {
    const int j = get_global_id(0), b = get_global_id(1), k = get_global_size(0);
    vae_draw(x, y, eps, b, j, k, seed, counter, (uint)(b * k + j));
}

/* One seed per row (a group of passes): row b draws with seeds[b] and index j, exactly what a
 * batch of one row with seed seeds[b] draws. global (k, B) */
__kernel void vae_sample_rows_fwd(__global const float* x, __global float* y,
                                  __global float* eps, __global const uint* seeds,
                                  const uint counter) {
    const int j = get_global_id(0), b = get_global_id(1), k = get_global_size(0);
    vae_draw(x, y, eps, b, j, k, seeds[b], counter, (uint)j);
}

/* dmu += dy; dlogvar += dy * 0.5 * exp(0.5 logvar) * eps. global (k, B) */
__kernel void vae_sample_bwd(__global const float* x, __global const float* eps,
                             __global const float* dy, __global float* dx) {
    const int j = get_global_id(0), b = get_global_id(1), k = get_global_size(0);
    const float g = dy[b * k + j];
    const float lv = x[b * 2 * k + k + j];
    dx[b * 2 * k + j] += g;
    dx[b * 2 * k + k + j] += g * 0.5f * exp(0.5f * lv) * eps[b * k + j];
}

/* out[0] = mult / B * sum_b -0.5 * sum_j (1 + lv - mu^2 - exp(lv)).
 * One work-group: launch global = local = WG. */
__kernel void vae_kl_fwd(__global const float* x, __global float* out, const int B,
                         const int k, const float mult) {
    __local float tmp[WG];
    const int l = get_local_id(0);
    float s = 0.0f;
    for (int i = l; i < B * k; i += WG) {
        const int b = i / k, j = i - b * k;
        const float mu = x[b * 2 * k + j], lv = x[b * 2 * k + k + j];
        s += 1.0f + lv - mu * mu - exp(lv);
    }
    tmp[l] = s;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int stride = WG / 2; stride > 0; stride >>= 1) {
        if (l < stride) tmp[l] += tmp[l + stride];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (l == 0) out[0] = -0.5f * mult / (float)B * tmp[0];
}

/* dmu += dout * mult / B * mu; dlogvar += dout * mult / B * 0.5 * (exp(lv) - 1).
 * global (k, B) */
__kernel void vae_kl_bwd(__global const float* x, __global const float* dout,
                         __global float* dx, const float mult) {
    const int j = get_global_id(0), b = get_global_id(1), k = get_global_size(0);
    const int B = get_global_size(1);
    const float s = dout[0] * mult / (float)B;
    const float mu = x[b * 2 * k + j], lv = x[b * 2 * k + k + j];
    dx[b * 2 * k + j] += s * mu;
    dx[b * 2 * k + k + j] += s * 0.5f * (exp(lv) - 1.0f);
}
