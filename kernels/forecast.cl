/* Forecast head kernels: RevIN de-normalisation by an index map, and the L1 norm of complex
 * spectra for the FreDF loss. Backward kernels ACCUMULATE into their outputs. */
#define WG 256

/* gamma with |gamma| >= min_gamma, sign kept (gamma = 0 counts as positive) */
inline float safe_gamma(const float g, const float min_gamma) {
    return fabs(g) >= min_gamma ? g : copysign(min_gamma, g);
}

/* y[b, j] = (x[b, j] - beta[k]) * sqrt(var[k] + eps) / gamma[k] + mean[k], k = idx[j].
 * x, y (B, n_out); gamma, beta, mean, var (n_src,); idx (n_out,) int. global (n_out, B) */
__kernel void revin_fwd(__global const float* x, __global const float* gamma,
                        __global const float* beta, __global const float* mean,
                        __global const float* var, __global const int* idx, __global float* y,
                        const float eps, const float min_gamma) {
    const int j = get_global_id(0), b = get_global_id(1), n = get_global_size(0);
    const int k = idx[j];
    const float s = sqrt(var[k] + eps) / safe_gamma(gamma[k], min_gamma);
    y[b * n + j] = (x[b * n + j] - beta[k]) * s + mean[k];
}

/* dx += dy * sqrt(var[k] + eps) / gamma[k]. global (n_out, B) */
__kernel void revin_bwd_x(__global const float* dy, __global const float* gamma,
                          __global const float* var, __global const int* idx, __global float* dx,
                          const float eps, const float min_gamma) {
    const int j = get_global_id(0), b = get_global_id(1), n = get_global_size(0);
    const int k = idx[j];
    dx[b * n + j] += dy[b * n + j] * sqrt(var[k] + eps) / safe_gamma(gamma[k], min_gamma);
}

/* Per source element k, over the outputs j with idx[j] = k (order[starts[k] .. starts[k+1]])
 * and the batch: dbeta[k] -= sum dy * s, dgamma[k] -= sum dy * (x - beta) * s / gamma
 * (zero while |gamma| < min_gamma: the clamp is flat there). global (n_src) */
__kernel void revin_bwd_params(__global const float* dy, __global const float* x,
                               __global const float* gamma, __global const float* beta,
                               __global const float* var, __global const int* order,
                               __global const int* starts, __global float* dgamma,
                               __global float* dbeta, const int B, const int n_out,
                               const float eps, const float min_gamma) {
    const int k = get_global_id(0);
    const float g = safe_gamma(gamma[k], min_gamma);
    const float s = sqrt(var[k] + eps) / g;
    float sb = 0.0f, sg = 0.0f;
    for (int e = starts[k]; e < starts[k + 1]; ++e) {
        const int j = order[e];
        for (int b = 0; b < B; ++b) {
            const float u = dy[b * n_out + j];
            sb += u;
            sg += u * (x[b * n_out + j] - beta[k]);
        }
    }
    dbeta[k] -= sb * s;
    if (fabs(gamma[k]) >= min_gamma) dgamma[k] -= sg * s / g;
}

/* Complex pairs (re, im) of spectra stored as G groups of (2, K, V): re at g*2KV + k*V + v,
 * im at re + K*V. out[0] = sum sqrt(re^2 + im^2) / (G*K*V); launch global = local = WG */
__kernel void cabs_mean_fwd(__global const float* s, __global float* out, const int G,
                            const int K, const int V) {
    __local float tmp[WG];
    const int l = get_local_id(0), n = G * K * V;
    float acc = 0.0f;
    for (int p = l; p < n; p += WG) {
        const int g = p / (K * V), kv = p % (K * V);
        const float re = s[g * 2 * K * V + kv], im = s[g * 2 * K * V + K * V + kv];
        acc += sqrt(re * re + im * im);
    }
    tmp[l] = acc;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int stride = WG / 2; stride > 0; stride >>= 1) {
        if (l < stride) tmp[l] += tmp[l + stride];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (l == 0) out[0] = tmp[0] / (float)n;
}

/* d(re, im) += dout * (re, im) / |z| / (G*K*V); 0 at z = 0 (subgradient). global (G*K*V) */
__kernel void cabs_mean_bwd(__global const float* s, __global const float* dout,
                            __global float* ds, const int K, const int V) {
    const int p = get_global_id(0), n = get_global_size(0);
    const int g = p / (K * V), kv = p % (K * V);
    const int ir = g * 2 * K * V + kv, ii = ir + K * V;
    const float re = s[ir], im = s[ii];
    const float m = sqrt(re * re + im * im);
    if (m > 0.0f) {
        const float c = dout[0] / (m * (float)n);
        ds[ir] += c * re;
        ds[ii] += c * im;
    }
}
