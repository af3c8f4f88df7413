/* The TPM layer's sequence mode (nn/ops/tpm.py): the element-wise parts of one time step t.
 * Steps are row blocks of buffers over all T*B rows: row r = t*B + b. Layouts, row-major:
 *   "cur"  (T*B, W): row t*B + b holds step t's value (scores, gates, c_t, h_t, ...);
 *   "prev" (T*B, H): row t*B + b holds the state of step t-1 (block 0: the zero start), so a
 *          product of the previous state and a product into step t use the same row index.
 * Backward kernels write (never accumulate) their outputs; the op accumulates the parents'
 * gradients once after the last step. */
#include "common.h"
#include "lstm_cell.h"

/* out (rows, n) = bias (n,) on every row; global (n, rows). */
__kernel void tpm_bias_rows(__global const float* bias, __global float* out) {
    const int j = get_global_id(0), r = get_global_id(1);
    out[(size_t)r * get_global_size(0) + j] = bias[j];
}

/* Attention weights of step t over `heads` contiguous segments of `len` values per row:
 *   s <- u = tanh(s) (in place, kept for the backward), w = softmax(u) per segment,
 *   a = w * v.
 * s, w, a, v: (T*B, heads*len) "cur". The feature attention has heads = variables, len = bars;
 * the decoder's attention over the units has heads = 1, len = H. One work-group per segment:
 * global (ls, heads, B), local (ls, 1, 1); its ls work-items take the element-wise parts
 * (tanh, exp: the cost), the first one the max and the sum, in element order: the values of
 * act_fwd (tanh), softmax_fwd and mul_fwd. */
__kernel void tpm_attn_fwd(__global float* s, __global const float* v, __global float* w,
                           __global float* a, const int t, const int len) {
    __local float red[2];
    const int lid = get_local_id(0), ls = get_local_size(0);
    const int head = get_group_id(1), b = get_group_id(2);
    const int heads = get_num_groups(1), B = get_num_groups(2);
    const size_t base = ((size_t)(t * B + b) * heads + head) * len;
    for (int j = lid; j < len; j += ls) s[base + j] = tanh(s[base + j]);
    barrier(CLK_GLOBAL_MEM_FENCE);
    if (lid == 0) {
        float m = -INFINITY;
        for (int j = 0; j < len; ++j) m = FMAX(m, s[base + j]);
        red[0] = m;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    const float m = red[0];
    for (int j = lid; j < len; j += ls) w[base + j] = exp(s[base + j] - m);
    barrier(CLK_GLOBAL_MEM_FENCE);
    if (lid == 0) {
        float sum = 0.0f;
        for (int j = 0; j < len; ++j) sum += w[base + j];
        red[1] = 1.0f / sum;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    const float inv = red[1];
    for (int j = lid; j < len; j += ls) {
        const float wj = w[base + j] * inv;
        w[base + j] = wj;
        a[base + j] = wj * v[base + j];
    }
}

/* Backward of tpm_attn_fwd at step t: from da = dL/da, writes dv = da * w and
 * ds = dL/ds = (1 - u^2) * w * (dw - sum(dw * w)), dw = da * v. Layouts and global size as
 * the forward; u is the forward's tanh (kept in s). */
__kernel void tpm_attn_bwd(__global const float* da, __global const float* v,
                           __global const float* w, __global const float* u,
                           __global float* dv, __global float* ds, const int t, const int len) {
    const int head = get_global_id(0), b = get_global_id(1);
    const int heads = get_global_size(0), B = get_global_size(1);
    const size_t base = ((size_t)(t * B + b) * heads + head) * len;
    float dot = 0.0f;
    for (int j = 0; j < len; ++j) dot += da[base + j] * v[base + j] * w[base + j];
    for (int j = 0; j < len; ++j) {
        const float wj = w[base + j], uj = u[base + j];
        dv[base + j] = da[base + j] * wj;
        ds[base + j] = (1.0f - uj * uj) * (wj * (da[base + j] * v[base + j] - dot));
    }
}

/* LSTM cell of step t: z (T*B, 4H) "cur" pre-activations (bias and products included) ->
 * gates (T*B, 4H) activated, c_cur / h_cur (T*B, H) "cur", and c_t, h_t into row block t+1
 * of c_prev / h_prev ("prev", when t + 1 < steps). c_{t-1} = row block t-1 of c_cur (0 at
 * t = 0). global (H, B). */
__kernel void tpm_cell_fwd(__global const float* z, __global float* gates, __global float* c_cur,
                           __global float* h_cur, __global float* c_prev,
                           __global float* h_prev, const int t, const int steps) {
    const int j = get_global_id(0), b = get_global_id(1);
    const int H = get_global_size(0), B = get_global_size(1);
    const size_t r = (size_t)t * B + b;
    __global const float* zr = z + r * 4 * H;
    const float cp = t > 0 ? c_cur[(r - B) * H + j] : 0.0f;
    float i, f, g, o, c, h;
    lstm_cell_math(zr[j], zr[H + j], zr[2 * H + j], zr[3 * H + j], cp, &i, &f, &g, &o, &c, &h);
    __global float* s = gates + r * 4 * H;
    s[j] = i; s[H + j] = f; s[2 * H + j] = g; s[3 * H + j] = o;
    c_cur[r * H + j] = c;
    h_cur[r * H + j] = h;
    if (t + 1 < steps) {
        c_prev[(r + B) * H + j] = c;
        h_prev[(r + B) * H + j] = h;
    }
}

/* Backward of the cell at step t. dL/dh_t = dh_cur (row block t, "cur") + dh_next (row block
 * t+1 of a "prev" buffer: what step t+1 sent back through its products of h_t); dL/dc_t =
 * row block t+1 of dc (what step t+1 sent: its cell's dc * f plus its products of c_t).
 * Writes dz (T*B, 4H) row block t and, for t > 0, row block t of dc: dL/dc_{t-1} through
 * this cell (dc * f; the op then adds this step's products of c_{t-1}). global (H, B). */
__kernel void tpm_cell_bwd(__global const float* dh_cur, __global const float* dh_next,
                           __global const float* gates, __global const float* c_cur,
                           __global float* dc, __global float* dz, const int t,
                           const int steps) {
    const int j = get_global_id(0), b = get_global_id(1);
    const int H = get_global_size(0), B = get_global_size(1);
    const size_t r = (size_t)t * B + b;
    const int last = t + 1 == steps;
    float dh = dh_cur[r * H + j];
    if (!last) dh += dh_next[(r + B) * H + j];
    const float dcn = last ? 0.0f : dc[(r + B) * H + j];
    __global const float* s = gates + r * 4 * H;
    const float cp = t > 0 ? c_cur[(r - B) * H + j] : 0.0f;
    float di, df, dg, dov, dcp;
    lstm_cell_grad(dh, dcn, s[j], s[H + j], s[2 * H + j], s[3 * H + j], c_cur[r * H + j], cp,
                   &di, &df, &dg, &dov, &dcp);
    __global float* d = dz + r * 4 * H;
    d[j] = di; d[H + j] = df; d[2 * H + j] = dg; d[3 * H + j] = dov;
    if (t > 0) dc[r * H + j] = dcp;
}
