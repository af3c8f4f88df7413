/* Matrix multiply family: C = op(A) @ op(B) (+ C when accumulate), float32, row-major.
 *
 * Shapes: C is (m, n); op(A) is (m, k): A stored (m, k), or (k, m) for the "t" A variants;
 * op(B) is (k, n): B stored (k, n), or (n, k) for the "t" B variants. C must not overlap A or B.
 * Every kernel takes problem sizes as arguments (no rebuild per shape) and a batch index in
 * dimension 2: batch b reads A + b*stride_a, B + b*stride_b and writes C + b*stride_c.
 *
 * Tiles are build options (the host wrapper nn/gemm.py sets them):
 *   OP_TM x OP_VW   rows x columns per work-item of the outer-product kernels (B not transposed)
 *   DOT_TM x DOT_TN rows x columns per work-item of the dot kernel (B transposed), which
 *                   vectorises along k with DOT_VW-wide loads
 *   PK_TM x PK_VW   rows x columns per work-item of the packed kernel (the panel widths)
 * Two paths; the host picks one per shape (nn/gemm.py):
 * - direct (gemm_nn, gemm_tn, gemm_nt and their *_row variants) reads A and B where they lie;
 * - packed (gemm_pack_a, gemm_pack_b, then gemm_packed) first copies both operands into
 *   zero-padded panels (see the section below); every tt product takes it.
 * Work-item dimension 0 walks the columns of C (the contiguous dimension: PoCL vectorises
 * across work-items in dimension 0), dimension 1 the rows. Direct global size: (ceil(n / tile
 * columns), rows / tile rows, batch), rows starting at `row0`. The direct kernels need whole
 * row tiles (the host sends the remaining m % TM rows to the *_row kernels, one row per
 * work-item) but handle a partial last column tile themselves, without reading or writing
 * outside the matrices:
 *   outer product: the last tile loads the full-width window that ends at column n (it overlaps
 *     the previous tile) and stores only its own columns; when n < OP_VW, guarded scalar loads;
 *   dot: the rows of B past n are clamped to row n - 1 and their results are not stored.
 */

#ifndef OP_TM
#define OP_TM 8
#endif
#ifndef OP_VW
#define OP_VW 16
#endif
#ifndef DOT_TM
#define DOT_TM 4
#endif
#ifndef PK_TM
#define PK_TM 8
#endif
#ifndef PK_VW
#define PK_VW 16
#endif
#ifndef DOT_TN
#define DOT_TN 4
#endif
#ifndef DOT_VW
#define DOT_VW 16
#endif

/* inlined before unrolling, so each kernel unrolls its tile loops with its own constant tm */
#include "common.h"

#define FORCE_INLINE static inline __attribute__((always_inline))

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)

/* PoCL 3.0 compiles fma(), vloadN(), vstoreN(), min() and max() as out-of-line calls (seen in
 * the compiled kernels: one call per use in the inner loops), so this file avoids them: it
 * writes a * b + c, which the compiler contracts into one FMA instruction, reads and writes
 * vectors through pointers to 4-byte-aligned vector types (unaligned vector moves), and uses
 * the MIN / MAX macros. */
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

#if OP_VW == 1
#define OPVEC float
typedef float op_unaligned;
#else
#define OPVEC CAT(float, OP_VW)
typedef OPVEC __attribute__((aligned(4))) op_unaligned;
#endif
#define OP_LOAD(p) (*(__global const op_unaligned*)(p))
#define OP_STORE(v, p) (*(__global op_unaligned*)(p) = (v))
#define OP_STORE_PRIVATE(v, p) (*(op_unaligned*)(p) = (v))

#if PK_VW == 1
#define PKVEC float
typedef float pk_unaligned;
#else
#define PKVEC CAT(float, PK_VW)
typedef PKVEC __attribute__((aligned(4))) pk_unaligned;
#endif
#define PK_LOAD(p) (*(__global const pk_unaligned*)(p))
#define PK_STORE(v, p) (*(__global pk_unaligned*)(p) = (v))
#define PK_STORE_PRIVATE(v, p) (*(pk_unaligned*)(p) = (v))

#if DOT_VW == 1
#define DOTVEC float
typedef float dot_unaligned;
#else
#define DOTVEC CAT(float, DOT_VW)
typedef DOTVEC __attribute__((aligned(4))) dot_unaligned;
#endif
#define DOT_LOAD(p) (*(__global const dot_unaligned*)(p))

/* The horizontal sum of a DOTVEC. A float16 is never passed by value: without AVX-512 that
 * changes the call ABI and PoCL warns, so its halves are added before the call. */
