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

/* a * b + c as one FMA (the compiler contracts it: fma() is an out-of-line call in pip PoCL) */
inline float8 fma8(const float8 a, const float8 b, const float8 c) {
    return a * b + c;
}

/* tanh of 8 floats, bit-identical to the scalar tanh() of pip PoCL 3.0 on AVX2 (checked for all
 * 2^32 inputs; tests/test_linear_train.py keeps a sweep): the same operations in the same order
 * as that built-in (a rational approximation below 1, 1 - 2 / (exp(2|x|) + 1) above, 1 - 2^-24
 * above 8.3177, sign restored), on float8. About 9x faster than 8 scalar calls; PoCL's own
 * float8 tanh() differs from the scalar one in about 2 inputs in 10,000 (by one ulp: it
 * rounds the exponent differently and fuses the exp polynomial), so this one is written out.
 * Contraction is off inside: only fma8 fuses, where the built-in calls llvm.fma. */
inline float8 tanh8(const float8 x) {
#pragma OPENCL FP_CONTRACT OFF
    const int8 bits = as_int8(x);
    const int8 sign = bits & (int8)(0x80000000);
    const float8 ax = as_float8(bits & (int8)(0x7fffffff));
    /* |x| <= 1: ax + ax^3 p(ax^2) / q(ax^2), one of two fits split at 0.9 */
    const float8 x2 = ax * ax;
    const float8 na = fma8(x2, fma8(x2, (float8)(0x1.9a56fap-15f), (float8)(-0x1.7f793cp-10f)),
                           (float8)(-0x1.20b1c0p-2f));
    const float8 da = fma8(x2, (float8)(0x1.5eed38p-2f), (float8)(0x1.b10aa0p-1f));
    const float8 nb = fma8(x2, fma8(x2, (float8)(0x1.4113b0p-15f), (float8)(-0x1.431c00p-10f)),
                           (float8)(-0x1.ecf362p-3f));
    const float8 db = fma8(x2, (float8)(0x1.2b8cbep-2f), (float8)(0x1.71b6c0p-1f));
    const int8 below = ax < (float8)(0x1.ccccccp-1f);
    const float8 x3 = x2 * ax;
    const float8 r_small = fma8(select(nb, na, below) / select(db, da, below), x3, ax);
    /* |x| > 1: e = exp(2 ax) = 2^k exp(t), k = round(2 ax / ln 2) (half away from zero, by
     * truncation), t = 2 ax - k ln 2 in two parts, exp(t) = 1 + t + t^2 p(t) */
    const float8 y = ax * 2.0f;
    const float8 yl = y * 0x1.715476p+0f;
    const int8 k = convert_int8(yl + select((float8)(0.5f), (float8)(-0.5f), yl < 0.0f));
    const float8 kf = convert_float8(k);
    const float8 hi = kf * 0x1.62e400p-1f;
    const float8 lo = kf * 0x1.7f7d1cp-20f;
    const float8 t0 = y - hi;
    const float8 t = t0 - lo;
    float8 p = t * 0x1.a057b4p-13f;
    p = p + 0x1.6d2d92p-10f;
    p = t * p;
    p = p + 0x1.11114cp-7f;
    p = t * p;
    p = p + 0x1.5554f4p-5f;
    p = t * p;
    p = p + 0x1.555556p-3f;
    p = t * p;
    p = p + 0.5f;
    const float8 tt = t * t;
    p = tt * p;
    float8 e = t + p;
    e = e + 1.0f;
    const int8 kh = k >> 1;  /* 2^k as two factors: no overflow of the exponent field */
    e = e * as_float8((kh << 23) + (int8)(0x3f800000));
    e = e * as_float8(((k - kh) << 23) + (int8)(0x3f800000));
    const float8 e1 = e + 1.0f;
    const float8 q = 2.0f / e1;
    float8 r_large = 1.0f - q;
    r_large = select(r_large, (float8)(-1.0f), y < -104.0f);
    r_large = select(r_large, (float8)(1.0f), y > 104.0f);
    int8 r = as_int8(select(r_large, r_small, ax <= 1.0f));
    r = select(r, (int8)(0x3f7fffff), ax > (float8)(0x1.0a2b24p+3f));
    return as_float8(r | sign);
}

/* y = act(x + bias) with bias (n,) broadcast over rows, total = rows * n elements (x may be
 * y): the epilogue of a dense layer whose product took the packed GEMM path. 8 elements per
 * work-item, tanh through tanh8 (the same values as act_apply), the last total % 8 one by one.
 * global (ceil(total / 8)) */
__kernel void bias_act_fwd(__global const float* x, __global const float* bias,
                           __global float* y, const int n, const int has_bias, const int act,
                           const int total) {
    const int i0 = 8 * get_global_id(0);
    int j = i0 % n;  /* the column of element i0 */
    if (i0 + 8 <= total) {
        float8 z = *(__global const float8u*)(x + i0);
        if (has_bias && j + 8 <= n) {  /* the 8 elements in one row */
            z += *(__global const float8u*)(bias + j);
        } else if (has_bias) {
            float zq[8];
            *(float8u*)zq = z;
            for (int q = 0; q < 8; ++q) {
                zq[q] += bias[j];
                if (++j == n) j = 0;
            }
            z = *(float8u*)zq;
        }
        if (act == ACT_TANH) {
            *(__global float8u*)(y + i0) = tanh8(z);
        } else {
            float zq[8];
            *(float8u*)zq = z;
            for (int q = 0; q < 8; ++q) y[i0 + q] = act_apply(zq[q], act);
        }
    } else {
        for (int i = i0; i < total; ++i) {
            y[i] = act_apply(has_bias ? x[i] + bias[j] : x[i], act);
            if (++j == n) j = 0;
        }
    }
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
