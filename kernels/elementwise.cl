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

/* act'(y) of 8 values from the outputs alone, for the activations whose derivative the output
 * determines (none, tanh, sigmoid, relu, leaky_relu): the same values as act_grad (relu and
 * leaky_relu: y > 0 exactly where x > 0). */
inline float8 act_grad8(const float8 y, const int a) {
    switch (a) {
        case ACT_TANH: return 1.0f - y * y;
        case ACT_SIGMOID: return y * (1.0f - y);
        case ACT_RELU: return select((float8)(0.0f), (float8)(1.0f), y > 0.0f);
        case ACT_LEAKY_RELU: return select((float8)(0.01f), (float8)(1.0f), y > 0.0f);
        default: return (float8)(1.0f);
    }
}

/* The backward of y = act(z + bias) (rows x n, the graph path of ops.linear) in one pass:
 * dz = dy * act'(y), written (not accumulated; act_bwd's values into a zeroed buffer), and,
 * when has_bias, dbias[j] += sum_r dz[r, j] in row order (bias_add_bwd's sums). act: one of
 * act_grad8's. Columns j0 .. j0+7 per work-item, the last n % 8 one by one. global
 * (ceil(n / 8)) */
__kernel void bias_act_bwd(__global const float* y, __global const float* dy,
                           __global float* dz, __global float* dbias, const int rows,
                           const int n, const int has_bias, const int act) {
    const int j0 = 8 * get_global_id(0);
    if (j0 + 8 <= n) {
        float8 s = (float8)(0.0f);
        for (int r = 0; r < rows; ++r) {
            const size_t i = (size_t)r * n + j0;
            const float8 d = *(__global const float8u*)(dy + i)
                             * act_grad8(*(__global const float8u*)(y + i), act);
            *(__global float8u*)(dz + i) = d;
            s += d;
        }
        if (has_bias) *(__global float8u*)(dbias + j0) = *(__global const float8u*)(dbias + j0) + s;
    } else {
        for (int j = j0; j < n; ++j) {
            float s = 0.0f;
            for (int r = 0; r < rows; ++r) {
                const size_t i = (size_t)r * n + j;
                const float d = dy[i] * act_grad(y[i], y[i], act);
                dz[i] = d;
                s += d;
            }
            if (has_bias) dbias[j] += s;
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
