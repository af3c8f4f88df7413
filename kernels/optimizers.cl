/* Element-wise optimizer updates over a model's flat parameter buffer (nn/optim).

   Every buffer argument is a flat float32 vector in the ParameterStore layout (tensors at
   aligned offsets, zero padding between them), seen as n elements of floatv (float8 with
   -DVEC=8, see optim_common.h); work-item i updates element i of each buffer. Padding has
   w = g = 0 and every rule keeps it exactly 0. Step-dependent scalars (bias corrections,
   first-step flags) come from the host; flags that add state buffers are build options
   (-DMOMENTUM, -DNESTEROV, -DCENTERED, -DAMSGRAD). Complements like 1 - beta2 are computed on
   the host in float64 and passed in: 1.0f - 0.999f is off by 1.3e-5. Symbols follow the math
   boxes in the optimizer classes' docstrings: w parameter, g gradient, lambda weight decay. */
#include "optim_common.h"

/* SGD: b = mu b + (1-tau) g  (b = g on the first step);  g' = g + mu b (nesterov) or b. */
__kernel void sgd_step(__global floatv *w, __global const floatv *g,
#ifdef MOMENTUM
                       __global floatv *momentum_buffer,
#endif
                       const int n, const float lr, const float weight_decay,
                       const float momentum, const float one_minus_dampening,
                       const int first) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const floatv wi = w[i];
    floatv gi = g[i] + weight_decay * wi;
#ifdef MOMENTUM
    const floatv b = first ? gi : momentum * momentum_buffer[i] + one_minus_dampening * gi;
    momentum_buffer[i] = b;
#ifdef NESTEROV
    gi = gi + momentum * b;
#else
    gi = b;
#endif
#endif
    w[i] = wi - lr * gi;
}

/* Rprop: eta = etaplus / etaminus / 1 by sign(g * prev); step = clamp(step * eta); on a sign
   change the gradient counts as 0 (no move, and prev = 0). */
__kernel void rprop_step(__global floatv *w, __global const floatv *g, __global floatv *prev,
                         __global floatv *step_size, const int n, const float etaminus,
                         const float etaplus, const float step_min, const float step_max) {
    const int i = get_global_id(0);
    if (i >= n) return;
    floatv gi = g[i];
    const floatv s = gi * prev[i];
    const floatv eta = select(select((floatv)(1.0f), (floatv)(etaminus), s < 0.0f),
                              (floatv)(etaplus), s > 0.0f);
    gi = select(gi, (floatv)(0.0f), s < 0.0f);
    const floatv st = clamp(step_size[i] * eta, step_min, step_max);
    step_size[i] = st;
    prev[i] = gi;
    w[i] = w[i] - sign(gi) * st;
}

/* Adagrad: sum += g^2;  w -= clr * g / (sqrt(sum) + eps), clr = lr / (1 + (t-1) lr_decay). */
__kernel void adagrad_step(__global floatv *w, __global const floatv *g, __global floatv *sum,
                           const int n, const float clr, const float weight_decay,
                           const float eps) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const floatv wi = w[i];
    const floatv gi = g[i] + weight_decay * wi;
    const floatv s = sum[i] + gi * gi;
    sum[i] = s;
    w[i] = wi - clr * safe_div(gi, sqrt(s) + eps);
}

/* RMSprop: v = alpha v + (1-alpha) g^2; centered: gbar = alpha gbar + (1-alpha) g,
   v~ = v - gbar^2; b = mu b + g / (sqrt(v~) + eps); w -= lr b (or lr g / (...)). */
__kernel void rmsprop_step(__global floatv *w, __global const floatv *g,
                           __global floatv *square_avg,
#ifdef CENTERED
                           __global floatv *grad_avg,
#endif
#ifdef MOMENTUM
                           __global floatv *momentum_buffer,
#endif
                           const int n, const float lr, const float alpha,
                           const float one_minus_alpha, const float eps,
                           const float weight_decay, const float momentum) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const floatv wi = w[i];
    const floatv gi = g[i] + weight_decay * wi;
    const floatv v = alpha * square_avg[i] + one_minus_alpha * (gi * gi);
    square_avg[i] = v;
