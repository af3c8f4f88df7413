/* Reductions to one value with a single work-group of WG threads (tree in local memory),
 * and their backward broadcasts. */
#define WG 256

inline float wg_sum(float s, __local float* tmp) {
    const int l = get_local_id(0);
    tmp[l] = s;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int stride = WG / 2; stride > 0; stride >>= 1) {
        if (l < stride) tmp[l] += tmp[l + stride];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    return tmp[0];
}

/* out[0] = scale * sum(x); launch global = local = WG */
__kernel void sum_fwd(__global const float* x, __global float* out, const int n,
                      const float scale) {
    __local float tmp[WG];
    float s = 0.0f;
    for (int i = get_local_id(0); i < n; i += WG) s += x[i];
    s = wg_sum(s, tmp);
    if (get_local_id(0) == 0) out[0] = scale * s;
}

/* dx[i] += scale * dout[0] */
__kernel void sum_bwd(__global const float* dout, __global float* dx, const float scale) {
    dx[get_global_id(0)] += scale * dout[0];
}

/* out[0] = sum((p - t)^2) / n; launch global = local = WG */
__kernel void mse_fwd(__global const float* p, __global const float* t, __global float* out,
                      const int n) {
    __local float tmp[WG];
    float s = 0.0f;
    for (int i = get_local_id(0); i < n; i += WG) {
        const float d = p[i] - t[i];
        s += d * d;
    }
    s = wg_sum(s, tmp);
    if (get_local_id(0) == 0) out[0] = s / (float)n;
}

/* dp[i] += dout[0] * 2 (p - t) / n */
__kernel void mse_bwd(__global const float* p, __global const float* t,
                      __global const float* dout, __global float* dp, const int n) {
    const int i = get_global_id(0);
    dp[i] += dout[0] * 2.0f * (p[i] - t[i]) / (float)n;
}
