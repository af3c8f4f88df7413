"""The TPM layer's recurrence over a sequence (:class:`neurofx.nn.layers.tpm.TPM`, sequence
mode) as one op: per step only the products of the state and four fused kernels; backward
is full BPTT with every weight gradient ONE product over all T*B rows.

Steps are row blocks of buffers over all rows (row t*B + b), see ``kernels/tpm.cl`` for the
"cur" and "prev" layouts. Step t (state s_{t-1} = (h_e, c_e, h_d, c_d), zero at t = 0, where
its products are skipped)::

    s   = fx_t + h_e Wh^T + c_e Wc^T                       scores (B, N)
    u   = tanh(s);  w = softmax per variable (u);  a = w * f_t
    h_e, c_e = cell(a Wih_e^T + b_e + h_e Whh_e^T;  c_e)
    e   = h_e Ue^T + u_b + h_d Uh^T + c_d Uc^T              (h_e: this step's)
    att = softmax(tanh(e));  q = att * h_e
    z   = pz_t + q Ma^T
    h_d, c_d = cell(z Wih_d^T + b_d + h_d Whh_d^T;  c_d);   output h_d

The sums run in the order of the layer's step mode (each product added to what is there),
so the forward gives the values of the former per-step graph of ops. Backward per step,
last to first: the two cells, the two attentions and the products that carry the gradient
to the previous state and to the step's inputs (``dX = dY W``); the weight gradients
``dW += dY^T X`` and bias sums run once over all rows after the loop (one GEMM each instead
of one per step: a different summation order than per-step accumulation).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..gemm import get_gemm, get_rows_gemm
from ..launch import accumulate, i32, launch
from ..tensor import Parameter, Tensor, make_output

FILE = "tpm.cl"
ATTN_GROUP = 64  # work-items per attention segment (at most), 8 values each (tpm_attn_fwd)


@dataclass(frozen=True)
class TPMWeights:
    """The state-side parameters of the TPM recurrence (shapes for N inputs, H units)."""

    w_h: Parameter      # feat_attn.weight_h (N, H)
    w_c: Parameter      # feat_attn.weight_c (N, H)
    enc_ih: Parameter   # enc.weight_ih (4H, N)
    enc_hh: Parameter   # enc.weight_hh (4H, H)
    enc_b: Parameter    # enc.bias (4H,)
    u_e: Parameter      # temp_attn.weight_enc (H, H)
    u_h: Parameter      # temp_attn.weight_h (H, H)
    u_c: Parameter      # temp_attn.weight_c (H, H)
    u_b: Parameter      # temp_attn.bias (H,)
    m_a: Parameter      # mix.weight_a (H, H)
    dec_ih: Parameter   # dec.weight_ih (4H, H)
    dec_hh: Parameter   # dec.weight_hh (4H, H)
    dec_b: Parameter    # dec.bias (4H,)

    def all(self) -> tuple[Parameter, ...]:
        return tuple(getattr(self, k) for k in self.__dataclass_fields__)


def tpm_recurrence(f: Tensor, fx: Tensor, pz: Tensor, w: TPMWeights, steps: int, batch: int,
                   heads: int) -> Tensor:
    """Decoder outputs (T, B, H) of the TPM recurrence from a zero state.

    ``f`` (T*B, N) the variable-major CSCM features, ``fx`` (T*B, N) their score term
    ``f Wx^T + b``, ``pz`` (T*B, H) the PLR term ``p Mp^T + m`` (row t*B + b: step t of
    sub-sequence b); ``heads`` variables of N / heads bars each (the feature softmax)."""
    rows, n = f.shape
    hidden = w.u_e.shape[0]
    g4 = 4 * hidden
    if rows != steps * batch or fx.shape != (rows, n) or pz.shape != (rows, hidden):
        raise ValueError(f"tpm_recurrence: f {f.shape}, fx {fx.shape}, pz {pz.shape} do not "
                         f"fit {steps} steps x {batch} rows, H={hidden}")
    if heads < 1 or n % heads:
        raise ValueError(f"tpm_recurrence: {heads} heads do not divide {n} features")
    out = make_output((steps, batch, hidden), (f, fx, pz, *w.all()), "tpm")
    dev, gemm, step_gemm = out.device, get_gemm(out.device), get_rows_gemm(out.device)

    def new(cols: int):
        return dev.alloc(4 * rows * cols, "activations", dev.owner)

    s, wt, a = new(n), new(n), new(n)              # scores -> tanh, weights, attended input
    z_e, gates_e, c_e, h_e = new(g4), new(g4), new(hidden), new(hidden)
    hp_e, cp_e, hp_d, cp_d = (new(hidden) for _ in range(4))  # "prev" states
    e, att, q, z = new(hidden), new(hidden), new(hidden), new(hidden)
    z_d, gates_d, c_d = new(g4), new(g4), new(hidden)
    h_d = out.buf
    dev.copy(s, fx.buf, 4 * rows * n)
    dev.copy(z, pz.buf, 4 * rows * hidden)
    for bias, dst, cols in ((w.enc_b, z_e, g4), (w.u_b, e, hidden), (w.dec_b, z_d, g4)):
        launch(dev, FILE, "tpm_bias_rows", (cols, rows), bias.buf, dst)
    for buf in (hp_e, cp_e, hp_d, cp_d):  # the zero start (read by the weight gradients)
        dev.fill(buf, 0.0, 0, 4 * batch * hidden)
    len_f = n // heads
    cell_grid = (-(-hidden // 8), batch)  # 8 units per work-item (kernels/tpm.cl)

    def attn_fwd(scores, v, weights, out_, t, segments, length):
        ls = min(-(-length // 8), ATTN_GROUP)
        launch(dev, FILE, "tpm_attn_fwd", (ls, segments, batch), scores, v, weights, out_,
               i32(t), i32(length), local_size=(ls, 1, 1))

    def mm(x, p, y, t, cols, k):  # rows of step t: y += x @ p^T
        step_gemm.rows(x, p.buf, y, t * batch, batch, cols, k, trans_b=True, accumulate=True)

    for t in range(steps):
        if t:
            mm(hp_e, w.w_h, s, t, n, hidden)
            mm(cp_e, w.w_c, s, t, n, hidden)
        attn_fwd(s, f.buf, wt, a, t, heads, len_f)
        mm(a, w.enc_ih, z_e, t, g4, n)
        if t:
            mm(hp_e, w.enc_hh, z_e, t, g4, hidden)
        launch(dev, FILE, "tpm_cell_fwd", cell_grid, z_e, gates_e, c_e, h_e, cp_e, hp_e, i32(t),
               i32(steps), i32(hidden))
        mm(h_e, w.u_e, e, t, hidden, hidden)
        if t:
            mm(hp_d, w.u_h, e, t, hidden, hidden)
            mm(cp_d, w.u_c, e, t, hidden, hidden)
        attn_fwd(e, h_e, att, q, t, 1, hidden)
        mm(q, w.m_a, z, t, hidden, hidden)
        mm(z, w.dec_ih, z_d, t, g4, hidden)
        if t:
            mm(hp_d, w.dec_hh, z_d, t, g4, hidden)
        launch(dev, FILE, "tpm_cell_fwd", cell_grid, z_d, gates_d, c_d, h_d, cp_d, hp_d, i32(t),
               i32(steps), i32(hidden))
    if out.requires_grad:
        def _backward():
            dy = out.grad_buf
            dz_e, dz_d = new(g4), new(g4)
            ds, da, df = new(n), new(n), new(n)
            de, dq, dz, dh_e = new(hidden), new(hidden), new(hidden), new(hidden)
            dhp_e, dcp_e, dhp_d, dcp_d = (new(hidden) for _ in range(4))

            # dX = dY @ W as nt products of W^T: each step reads rows of W^T contiguously
            wts = {}
            for p in (w.w_h, w.w_c, w.enc_ih, w.enc_hh, w.u_e, w.u_h, w.u_c, w.m_a, w.dec_ih,
                      w.dec_hh):
                n_out, n_in = p.shape
                wts[id(p)] = dev.alloc(4 * n_out * n_in, "activations", dev.owner)
                launch(dev, "shape.cl", "transpose2d_tiled",
                       (-(-n_in // 16) * 16, -(-n_out // 16) * 16), p.buf, wts[id(p)],
                       i32(n_out), i32(n_in), local_size=(16, 16))

            def back(dy_, p, dx, t, cols, k, acc):  # rows of step t: dx (+)= dy @ p
                step_gemm.rows(dy_, wts[id(p)], dx, t * batch, batch, cols, k, trans_b=True,
                               accumulate=acc)

            for t in reversed(range(steps)):
                launch(dev, FILE, "tpm_cell_bwd", cell_grid, dy, dhp_d, gates_d, c_d, dcp_d, dz_d,
                       i32(t), i32(steps), i32(hidden))
                back(dz_d, w.dec_ih, dz, t, hidden, g4, False)
                if t:
                    back(dz_d, w.dec_hh, dhp_d, t, hidden, g4, False)
                back(dz, w.m_a, dq, t, hidden, hidden, False)
                launch(dev, FILE, "tpm_attn_bwd", (1, batch), dq, h_e, att, e, dh_e, de, i32(t),
                       i32(hidden))
                back(de, w.u_e, dh_e, t, hidden, hidden, True)
                if t:
                    back(de, w.u_h, dhp_d, t, hidden, hidden, True)
                    back(de, w.u_c, dcp_d, t, hidden, hidden, True)
                launch(dev, FILE, "tpm_cell_bwd", cell_grid, dh_e, dhp_e, gates_e, c_e, dcp_e, dz_e,
                       i32(t), i32(steps), i32(hidden))
                back(dz_e, w.enc_ih, da, t, n, g4, False)
                if t:
                    back(dz_e, w.enc_hh, dhp_e, t, hidden, g4, False)
                launch(dev, FILE, "tpm_attn_bwd", (heads, batch), da, f.buf, wt, s, df, ds,
                       i32(t), i32(len_f))
                if t:
                    back(ds, w.w_h, dhp_e, t, hidden, n, True)
                    back(ds, w.w_c, dcp_e, t, hidden, n, True)
            for parent, grad, cols in ((f, df, n), (fx, ds, n), (pz, dz, hidden)):
                if parent.requires_grad:
                    accumulate(parent.ensure_grad(), grad, rows * cols, dev)
            # dW (out, in) += dY^T (out, T*B) @ X (T*B, in): one product over all steps
            for dout, x, p, cols in ((ds, hp_e, w.w_h, n), (ds, cp_e, w.w_c, n),
                                     (dz_e, a, w.enc_ih, g4), (dz_e, hp_e, w.enc_hh, g4),
                                     (de, h_e, w.u_e, hidden), (de, hp_d, w.u_h, hidden),
                                     (de, cp_d, w.u_c, hidden), (dz, q, w.m_a, hidden),
                                     (dz_d, z, w.dec_ih, g4), (dz_d, hp_d, w.dec_hh, g4)):
                if p.requires_grad:
                    gemm.gemm(dout, x, p.ensure_grad(), cols, p.shape[1], rows, trans_a=True,
                              accumulate=True)
            for dout, p, cols in ((dz_e, w.enc_b, g4), (de, w.u_b, hidden), (dz_d, w.dec_b, g4)):
                if p.requires_grad:
                    launch(dev, "elementwise.cl", "bias_add_bwd", -(-cols // 8), dout,
                           p.ensure_grad(), i32(rows), i32(cols))
        out._backward = _backward
    return out


__all__ = ["TPMWeights", "tpm_recurrence"]