#if DOT_VW == 16
#define HSUM_VW 8
#define hsum_dot(v) hsum_vec((v).lo + (v).hi)
#else
#define HSUM_VW DOT_VW
#define hsum_dot(v) hsum_vec(v)
#endif
#if HSUM_VW == 1
#define HSUMVEC float
#else
#define HSUMVEC CAT(float, HSUM_VW)
#endif

FORCE_INLINE float hsum_vec(HSUMVEC v)
{
#if HSUM_VW == 1
    return v;
#else
#if HSUM_VW >= 8
    float4 v4 = v.lo + v.hi;
#else
    HSUMVEC v4 = v;
#endif
#if HSUM_VW >= 4
    float2 v2 = v4.lo + v4.hi;
#else
    HSUMVEC v2 = v4;
#endif
    return v2.x + v2.y;
#endif
}

/* One step p of the outer-product tile: acc[r] += A(i0 + r, p) * (the B row window). */
#define OP_STEP(BV)                                                                              \
    {                                                                                            \
        const OPVEC bv = (BV);                                                                   \
        _Pragma("unroll") for (int r = 0; r < tm; r++)                                           \
            acc[r] = (OPVEC)(a[r * a_row]) * bv + acc[r];                                       \
        a += a_p;                                                                                \
        b += n;                                                                                  \
    }

/* Outer-product tile: tm rows of C from row i0, the OP_VW columns of the column tile j0.
 * B(p, j) = B[p*n + j] (contiguous along j); A(i, p) = a[i*a_row + p*a_p]: the kernels pass a
 * literal 1 for one of the strides, so after inlining the compiler sees which one is
 * contiguous. */
FORCE_INLINE void op_tile(const int tm, const int n, const int k, const int i0, const int j0,
                          __global const float* restrict a, const int a_row, const int a_p,
                          __global const float* restrict b, __global float* restrict c,
                          const int accumulate)
{
    /* loads B columns [js, js + OP_VW), stores columns [j0, MIN(j0 + OP_VW, n)) */
    const int js = (j0 + OP_VW <= n) ? j0 : MAX(n - OP_VW, 0);
    OPVEC acc[OP_TM];
    _Pragma("unroll") for (int r = 0; r < tm; r++) acc[r] = (OPVEC)(0.0f);
    a += (size_t)i0 * a_row;
    b += js;
    if (n >= OP_VW) {
        for (int p = 0; p < k; p++) OP_STEP(OP_LOAD(b))
    } else {
        /* the whole matrix is narrower than one vector: guarded scalar loads */
        float win[OP_VW];
        for (int p = 0; p < k; p++) {
            for (int q = 0; q < OP_VW; q++) win[q] = q < n ? b[q] : 0.0f;
            OP_STEP(*(op_unaligned*)win)
        }
    }
    c += (size_t)i0 * n + js;
    const int lo = j0 - js, hi = MIN(OP_VW, n - js);
    if (lo == 0 && hi == OP_VW) {
        _Pragma("unroll") for (int r = 0; r < tm; r++) {
            OPVEC v = acc[r];
            if (accumulate) v += OP_LOAD(c + (size_t)r * n);
            OP_STORE(v, c + (size_t)r * n);
        }
    } else {
        float win[OP_VW];
        for (int r = 0; r < tm; r++) {
            OP_STORE_PRIVATE(acc[r], win);
            __global float* cr = c + (size_t)r * n;
            for (int q = lo; q < hi; q++) cr[q] = accumulate ? cr[q] + win[q] : win[q];
        }
    }
}

#define GEMM_OP_KERNEL(NAME, TM, A_ROW, A_P)                                                    \
    __kernel void NAME(const int m, const int n, const int k, const int row0,                   \
                       __global const float* restrict A, __global const float* restrict B,      \
                       __global float* restrict C, const int accumulate, const long stride_a,   \
                       const long stride_b, const long stride_c)                                \
    {                                                                                            \
        const size_t bi = get_global_id(2);                                                      \
        op_tile(TM, n, k, row0 + (int)get_global_id(1) * TM, (int)get_global_id(0) * OP_VW,     \
                A + bi * stride_a, A_ROW, A_P, B + bi * stride_b, C + bi * stride_c,             \
                accumulate);                                                                     \
    }

