/* The LSTM cell's arithmetic (torch gate order i, f, g, o), shared by lstm.cl and tpm.cl so
 * that both compute every value with the same expressions. The macros work on float and on
 * vector types (T: the type of the temporaries); lstm_cell_math / lstm_cell_grad are the
 * scalar instances. */
#ifndef NEUROFX_LSTM_CELL_H
#define NEUROFX_LSTM_CELL_H

#define LSTM_SIGM(x) (1.0f / (1.0f + exp(-(x))))

/* Pre-activations (zi, zf, zg, zo) and c_{t-1} = cp -> activated gates, c_t and h_t:
 * i, f, o = sigmoid, g = tanh; c = f*cp + i*g; h = o*tanh(c). */
#define LSTM_CELL_MATH(zi, zf, zg, zo, cp, i, f, g, o, c, h)                                  \
    do {                                                                                     \
        i = LSTM_SIGM(zi); f = LSTM_SIGM(zf); g = tanh(zg); o = LSTM_SIGM(zo);               \
        c = f * (cp) + i * g;                                                                \
        h = o * tanh(c);                                                                     \
    } while (0)

/* Backward of one cell: dh (all of dL/dh_t), dc (dL/dc_t from the later steps), the stored
 * activated gates, c_t and c_{t-1} = cp -> the pre-activation gradients and dL/dc_{t-1} (via
 * the cell: dc_t * f). */
#define LSTM_CELL_GRAD(T, dh, dc, i, f, g, o, c, cp, di, df, dg, dov, dc_prev)                 \
    do {                                                                                     \
        const T tc_ = tanh(c);                                                               \
        const T dcv_ = (dc) + (dh) * (o) * (1.0f - tc_ * tc_);                               \
        dc_prev = dcv_ * (f);                                                                \
        di = dcv_ * (g) * (i) * (1.0f - (i));                                                \
        df = dcv_ * (cp) * (f) * (1.0f - (f));                                               \
        dg = dcv_ * (i) * (1.0f - (g) * (g));                                                \
        dov = (dh) * tc_ * (o) * (1.0f - (o));                                               \
    } while (0)

inline void lstm_cell_math(const float zi, const float zf, const float zg, const float zo,
                           const float cp, float* i, float* f, float* g, float* o, float* c,
                           float* h) {
    LSTM_CELL_MATH(zi, zf, zg, zo, cp, *i, *f, *g, *o, *c, *h);
}

inline void lstm_cell_grad(const float dh, const float dc, const float i, const float f,
                           const float g, const float o, const float c, const float cp,
                           float* di, float* df, float* dg, float* dov, float* dc_prev) {
    LSTM_CELL_GRAD(float, dh, dc, i, f, g, o, c, cp, *di, *df, *dg, *dov, *dc_prev);
}
#endif
