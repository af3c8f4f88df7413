#include "common.h"
/* Softmax over contiguous blocks ("heads") of length `block`: one work-item per block. */

__kernel void softmax_fwd(__global const float* x, __global float* y, const int block) {
    const int base = get_global_id(0) * block;
    softmax_block(x + base, y + base, block);
}

/* dx += y * (dy - sum(dy * y)) per block */
__kernel void softmax_bwd(__global const float* y, __global const float* dy,
                          __global float* dx, const int block) {
    const int base = get_global_id(0) * block;
    float s = 0.0f;
    for (int j = 0; j < block; ++j) s += dy[base + j] * y[base + j];
    for (int j = 0; j < block; ++j) dx[base + j] += y[base + j] * (dy[base + j] - s);
}
