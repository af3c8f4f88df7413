/* Shared helpers for neurofx kernels. Indices are int: buffers stay below 2^31 elements. */
#ifndef NEUROFX_COMMON_H
#define NEUROFX_COMMON_H

/* fmax / fmin are out-of-line calls in pip PoCL 3.0 (like min, max, fma, vloadN, vstoreN;
 * see matmul.cl): plain comparisons instead (same values for non-NaN inputs). */
#define FMAX(a, b) ((a) > (b) ? (a) : (b))
#define FMIN(a, b) ((a) < (b) ? (a) : (b))

/* Activation codes, the same numbers as nn/ops/elementwise.py ACTIVATIONS. */
#define ACT_NONE 0
#define ACT_TANH 1
#define ACT_SIGMOID 2
#define ACT_RELU 3
#define ACT_LEAKY_RELU 4
#define ACT_SOFTPLUS 5

inline float act_apply(const float x, const int a) {
    switch (a) {
        case ACT_TANH: return tanh(x);
        case ACT_SIGMOID: return 1.0f / (1.0f + exp(-x));
        case ACT_RELU: return x > 0.0f ? x : 0.0f;  /* not fmax: out of line in pip PoCL */
        case ACT_LEAKY_RELU: return x > 0.0f ? x : 0.01f * x;
        case ACT_SOFTPLUS: return x > 20.0f ? x : log1p(exp(x));
        default: return x;
    }
}

/* derivative dy/dx, from the input x and the output y */
inline float act_grad(const float x, const float y, const int a) {
    switch (a) {
        case ACT_TANH: return 1.0f - y * y;
        case ACT_SIGMOID: return y * (1.0f - y);
        case ACT_RELU: return x > 0.0f ? 1.0f : 0.0f;
        case ACT_LEAKY_RELU: return x > 0.0f ? 1.0f : 0.01f;
        case ACT_SOFTPLUS: return 1.0f / (1.0f + exp(-x));
        default: return 1.0f;
    }
}

/* y[0..n) = softmax(x[0..n)) (y may be x): max, exp(x - max) and their sum, scale. */
inline void softmax_block(__global const float* x, __global float* y, const int n) {
    float m = -INFINITY;
    for (int j = 0; j < n; ++j) m = FMAX(m, x[j]);
    float s = 0.0f;
    for (int j = 0; j < n; ++j) {
        const float e = exp(x[j] - m);
        y[j] = e;
        s += e;
    }
    const float inv = 1.0f / s;
    for (int j = 0; j < n; ++j) y[j] *= inv;
}

/* Counter-based uniform in (0, 1): a 32-bit integer hash of (seed, counter, index). */
inline uint hash_u32(uint x) {
    x ^= x >> 16; x *= 0x7feb352dU; x ^= x >> 15; x *= 0x846ca68bU; x ^= x >> 16;
    return x;
}
inline float uniform01(const uint seed, const uint counter, const uint i) {
    uint h = hash_u32(seed ^ hash_u32(counter * 0x9E3779B9U ^ hash_u32(i + 0x632BE5ABU)));
    return ((float)(h >> 8) + 0.5f) * (1.0f / 16777216.0f);
}
#endif
