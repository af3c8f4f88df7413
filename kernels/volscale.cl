/* Per-row volatility scaling (forward only: the scaled path has no trainable input).
 * Built-ins are avoided (pip PoCL calls them out of line): |v| is written as a select. */

/* s[b] = mean over the row's groups i of (|x[b, i*nv+hi]| + |x[b, i*nv+lo]|) / 2 + eps;
 * xs[b, j] = x[b, j] / s[b] where cmask[j % nv] != 0, else x[b, j].
 * x, xs (B, groups*nv); cmask (nv,); s (B,). global (B) */
__kernel void vol_scale(__global const float* x, __global const float* cmask,
                        __global float* xs, __global float* s, const int groups, const int nv,
                        const int hi, const int lo, const float eps) {
    const int b = get_global_id(0), n = groups * nv;
    __global const float* row = x + b * n;
    float acc = 0.0f;
    for (int i = 0; i < groups; ++i) {
        const float h = row[i * nv + hi], l = row[i * nv + lo];
        acc += (h < 0.0f ? -h : h) + (l < 0.0f ? -l : l);
    }
    const float sc = acc / (2.0f * (float)groups) + eps;
    s[b] = sc;
    const float inv = 1.0f / sc;
    for (int j = 0; j < n; ++j)
        xs[b * n + j] = cmask[j % nv] != 0.0f ? row[j] * inv : row[j];
}

/* y[b, j] = r[b, j] * (tmask[j] != 0 ? s[b] : 1) * gain[j] + offset[j].
 * r, y (B, n); s (B,); tmask, gain, offset (n,). global (n, B) */
__kernel void vol_unscale(__global const float* r, __global const float* s,
                          __global const float* tmask, __global const float* gain,
                          __global const float* offset, __global float* y) {
    const int j = get_global_id(0), b = get_global_id(1), n = get_global_size(0);
    const float f = tmask[j] != 0.0f ? s[b] : 1.0f;
    y[b * n + j] = r[b * n + j] * f * gain[j] + offset[j];
}
