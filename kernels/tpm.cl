/* The TPM layer's sequence mode (nn/ops/tpm.py): the element-wise parts of one time step t.
 * Steps are row blocks of buffers over all T*B rows: row r = t*B + b. Layouts, row-major:
 *   "cur"  (T*B, W): row t*B + b holds step t's value (scores, gates, c_t, h_t, ...);
 *   "prev" (T*B, H): row t*B + b holds the state of step t-1 (block 0: the zero start), so a
 *          product of the previous state and a product into step t use the same row index.
 * Backward kernels write (never accumulate) their outputs; the op accumulates the parents'
 * gradients once after the last step. */
#include "common.h"
#include "lstm_cell.h"

/* Element-wise work runs 8 wide: vector tanh / exp are several times faster than 8 scalar
 * calls in PoCL. Moves through 4-byte-aligned float8 pointers (vload8 / vstore8 are
 * out-of-line calls in pip PoCL, see matmul.cl); a row's last len % 8 values take the scalar
 * path. Vector and scalar math may differ in the last bit, always the same for a given
 * position. */
typedef float8 __attribute__((aligned(4))) float8u;
#define LD8(p) (*(__global const float8u*)(p))
#define ST8(v, p) (*(__global float8u*)(p) = (v))
#define LD1(p) (*(p))
#define ST1(v, p) (*(p) = (v))

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
 * global (ls, heads, B), local (ls, 1, 1); its work-items take the element-wise parts (tanh,
 * exp: the cost) 8 values at a time, the first one the tail, the max and the sum (in element
 * order, as softmax_fwd). ATTN_PHASE runs one element-wise part OP over the segment. */
#define ATTN_TANH(T, LD, ST, j) ST(tanh(LD(s + base + j)), s + base + j)
#define ATTN_EXP(T, LD, ST, j) ST(exp(LD(s + base + j) - m), w + base + j)
#define ATTN_SCALE(T, LD, ST, j)                                                               \
    {                                                                                        \
        const T wj = LD(w + base + j) * inv;                                                 \
        ST(wj, w + base + j);                                                                \
        ST(wj * LD(v + base + j), a + base + j);                                             \
    }
#define ATTN_PHASE(OP)                                                                         \
    for (int j = 8 * lid; j < vec_end; j += 8 * ls) OP(float8, LD8, ST8, j);                 \
    if (lid == 0)                                                                            \
        for (int j = vec_end; j < len; ++j) OP(float, LD1, ST1, j);                          \
    barrier(CLK_GLOBAL_MEM_FENCE)

__kernel void tpm_attn_fwd(__global float* s, __global const float* v, __global float* w,
                           __global float* a, const int t, const int len) {
    __local float red[2];
    const int lid = get_local_id(0), ls = get_local_size(0);
    const int head = get_group_id(1), b = get_group_id(2);
    const int heads = get_num_groups(1), B = get_num_groups(2);
    const size_t base = ((size_t)(t * B + b) * heads + head) * len;
    const int vec_end = len - len % 8;
    ATTN_PHASE(ATTN_TANH);
    if (lid == 0) {
        float r = -INFINITY;
        for (int j = 0; j < len; ++j) r = FMAX(r, s[base + j]);
        red[0] = r;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    const float m = red[0];
    ATTN_PHASE(ATTN_EXP);
    if (lid == 0) {
        float r = 0.0f;
        for (int j = 0; j < len; ++j) r += w[base + j];
        red[1] = 1.0f / r;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    const float inv = red[1];
    ATTN_PHASE(ATTN_SCALE);
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
 * t = 0). Units j0 .. j0+7 per work-item: global (ceil(H / 8), B). */
#define CELL_FWD(T, LD, ST, j)                                                                 \
    {                                                                                        \
        const T cp = t > 0 ? LD(c_cur + (r - B) * H + j) : (T)(0.0f);                        \
        T i, f, g, o, c, h;                                                                  \
        LSTM_CELL_MATH(LD(zr + j), LD(zr + H + j), LD(zr + 2 * H + j), LD(zr + 3 * H + j),   \
                       cp, i, f, g, o, c, h);                                                \
        ST(i, s + j); ST(f, s + H + j); ST(g, s + 2 * H + j); ST(o, s + 3 * H + j);          \
        ST(c, c_cur + r * H + j);                                                            \
        ST(h, h_cur + r * H + j);                                                            \
        if (t + 1 < steps) {                                                                 \
            ST(c, c_prev + (r + B) * H + j);                                                 \
            ST(h, h_prev + (r + B) * H + j);                                                 \
        }                                                                                    \
    }

__kernel void tpm_cell_fwd(__global const float* z, __global float* gates, __global float* c_cur,
                           __global float* h_cur, __global float* c_prev,
                           __global float* h_prev, const int t, const int steps,
                           const int H) {
    const int j0 = 8 * get_global_id(0), b = get_global_id(1);
    const int B = get_global_size(1);
    const size_t r = (size_t)t * B + b;
    __global const float* zr = z + r * 4 * H;
    __global float* s = gates + r * 4 * H;
    if (j0 + 8 <= H) CELL_FWD(float8, LD8, ST8, j0)
    else
        for (int j = j0; j < H; ++j) CELL_FWD(float, LD1, ST1, j)
}

/* Backward of the cell at step t. dL/dh_t = dh_cur (row block t, "cur") + dh_next (row block
 * t+1 of a "prev" buffer: what step t+1 sent back through its products of h_t); dL/dc_t =
 * row block t+1 of dc (what step t+1 sent: its cell's dc * f plus its products of c_t).
 * Writes dz (T*B, 4H) row block t and, for t > 0, row block t of dc: dL/dc_{t-1} through
 * this cell (dc * f; the op then adds this step's products of c_{t-1}).
 * Units j0 .. j0+7 per work-item: global (ceil(H / 8), B). */
#define CELL_BWD(T, LD, ST, j)                                                                 \
    {                                                                                        \
        T dh = LD(dh_cur + r * H + j);                                                       \
        if (!last) dh += LD(dh_next + (r + B) * H + j);                                      \
        const T dcn = last ? (T)(0.0f) : LD(dc + (r + B) * H + j);                           \
        const T cp = t > 0 ? LD(c_cur + (r - B) * H + j) : (T)(0.0f);                        \
        T di, df, dg, dov, dcp;                                                              \
        LSTM_CELL_GRAD(T, dh, dcn, LD(s + j), LD(s + H + j), LD(s + 2 * H + j),              \
                       LD(s + 3 * H + j), LD(c_cur + r * H + j), cp, di, df, dg, dov, dcp);  \
        ST(di, d + j); ST(df, d + H + j); ST(dg, d + 2 * H + j); ST(dov, d + 3 * H + j);     \
        if (t > 0) ST(dcp, dc + r * H + j);                                                  \
    }

__kernel void tpm_cell_bwd(__global const float* dh_cur, __global const float* dh_next,
                           __global const float* gates, __global const float* c_cur,
                           __global float* dc, __global float* dz, const int t,
                           const int steps, const int H) {
    const int j0 = 8 * get_global_id(0), b = get_global_id(1);
    const int B = get_global_size(1);
    const size_t r = (size_t)t * B + b;
    const int last = t + 1 == steps;
    __global const float* s = gates + r * 4 * H;
    __global float* d = dz + r * 4 * H;
    if (j0 + 8 <= H) CELL_BWD(float8, LD8, ST8, j0)
    else
        for (int j = j0; j < H; ++j) CELL_BWD(float, LD1, ST1, j)
}
