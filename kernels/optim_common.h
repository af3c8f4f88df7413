/* Shared helpers for the optimizer kernels (optimizers.cl, adam_mini.cl).

   floatv is the element type of the element-wise kernels: float4 with -DVEC=4 (PoCL's CPU
   code is several times faster with explicit float4 than with one float per work-item), float
   otherwise. Scalars broadcast, so one source serves both widths. */
#ifndef NEUROFX_OPTIM_COMMON_H
#define NEUROFX_OPTIM_COMMON_H

#ifndef VEC
#define VEC 1
#endif
#if VEC == 4
typedef float4 floatv;
#elif VEC == 1
typedef float floatv;
#else
#error "VEC must be 1 or 4"
#endif

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
