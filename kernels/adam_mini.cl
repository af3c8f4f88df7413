/* Adam-mini over a model's flat parameter buffer (nn/optim/adam_mini.py).

   w, g, exp_avg: flat float32, ParameterStore layout (tensors at aligned offsets, padding is
   never touched). exp_avg_sq: one float per block, the tensors' blocks back to back. A tensor
   of numel elements is split into n_blocks = numel / B contiguous blocks of B elements; block
   b shares v_b = b2 v_b + (1-b2) mean_{i in b}(g_i^2). Each kernel reduces a block and
   updates it in the same work-group, so g is read from memory once.
   Update (AdamW-like): w -= lr_wd w (lr_wd = lr lambda); m = b1 m + (1-b1) g;
   w -= step_size m / (sqrt(v_b) / bc2_sqrt + eps), step_size = lr / (1 - b1^t).
   table: int rows of TABLE_COLS per tensor, group_start rising:
     [group_start, offset, B, n_blocks, v_offset, blocks_per_group, 0, 0]
   adam_mini_small: small B (on CPUs: every B); work-item j of group k handles block
   k * WG + j alone, in float8 chunks when B % 8 == 0.
   adam_mini_rows: large B; a work-group walks blocks_per_group consecutive blocks, its
   work-items striding along each block (float4 when B % 4 == 0), a tree reduction in local
   memory giving the block's mean. */
#include "optim_common.h"

#ifndef WG
#define WG 64
#endif
#define TABLE_COLS 8
/* vload8/vstore8 are out-of-line calls in pip PoCL 3.0; a block base here is a multiple of 8
   floats (tensor offsets are 32-float aligned and B % 8 == 0), so plain float8 accesses are
   aligned */
#define LOAD8(p) (*(__global const float8 *)(p))
#define STORE8(v, p) (*(__global float8 *)(p) = (v))

inline __global const int *find_row(__global const int *table, const int n_rows, const int grp) {
    int lo = 0, hi = n_rows - 1;  /* last row with group_start <= grp */
    while (lo < hi) {
        const int mid = (lo + hi + 1) >> 1;
        if (table[mid * TABLE_COLS] <= grp) lo = mid; else hi = mid - 1;
    }
    return table + lo * TABLE_COLS;
}

__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void adam_mini_small(__global float *w, __global const float *g, __global float *exp_avg,
                     __global float *exp_avg_sq, __global const int *table, const int n_rows,
                     const float one_minus_beta1, const float beta2,
                     const float one_minus_beta2, const float eps, const float lr_wd,
                     const float step_size, const float bc2_sqrt) {
    const int grp = get_group_id(0);
    __global const int *row = find_row(table, n_rows, grp);
    const int offset = row[1], bsize = row[2], n_blocks = row[3], v_offset = row[4];
    const int blk = (grp - row[0]) * WG + get_local_id(0);
    if (blk >= n_blocks) return;
    const int base = offset + blk * bsize;
    float s = 0.0f;
    if ((bsize & 7) == 0) {  /* float8 chunks: independent lanes, no serial add chain */
        float8 s8 = (float8)(0.0f);
        for (int k = 0; k < bsize; k += 8) {
            const float8 x = LOAD8(g + base + k);
            s8 += x * x;
        }
        const float4 s4 = s8.lo + s8.hi;
        s = (s4.x + s4.y) + (s4.z + s4.w);
    } else {
        for (int k = 0; k < bsize; ++k) {
            const float x = g[base + k];
            s += x * x;
        }
    }
    const float v = beta2 * exp_avg_sq[v_offset + blk] + one_minus_beta2 * (s / bsize);
    exp_avg_sq[v_offset + blk] = v;
    const float h = sqrt(v) / bc2_sqrt + eps;
    if ((bsize & 7) == 0) {
        for (int k = 0; k < bsize; k += 8) {
            const int i = base + k;
            const float8 m0 = LOAD8(exp_avg + i);
            const float8 m = m0 + one_minus_beta1 * (LOAD8(g + i) - m0);
            STORE8(m, exp_avg + i);
            float8 wi = LOAD8(w + i);
            wi -= lr_wd * wi;
            STORE8(wi - step_size * (h != 0.0f ? m / h : (float8)(0.0f)), w + i);
        }
    } else {
        for (int k = 0; k < bsize; ++k) {
            const int i = base + k;
            const float m = ema1(exp_avg[i], g[i], one_minus_beta1);
            exp_avg[i] = m;
            float wi = w[i];
            wi -= lr_wd * wi;  /* same operation order as adam_step */
            w[i] = wi - step_size * safe_div1(m, h);
        }
    }
}

__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void adam_mini_rows(__global float *w, __global const float *g, __global float *exp_avg,
                    __global float *exp_avg_sq, __global const int *table, const int n_rows,
                    const float one_minus_beta1, const float beta2,
                    const float one_minus_beta2, const float eps, const float lr_wd,
                    const float step_size, const float bc2_sqrt) {
    __local float part[WG];
    const int grp = get_group_id(0);
    const int lid = get_local_id(0);
    __global const int *row = find_row(table, n_rows, grp);
    const int offset = row[1], bsize = row[2], n_blocks = row[3], v_offset = row[4];
    const int first = (grp - row[0]) * row[5];
    const int last = min(first + row[5], n_blocks);
    const int vec4 = (bsize & 3) == 0;
    for (int blk = first; blk < last; ++blk) {  /* the same trip count for the whole group */
        const int base = offset + blk * bsize;
        float s = 0.0f;
        if (vec4) {
            float4 s4 = (float4)(0.0f);
            for (int k = 4 * lid; k < bsize; k += 4 * WG) {
                const float4 x = vload4(0, g + base + k);
                s4 += x * x;
            }
            s = (s4.x + s4.y) + (s4.z + s4.w);
        } else {
            for (int k = lid; k < bsize; k += WG) {
                const float x = g[base + k];
                s += x * x;
            }
        }
        part[lid] = s;
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int h = WG / 2; h > 0; h >>= 1) {
            if (lid < h) part[lid] += part[lid + h];
            barrier(CLK_LOCAL_MEM_FENCE);
        }
        const float v = beta2 * exp_avg_sq[v_offset + blk] + one_minus_beta2 * (part[0] / bsize);
        barrier(CLK_GLOBAL_MEM_FENCE | CLK_LOCAL_MEM_FENCE);  /* all read v_b and part[0] */
        if (lid == 0) exp_avg_sq[v_offset + blk] = v;
        const float h = sqrt(v) / bc2_sqrt + eps;
        if (vec4) {
            for (int k = 4 * lid; k < bsize; k += 4 * WG) {
                const int i = base + k;
                const float4 m0 = vload4(0, exp_avg + i);
                const float4 m = m0 + one_minus_beta1 * (vload4(0, g + i) - m0);
                vstore4(m, 0, exp_avg + i);
                float4 wi = vload4(0, w + i);
                wi -= lr_wd * wi;
                vstore4(wi - step_size * (h != 0.0f ? m / h : (float4)(0.0f)), 0, w + i);
            }
        } else {
            for (int k = lid; k < bsize; k += WG) {
                const int i = base + k;
                const float m = ema1(exp_avg[i], g[i], one_minus_beta1);
                exp_avg[i] = m;
                float wi = w[i];
                wi -= lr_wd * wi;
                w[i] = wi - step_size * safe_div1(m, h);
            }
        }
    }
}
