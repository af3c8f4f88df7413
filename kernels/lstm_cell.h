/* The LSTM cell's arithmetic (torch gate order i, f, g, o), shared by lstm.cl and tpm.cl so
 * that both compute every value with the same expressions. */
#ifndef NEUROFX_LSTM_CELL_H
#define NEUROFX_LSTM_CELL_H

inline float sigm(const float x) { return 1.0f / (1.0f + exp(-x)); }

/* Pre-activations (zi, zf, zg, zo) and c_{t-1} = cp -> activated gates, c_t and h_t:
 * i, f, o = sigmoid, g = tanh; c = f*cp + i*g; h = o*tanh(c). */
inline void lstm_cell_math(const float zi, const float zf, const float zg, const float zo,
                           const float cp, float* i, float* f, float* g, float* o, float* c,
                           float* h) {
    *i = sigm(zi); *f = sigm(zf); *g = tanh(zg); *o = sigm(zo);
    *c = *f * cp + *i * *g;
    *h = *o * tanh(*c);
}

/* Backward of one cell: dh (all of dL/dh_t), dc (dL/dc_t from the later steps), the stored
 * activated gates, c_t and c_{t-1} = cp -> the pre-activation gradients and dL/dc_{t-1} (via
 * the cell: dc_t * f). */
inline void lstm_cell_grad(const float dh, const float dc, const float i, const float f,
                           const float g, const float o, const float c, const float cp,
                           float* di, float* df, float* dg, float* dov, float* dc_prev) {
    const float tc = tanh(c);
    const float dcv = dc + dh * o * (1.0f - tc * tc);
    *dc_prev = dcv * f;
    *di = dcv * g * i * (1.0f - i);
    *df = dcv * cp * f * (1.0f - f);
    *dg = dcv * i * (1.0f - g * g);
    *dov = dh * tc * o * (1.0f - o);
}
#endif