/* A (m, k), B (k, n), C (m, n); global (ceil(n / OP_VW), rows / OP_TM, batch) */
GEMM_OP_KERNEL(gemm_nn, OP_TM, k, 1)
/* A stored (k, m), B (k, n), C (m, n); global (ceil(n / OP_VW), rows / OP_TM, batch) */
GEMM_OP_KERNEL(gemm_tn, OP_TM, 1, m)
/* row remainder, one row per work-item; global (ceil(n / OP_VW), rows, batch) */
GEMM_OP_KERNEL(gemm_nn_row, 1, k, 1)
GEMM_OP_KERNEL(gemm_tn_row, 1, 1, m)

/* Dot tile for B transposed: A (m, k) and B stored (n, k), both contiguous along k; tm rows
 * x DOT_TN columns of C, each a DOT_VW-wide partial sum along k reduced at the end. */
FORCE_INLINE void dot_tile(const int tm, const int n, const int k, const int i0, const int j0,
                           __global const float* restrict a, __global const float* restrict b,
                           __global float* restrict c, const int accumulate, const int epi,
                           __global const float* restrict bias, const int has_bias,
                           const int act)
{
    __global const float* brow[DOT_TN];
    _Pragma("unroll") for (int q = 0; q < DOT_TN; q++)
        brow[q] = b + (size_t)MIN(j0 + q, n - 1) * k;  /* clamped: never past row n - 1 */
    a += (size_t)i0 * k;
    DOTVEC acc[DOT_TM][DOT_TN];
    _Pragma("unroll") for (int r = 0; r < tm; r++)
        _Pragma("unroll") for (int q = 0; q < DOT_TN; q++) acc[r][q] = (DOTVEC)(0.0f);
    const int kv = k - k % DOT_VW;
    for (int p = 0; p < kv; p += DOT_VW) {
        DOTVEC bv[DOT_TN];
        _Pragma("unroll") for (int q = 0; q < DOT_TN; q++) bv[q] = DOT_LOAD(brow[q] + p);
        _Pragma("unroll") for (int r = 0; r < tm; r++) {
            const DOTVEC av = DOT_LOAD(a + (size_t)r * k + p);
            _Pragma("unroll") for (int q = 0; q < DOT_TN; q++)
                acc[r][q] = av * bv[q] + acc[r][q];
        }
    }
    c += (size_t)i0 * n + j0;
    const int cols = MIN(DOT_TN, n - j0);
    _Pragma("unroll") for (int r = 0; r < tm; r++) {
        _Pragma("unroll") for (int q = 0; q < DOT_TN; q++) {
            float s = hsum_dot(acc[r][q]);
            for (int p = kv; p < k; p++) s = a[(size_t)r * k + p] * brow[q][p] + s;
            if (epi) {  /* the dense layer's epilogue: + bias[j], activation */
                if (has_bias) s = s + bias[MIN(j0 + q, n - 1)];
                s = act_apply(s, act);
            }
            if (q < cols) c[(size_t)r * n + q] = accumulate ? c[(size_t)r * n + q] + s : s;
        }
    }
}

#define GEMM_DOT_KERNEL(NAME, TM)                                                               \
    __kernel void NAME(const int m, const int n, const int k, const int row0,                   \
                       __global const float* restrict A, __global const float* restrict B,      \
                       __global float* restrict C, const int accumulate, const long stride_a,   \
                       const long stride_b, const long stride_c)                                \
    {                                                                                            \
        const size_t bi = get_global_id(2);                                                      \
        dot_tile(TM, n, k, row0 + (int)get_global_id(1) * TM, (int)get_global_id(0) * DOT_TN,   \
                 A + bi * stride_a, B + bi * stride_b, C + bi * stride_c, accumulate, 0, B, 0,  \
                 0);                                                                             \
    }

/* The same with a dense layer's epilogue, C = act(A @ B^T + bias) (bias (n,) when has_bias;
 * act: the codes of common.h); forward inference of Dense / linear in one launch. */
#define GEMM_DOT_EPI_KERNEL(NAME, TM)                                                           \
    __kernel void NAME(const int m, const int n, const int k, const int row0,                   \
                       __global const float* restrict A, __global const float* restrict B,      \
                       __global float* restrict C, __global const float* restrict bias,         \
                       const int has_bias, const int act, const long stride_a,                  \
                       const long stride_b, const long stride_c)                                \
    {                                                                                            \
        const size_t bi = get_global_id(2);                                                      \
        dot_tile(TM, n, k, row0 + (int)get_global_id(1) * TM, (int)get_global_id(0) * DOT_TN,   \
                 A + bi * stride_a, B + bi * stride_b, C + bi * stride_c, 0, 1, bias, has_bias, \
                 act);                                                                           \
    }

