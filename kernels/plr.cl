/* Piecewise linear representation (PLR) of each variable's series, one work-item per
 * (variable, sample): global (V, B).
 *
 * Element t of variable v of sample b is at b*L*V + t*ts + v*vs (ts, vs: time and variable
 * strides, e.g. ts = V, vs = 1 for a bar-major (L, V) sample). The output has the input's
 * layout; segment s writes (slope, intercept, length / L) at times 3s, 3s+1, 3s+2 of its
 * variable, the rest is zero. ttp (B, V, S+1) int: turning-point times; nseg (B, V) int.
 * Backward ACCUMULATES into dx. */

#define X(t) x[base + (t) * ts]

/* Turning points by the threshold zigzag: point 0, every extreme the series then leaves by
 * at least min_step in the opposite direction, and point L-1; at most S+1 points (S segments).
 * Each segment [t0, t1] (both ends included, n = t1 - t0 + 1 points, local p = t - t0) gets
 * the least-squares line y = intercept + slope * p. */
__kernel void plr_fwd(__global const float* x, __global float* out, __global int* ttp,
                      __global int* nseg, const int L, const int S, const int ts, const int vs,
                      const float min_step) {
    const int v = get_global_id(0), b = get_global_id(1), V = get_global_size(0);
    const int base = b * L * V + v * vs;
    __global int* tp = ttp + (b * V + v) * (S + 1);
    for (int t = 0; t < L; ++t) out[base + t * ts] = 0.0f;
    int n = 0;
    tp[n++] = 0;
    int dir = 0, hi = 0, lo = 0, ext = 0;
    for (int i = 1; i < L && n < S + 1; ++i) {
        const float y = X(i);
        if (dir == 0) {
            if (y > X(hi)) hi = i;
            if (y < X(lo)) lo = i;
            if (X(hi) - X(lo) >= min_step) {
                const int start = lo < hi ? lo : hi;
                if (start > 0) tp[n++] = start;
                dir = lo < hi ? 1 : -1;
                ext = lo < hi ? hi : lo;
            }
        } else if (dir > 0) {
            if (y >= X(ext)) {
                ext = i;
            } else if (X(ext) - y >= min_step) {
                tp[n++] = ext;
                dir = -1;
                ext = i;
            }
        } else {
            if (y <= X(ext)) {
                ext = i;
            } else if (y - X(ext) >= min_step) {
                tp[n++] = ext;
                dir = 1;
                ext = i;
            }
        }
    }
    if (n < S + 1) tp[n++] = L - 1;
    nseg[b * V + v] = n - 1;
    for (int s = 0; s < n - 1; ++s) {
        const int t0 = tp[s], cnt = tp[s + 1] - t0 + 1;
        const float pm = 0.5f * (float)(cnt - 1);
        float sy = 0.0f, spy = 0.0f;
        for (int p = 0; p < cnt; ++p) {
            const float yv = X(t0 + p);
            sy += yv;
            spy += ((float)p - pm) * yv;
        }
        const float sxx = (float)cnt * (float)(cnt * cnt - 1) / 12.0f;
        const float slope = spy / sxx;
        out[base + 3 * s * ts] = slope;
        out[base + (3 * s + 1) * ts] = sy / (float)cnt - slope * pm;
        out[base + (3 * s + 2) * ts] = (float)(cnt - 1) / (float)L;
    }
}

/* With the segmentation fixed, slope and intercept are linear in the segment's values:
 * slope = sum_p w_p y_p, w_p = (p - pm) / sxx; intercept = sum_p (1/n - pm w_p) y_p.
 * The length output has no gradient. global (V, B) */
__kernel void plr_bwd(__global const float* dout, __global const int* ttp,
                      __global const int* nseg, __global float* dx, const int L, const int S,
                      const int ts, const int vs) {
    const int v = get_global_id(0), b = get_global_id(1), V = get_global_size(0);
    const int base = b * L * V + v * vs;
    __global const int* tp = ttp + (b * V + v) * (S + 1);
    const int ns = nseg[b * V + v];
    for (int s = 0; s < ns; ++s) {
        const int t0 = tp[s], cnt = tp[s + 1] - t0 + 1;
        const float pm = 0.5f * (float)(cnt - 1);
        const float sxx = (float)cnt * (float)(cnt * cnt - 1) / 12.0f;
        const float ds = dout[base + 3 * s * ts], di = dout[base + (3 * s + 1) * ts];
        for (int p = 0; p < cnt; ++p) {
            const float w = ((float)p - pm) / sxx;
            dx[base + (t0 + p) * ts] += ds * w + di * (1.0f / (float)cnt - pm * w);
        }
    }
}
