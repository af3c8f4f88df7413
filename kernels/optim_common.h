/* Shared helpers for the optimizer kernels (optimizers.cl, adam_mini.cl).

   floatv is the element type of the element-wise kernels: float8 with -DVEC=8, float4 with
   -DVEC=4 (PoCL's CPU code is several times faster with explicit vectors than with one float
   per work-item; float8 fills an AVX2 register: Adam's step over the 400k parameters of the
   MLP 1080-256-256-216 ~0.52 -> ~0.36 ms), float otherwise. Scalars broadcast, so one source
   serves every width. */
#ifndef NEUROFX_OPTIM_COMMON_H
#define NEUROFX_OPTIM_COMMON_H

#ifndef VEC
#define VEC 1
#endif
#if VEC == 8
typedef float8 floatv;
#elif VEC == 4
typedef float4 floatv;
#elif VEC == 1
typedef float floatv;
#else
#error "VEC must be 1, 4 or 8"
#endif

/* fmax(a, b) without the built-in, an out-of-line call in pip PoCL 3.0 (see matmul.cl): the
   larger, or the one that is not NaN (fmax's rule; -0 and +0 may come out either way, as
   fmax allows). */
inline floatv max_v(const floatv a, const floatv b) {
    return ((a > b) | (b != b)) ? a : b;
}

/* a / b, but 0 where b == 0. The denominators here are sqrt(state) + eps, so b == 0 only
   with eps == 0 and an all-zero history, where a == 0 too: the padding between tensors (and
   never-touched elements) then stay exactly 0 instead of turning NaN (0/0). */
inline floatv safe_div(const floatv a, const floatv b) {
    return select(a / b, (floatv)(0.0f), b == (floatv)(0.0f));
}
inline float safe_div1(const float a, const float b) {
    return b != 0.0f ? a / b : 0.0f;
}

/* torch's lerp_(end, weight) for weight < 0.5: a + weight * (end - a) (m += (1-b1)(g-m)). */
inline floatv ema(const floatv a, const floatv end, const float weight) {
    return a + weight * (end - a);
}
inline float ema1(const float a, const float end, const float weight) {
    return a + weight * (end - a);
}
#endif
