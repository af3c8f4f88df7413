/* Element-wise ops on contiguous float32 buffers; dimension 0 = element index.
 * Backward kernels ACCUMULATE into the gradient (dx += ...). */
#include "common.h"

__kernel void axpby_fwd(__global const float* a, __global const float* b, __global float* y,
                        const float alpha, const float beta) {
    const int i = get_global_id(0);
    y[i] = alpha * a[i] + beta * b[i];
}

/* dx += alpha * dy */
__kernel void axpy_acc(__global const float* dy, __global float* dx, const float alpha) {
    const int i = get_global_id(0);
    dx[i] += alpha * dy[i];
}

__kernel void mul_fwd(__global const float* a, __global const float* b, __global float* y) {
    const int i = get_global_id(0);
    y[i] = a[i] * b[i];
}

/* da += dy * b */
__kernel void mul_bwd(__global const float* dy, __global const float* b, __global float* da) {
    const int i = get_global_id(0);
    da[i] += dy[i] * b[i];
}

/* y (rows x n) = x + bias broadcast over rows */
__kernel void bias_add_fwd(__global const float* x, __global const float* bias,
                           __global float* y, const int n) {
    const int i = get_global_id(0);
    y[i] = x[i] + bias[i % n];
}

/* dbias[j] += sum_r dy[r, j], rows in order. Columns j0 .. j0+7 per work-item as one float8
 * (a line per row instead of a line per row and column; the same sums), the last n % 8
 * columns one by one. global (ceil(n / 8)) */
typedef float8 __attribute__((aligned(4))) float8u;  /* unaligned moves: no vload8 (common.h) */
__kernel void bias_add_bwd(__global const float* dy, __global float* dbias,
                           const int rows, const int n) {
    const int j0 = 8 * get_global_id(0);
    if (j0 + 8 <= n) {
        float8 s = (float8)(0.0f);
        for (int r = 0; r < rows; ++r) s += *(__global const float8u*)(dy + (size_t)r * n + j0);
        *(__global float8u*)(dbias + j0) = *(__global const float8u*)(dbias + j0) + s;
    } else {
        for (int j = j0; j < n; ++j) {
            float s = 0.0f;
            for (int r = 0; r < rows; ++r) s += dy[(size_t)r * n + j];
            dbias[j] += s;
        }
    }
}

/* y = act(x + bias) with bias (n,) broadcast over rows (x may be y): the epilogue of a dense
 * layer whose product took the packed GEMM path */
__kernel void bias_act_fwd(__global const float* x, __global const float* bias,
                           __global float* y, const int n, const int has_bias, const int act) {
    const int i = get_global_id(0);
    y[i] = act_apply(has_bias ? x[i] + bias[i % n] : x[i], act);
}

__kernel void act_fwd(__global const float* x, __global float* y, const int act) {
    const int i = get_global_id(0);
    y[i] = act_apply(x[i], act);
}

__kernel void act_bwd(__global const float* x, __global const float* y,
                      __global const float* dy, __global float* dx, const int act) {
    const int i = get_global_id(0);
    dx[i] += dy[i] * act_grad(x[i], y[i], act);
}

/* y = x * mask / (1 - p), mask = uniform(seed, counter, i) >= p; keeps the mask for backward */
__kernel void dropout_fwd(__global const float* x, __global float* y, __global float* mask,
                          const float p, const uint seed, const uint counter) {
    const int i = get_global_id(0);
    const float m = uniform01(seed, counter, (uint)i) >= p ? 1.0f / (1.0f - p) : 0.0f;
    mask[i] = m;
    y[i] = x[i] * m;
}
