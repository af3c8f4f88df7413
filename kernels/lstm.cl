/* Fused LSTM cell (torch gate order i, f, g, o) for one time step of a sequence.
 * Layouts, all row-major with the unit index j contiguous:
 *   xw, gates, dg_all : (T*B, 4H), row t*B + b, columns [i | f | g | o] blocks of H
 *   hh, dg_step       : (B, 4H)  one step's recurrent projection / gate gradient
 *   c_all, y, hprev   : (T*B, H) cell states, hidden outputs, h_{t-1} per step (slot 0 = h0)
 *   c_prev, h_out, dh_rec, dc : (B, H) (c_prev read at element offset c_prev_off)
 * Launch: global (H, B); dimension 0 = unit j. Backward kernels write (do not accumulate)
 * their scratch outputs; the op accumulates into parameter/input gradients afterwards. */
#include "common.h"
#include "lstm_cell.h"

/* i,f,o = sigmoid, g = tanh of xw[t] (+ hh); c = f*c_prev + i*g; h = o*tanh(c).
 * has_hh == 0: h_{t-1} = 0 (no recurrent term); has_c == 0: c_{t-1} = 0.
 * store != 0 keeps the activated gates and h_{t-1} of the next step for backward. */
__kernel void lstm_cell_fwd(__global const float* xw, __global const float* hh,
                            const int has_hh, __global const float* c_prev,
                            const int c_prev_off, const int has_c, __global float* gates,
                            __global float* c_all, __global float* y, __global float* h_out,
                            __global float* hprev, const int t, const int steps,
                            const int store) {
    const int j = get_global_id(0), b = get_global_id(1);
    const int H = get_global_size(0), B = get_global_size(1);
    const int r = t * B + b;
    __global const float* z = xw + (size_t)r * 4 * H;
    float zi = z[j], zf = z[H + j], zg = z[2 * H + j], zo = z[3 * H + j];
    if (has_hh) {
        __global const float* q = hh + (size_t)b * 4 * H;
        zi += q[j]; zf += q[H + j]; zg += q[2 * H + j]; zo += q[3 * H + j];
    }
    const float cp = has_c ? c_prev[c_prev_off + b * H + j] : 0.0f;
    float i, f, g, o, c, h;
    lstm_cell_math(zi, zf, zg, zo, cp, &i, &f, &g, &o, &c, &h);
    c_all[(size_t)r * H + j] = c;
    y[(size_t)r * H + j] = h;
    h_out[b * H + j] = h;
    if (store) {
        __global float* s = gates + (size_t)r * 4 * H;
        s[j] = i; s[H + j] = f; s[2 * H + j] = g; s[3 * H + j] = o;
        if (t + 1 < steps) hprev[(size_t)(r + B) * H + j] = h;
    }
}

/* Backward of step t. dh = dy[t] + dh_rec (from step t+1, if has_rec); dc (in: from step
 * t+1, out: to step t-1) is updated in place. Writes the pre-activation gate gradients to
 * dg_step (B, 4H) and to row block t of dg_all. */
__kernel void lstm_cell_bwd(__global const float* dy, __global const float* dh_rec,
                            const int has_rec, __global const float* gates,
                            __global const float* c_all, __global const float* c_prev,
                            const int c_prev_off, const int has_c, __global float* dc,
                            __global float* dg_step, __global float* dg_all, const int t) {
    const int j = get_global_id(0), b = get_global_id(1);
    const int H = get_global_size(0), B = get_global_size(1);
    const int r = t * B + b;
    float dh = dy[(size_t)r * H + j];
    if (has_rec) dh += dh_rec[b * H + j];
    __global const float* s = gates + (size_t)r * 4 * H;
    const float i = s[j], f = s[H + j], g = s[2 * H + j], o = s[3 * H + j];
    const float cp = has_c ? c_prev[c_prev_off + b * H + j] : 0.0f;
    float di, df, dg, dov, dcp;
    lstm_cell_grad(dh, dc[b * H + j], i, f, g, o, c_all[(size_t)r * H + j], cp, &di, &df, &dg,
                   &dov, &dcp);
    dc[b * H + j] = dcp;
    __global float* d1 = dg_step + (size_t)b * 4 * H;
    __global float* d2 = dg_all + (size_t)r * 4 * H;
    d1[j] = di; d1[H + j] = df; d1[2 * H + j] = dg; d1[3 * H + j] = dov;
    d2[j] = di; d2[H + j] = df; d2[2 * H + j] = dg; d2[3 * H + j] = dov;
}