/* A (m, k), B stored (n, k), C (m, n); global (ceil(n / DOT_TN), rows / DOT_TM, batch) */
GEMM_DOT_KERNEL(gemm_nt, DOT_TM)
/* row remainder, one row per work-item; global (ceil(n / DOT_TN), rows, batch) */
GEMM_DOT_KERNEL(gemm_nt_row, 1)
GEMM_DOT_EPI_KERNEL(gemm_nt_epi, DOT_TM)
GEMM_DOT_EPI_KERNEL(gemm_nt_epi_row, 1)

/* ---- packed path (large matrices) -------------------------------------------------------
 * Walking down a column of a row-major matrix touches a new 4 KiB page at every step once rows
 * are 4 KiB long, which the hardware prefetcher does not follow. So for large products both
 * operands are first copied into panels that the product kernel then reads front to back:
 *   Ap: ceil(m / PK_TM) panels of (k, PK_TM): Ap[(t*k + p)*PK_TM + r] = op(A)(t*PK_TM + r, p)
 *   Bp: ceil(n / PK_VW) panels of (k, PK_VW): Bp[(t*k + p)*PK_VW + q] = op(B)(p, t*PK_VW + q)
 * with zeros past row m / column n, so every tile is whole and only the stores are guarded. */

/* X (rows, k) with X(r, p) = src[r*s_r + p*s_p] -> panels of W rows; global (k, panels, batch).
 * Dimension 0 walks p, so consecutive work-items write consecutive W-float chunks. */
#define GEMM_PACK_KERNEL(NAME, W)                                                               \
    __kernel void NAME(const int rows, const int k, __global const float* restrict src,         \
                       __global float* restrict dst, const int s_r, const int s_p,              \
                       const long stride_src, const long stride_dst)                            \
    {                                                                                            \
        const int p = (int)get_global_id(0);                                                     \
        const int t = (int)get_global_id(1);                                                     \
        const size_t bi = get_global_id(2);                                                      \
        __global const float* x = src + bi * stride_src + (size_t)p * s_p;                       \
        __global float* out = dst + bi * stride_dst + ((size_t)t * k + p) * W;                   \
        const int r0 = t * W;                                                                    \
        _Pragma("unroll") for (int w = 0; w < W; w++)                                            \
            out[w] = r0 + w < rows ? x[(size_t)(r0 + w) * s_r] : 0.0f;                           \
    }

GEMM_PACK_KERNEL(gemm_pack_a, PK_TM)
GEMM_PACK_KERNEL(gemm_pack_b, PK_VW)

/* C (m, n) from panels Ap and Bp (batch strides in floats); one PK_TM x PK_VW tile per
 * work-item; global (ceil(n / PK_VW), ceil(m / PK_TM), batch). */
__kernel void gemm_packed(const int m, const int n, const int k,
                          __global const float* restrict Ap, __global const float* restrict Bp,
                          __global float* restrict C, const int accumulate, const long stride_a,
                          const long stride_b, const long stride_c)
{
    const int jt = (int)get_global_id(0);
    const int it = (int)get_global_id(1);
    const size_t bi = get_global_id(2);
    __global const float* a = Ap + bi * stride_a + (size_t)it * k * PK_TM;
    __global const float* b = Bp + bi * stride_b + (size_t)jt * k * PK_VW;
    PKVEC acc[PK_TM];
    _Pragma("unroll") for (int r = 0; r < PK_TM; r++) acc[r] = (PKVEC)(0.0f);
    for (int p = 0; p < k; p++) {
        const PKVEC bv = PK_LOAD(b);
        _Pragma("unroll") for (int r = 0; r < PK_TM; r++)
            acc[r] = (PKVEC)(a[r]) * bv + acc[r];
        a += PK_TM;
        b += PK_VW;
    }
    const int i0 = it * PK_TM, j0 = jt * PK_VW;
    const int rows = MIN(PK_TM, m - i0), cols = MIN(PK_VW, n - j0);
    __global float* c = C + bi * stride_c + (size_t)i0 * n + j0;
    if (rows == PK_TM && cols == PK_VW) {
        _Pragma("unroll") for (int r = 0; r < PK_TM; r++) {
            PKVEC v = acc[r];
            if (accumulate) v += PK_LOAD(c + (size_t)r * n);
            PK_STORE(v, c + (size_t)r * n);
        }
    } else {
        float win[PK_VW];
        for (int r = 0; r < rows; r++) {
            PK_STORE_PRIVATE(acc[r], win);
            __global float* cr = c + (size_t)r * n;
            for (int q = 0; q < cols; q++) cr[q] = accumulate ? cr[q] + win[q] : win[q];
        }
    }
}