#ifdef CENTERED
    const floatv ga = ema(grad_avg[i], gi, one_minus_alpha);
    grad_avg[i] = ga;
    const floatv avg = sqrt(max_v(v - ga * ga, (floatv)(0.0f))) + eps;
#else
    const floatv avg = sqrt(v) + eps;
#endif
#ifdef MOMENTUM
    const floatv b = momentum * momentum_buffer[i] + safe_div(gi, avg);
    momentum_buffer[i] = b;
    w[i] = wi - lr * b;
#else
    w[i] = wi - lr * safe_div(gi, avg);
#endif
}

/* Adam / AdamW: g += lambda_l2 w; w -= lr_wd w (lr_wd = lr lambda for AdamW, else 0);
   m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; (amsgrad: vmax = max(vmax, v));
   w -= step_size m / (sqrt(v) / bc2_sqrt + eps), step_size = lr / (1 - b1^t),
   bc2_sqrt = sqrt(1 - b2^t). */
__kernel void adam_step(__global floatv *w, __global const floatv *g, __global floatv *exp_avg,
                        __global floatv *exp_avg_sq,
#ifdef AMSGRAD
                        __global floatv *max_exp_avg_sq,
#endif
                        const int n, const float one_minus_beta1, const float beta2,
                        const float one_minus_beta2, const float eps,
                        const float weight_decay, const float lr_wd, const float step_size,
                        const float bc2_sqrt) {
    const int i = get_global_id(0);
    if (i >= n) return;
    floatv wi = w[i];
    const floatv gi = g[i] + weight_decay * wi;
    wi -= lr_wd * wi;
    const floatv m = ema(exp_avg[i], gi, one_minus_beta1);
    floatv v = beta2 * exp_avg_sq[i] + one_minus_beta2 * (gi * gi);
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
#ifdef AMSGRAD
    v = max_v(max_exp_avg_sq[i], v);
    max_exp_avg_sq[i] = v;
#endif
    w[i] = wi - step_size * safe_div(m, sqrt(v) / bc2_sqrt + eps);
}

/* NAdam: m, v as Adam; d = sqrt(v / bc2) + eps;
   w += c_grad g / d + c_m m / d with c_grad = -lr (1 - mu_t) / (1 - prod_{i<=t} mu_i),
   c_m = -lr mu_{t+1} / (1 - prod_{i<=t+1} mu_i). */
__kernel void nadam_step(__global floatv *w, __global const floatv *g, __global floatv *exp_avg,
                         __global floatv *exp_avg_sq, const int n,
                         const float one_minus_beta1, const float beta2,
                         const float one_minus_beta2, const float eps, const float weight_decay,
                         const float lr_wd, const float bc2, const float c_grad,
                         const float c_m) {
    const int i = get_global_id(0);
    if (i >= n) return;
    floatv wi = w[i];
    const floatv gi = g[i] + weight_decay * wi;
    wi -= lr_wd * wi;
    const floatv m = ema(exp_avg[i], gi, one_minus_beta1);
    const floatv v = beta2 * exp_avg_sq[i] + one_minus_beta2 * (gi * gi);
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    const floatv d = sqrt(v / bc2) + eps;
    wi = wi + c_grad * safe_div(gi, d);
    w[i] = wi + c_m * safe_div(m, d);
}

/* Adadelta: v = rho v + (1-rho) g^2; delta = sqrt(u + eps) / sqrt(v + eps) g;
   u = rho u + (1-rho) delta^2; w -= lr delta. */
__kernel void adadelta_step(__global floatv *w, __global const floatv *g,
                            __global floatv *square_avg, __global floatv *acc_delta,
                            const int n, const float lr, const float rho,
                            const float one_minus_rho, const float eps,
                            const float weight_decay) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const floatv wi = w[i];
    const floatv gi = g[i] + weight_decay * wi;
    const floatv v = rho * square_avg[i] + one_minus_rho * (gi * gi);
    square_avg[i] = v;
    const floatv u = acc_delta[i];
    const floatv delta = safe_div(sqrt(u + eps), sqrt(v + eps)) * gi;
    acc_delta[i] = rho * u + one_minus_rho * (delta * delta);
    w[i] = wi - lr * delta;
}
