"""The seed's TPM layer (CNeuronTPM, spec 1.2): dual-attention encoder-decoder LSTM over a
120-bar x 9-feature window, one call per bar with the recurrent state carried across calls."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import ops
from ..launch import accumulate, i32, launch
from ..module import Module, child_seed, register, uniform_init
from ..ops.attention import batch_transpose
from ..ops.tpm import TPMWeights, tpm_recurrence
from ..tensor import Parameter, Tensor, make_output
from .cscm import CSCM
from .lstm import LSTM
from .plr import PLR


def lstm_cell(z: Tensor, c_prev: Tensor | None) -> tuple[Tensor, Tensor]:
    """One LSTM cell step with a differentiable state: z (B, 4H) pre-activations (gate order
    i, f, g, o, recurrent term included), c_prev (B, H) or None (zero) -> (h, c), each (B, H).

    One fused kernel each way (``lstm.cl``). ``h`` lists ``c`` as its parent, so the backward
    of ``c`` runs after every consumer of ``h`` and ``c`` has delivered its gradient; it then
    sends ``dz`` and ``dc_prev = dc * f`` (dc including the path through h) upstream."""
    batch, four_h = z.shape
    hidden = four_h // 4
    if four_h != 4 * hidden or (c_prev is not None and c_prev.shape != (batch, hidden)):
        raise ValueError(f"lstm_cell: z {z.shape} and c_prev "
                         f"{None if c_prev is None else c_prev.shape} do not match")
    dev = z.device
    c = make_output((batch, hidden), (z,) if c_prev is None else (z, c_prev), "lstm_cell.c")
    h = make_output((batch, hidden), (c,), "lstm_cell.h")
    store = c.requires_grad
    gates = dev.alloc(4 * batch * four_h, "activations", dev.owner) if store else h.buf
    has_c = c_prev is not None
    c_src = c_prev.buf if has_c else c.buf
    grid = (hidden, batch)
    # t = 0 of a 1-step sequence: the kernel's h_{t-1} slot (hprev) is never written
    launch(dev, "lstm.cl", "lstm_cell_fwd", grid, z.buf, z.buf, i32(0), c_src, i32(0),
           i32(has_c), gates, c.buf, h.buf, h.buf, h.buf, i32(0), i32(1), i32(store))
    if store:
        def _backward():
            n = batch * hidden
            dy = h.grad_buf if h.grad_buf is not None else dev.zeros(n, "activations", dev.owner)
            if c.grad_buf is None:
                dc = dev.zeros(n, "activations", dev.owner)
            else:  # the kernel updates dc in place (dc -> dc_prev): work on a copy
                dc = dev.alloc(4 * n, "activations", dev.owner)
                dev.copy(dc, c.grad_buf, 4 * n)
            dg = dev.alloc(4 * batch * four_h, "activations", dev.owner)
            launch(dev, "lstm.cl", "lstm_cell_bwd", grid, dy, dy, i32(0), gates, c.buf, c_src,
                   i32(0), i32(has_c), dc, dg, dg, i32(0))
            if z.requires_grad:
                accumulate(z.ensure_grad(), dg, batch * four_h, dev)
            if has_c and c_prev.requires_grad:
                accumulate(c_prev.ensure_grad(), dc, n, dev)
        c._backward = _backward
    return h, c


def _rows(x: Tensor, t: int, batch: int) -> Tensor:
    """Rows t*batch .. (t+1)*batch - 1 of x (T*batch, W) as a (batch, W) tensor."""
    if x.shape[0] == batch:
        return x
    w = x.shape[1]
    flat = ops.reshape(x, (1, x.numel))
    return ops.reshape(ops.slice_cols(flat, t * batch * w, (t + 1) * batch * w), (batch, w))


def _mm(x: Tensor, w: Tensor) -> Tensor:
    return ops.matmul(x, w, trans_b=True)


@dataclass
class TPMState:
    """Recurrent state of the TPM: encoder (h, c) and decoder (h, c), each (B, H)."""

    h_enc: Tensor
    c_enc: Tensor
    h_dec: Tensor
    c_dec: Tensor

    @property
    def batch(self) -> int:
        return self.h_enc.shape[0]

    def detach(self) -> TPMState:
        return TPMState(*(t.detach() for t in (self.h_enc, self.c_enc, self.h_dec, self.c_dec)))


class _Weights(Module):
    """A named group of parameters (no forward of its own)."""

    def __init__(self, rng: np.random.Generator, rows: int, parts: dict[str, int]):
        fan_in = sum(parts.values())
        for name, cols in parts.items():
            setattr(self, name, Parameter(uniform_init(rng, (rows, cols), fan_in), "weight",
                                          cols))
        self.bias = Parameter(uniform_init(rng, (rows,), fan_in), "bias", 1)


@register
class TPM(Module):
    """Dual-attention trend prediction block: x (B, bars*n_vars) -> decoder hidden (B, H).

    x is the normalised window, bar-major (bar l, feature v at column l*V + v). With
    N = bars*V, f = CSCM(x) (N values) read variable-major (f_vm[v*bars + l]), and
    (h_e, c_e), (h_d, c_d) the encoder and decoder LSTM states of the previous call::

        s   = tanh(f_vm Wx^T + h_e Wh^T + c_e Wc^T + b)          (N,) feature scores
        a   = softmax_over_time_per_variable(s) * f_vm            9 softmax heads of 120
        h_e, c_e = LSTM_enc(a; h_e, c_e)
        p   = PLR(x)                                            long-term trend triplets (N,)
        e   = softmax(tanh(h_e Ue^T + h_d Uh^T + c_d Uc^T + u))  over the H units
        z   = (e * h_e) Ma^T + p Mp^T + m                        (H,) no activation
        h_d, c_d = LSTM_dec(z; h_d, c_d);  output h_d

    * ``forward(x)`` with x (B, N) is one stateful step (one bar): it continues the state
      kept from the previous call until :meth:`reset_state`; the gradient of a step stops at
      the kept state (the seed's one-step truncation).
    * ``forward(x)`` with x (T, B, N) runs T steps from a zero state (B independent
      sub-sequences, step t of each in row block t) and returns (T, B, H); backward is full
      backprop through time. CSCM, PLR and the x-dependent projections run once for all T*B
      rows; only the state-dependent terms run step by step. The kept state is not touched.

    Parameters: ``cscm.*``, ``feat_attn.weight_x|weight_h|weight_c|bias``, ``enc.*`` and
    ``dec.*`` (:class:`LSTM` names), ``temp_attn.weight_enc|weight_h|weight_c|bias``,
    ``mix.weight_a|weight_p|bias``. Adam-mini: one block per row of each weight matrix (the
    seed's single matrix over [f; h; c] is three here, so a row has three blocks), LSTM gate
    rows per row, biases per element.
    """

    def __init__(self, bars: int = 120, n_vars: int = 9, hidden: int = 256,
                 levels: list[int] | tuple = (6, 5, 4, 1), min_step: float = 0.2,
                 seed: int = 0):
        if min(bars, n_vars, hidden) < 1 or bars < 3:
            raise ValueError(f"TPM: need bars >= 3, n_vars >= 1, hidden >= 1, got bars={bars}, "
                             f"n_vars={n_vars}, hidden={hidden}")
        self.bars, self.n_vars, self.hidden = bars, n_vars, hidden
        self.levels, self.min_step, self.seed = [int(k) for k in levels], min_step, seed
        n, h = bars * n_vars, hidden
        rng = np.random.default_rng(child_seed(seed, 7, 100))
        self.cscm = CSCM(bars, n_vars, self.levels, child_seed(seed, 7, 1))
        self.feat_attn = _Weights(rng, n, {"weight_x": n, "weight_h": h, "weight_c": h})
        self.enc = LSTM(n, h, seed=child_seed(seed, 7, 2))
        self.plr = PLR(bars, n_vars, min_step, time_major=True)
        self.temp_attn = _Weights(rng, h, {"weight_enc": h, "weight_h": h, "weight_c": h})
        self.mix = _Weights(rng, h, {"weight_a": h, "weight_p": n})
        self.dec = LSTM(h, h, seed=child_seed(seed, 7, 3))
        self._state: TPMState | None = None

    def config(self) -> dict:
        return {"bars": self.bars, "n_vars": self.n_vars, "hidden": self.hidden,
                "levels": list(self.levels), "min_step": self.min_step, "seed": self.seed}

    @property
    def n_in(self) -> int:
        return self.bars * self.n_vars

    def forward(self, x: Tensor) -> Tensor:
        n = self.n_in
        if x.shape[-1] != n or len(x.shape) not in (2, 3):
            raise ValueError(f"TPM({self.bars}x{self.n_vars}): input must be (B, {n}) or "
                             f"(T, B, {n}), got {x.shape}")
        if len(x.shape) == 2:
            batch = x.shape[0]
            if self._state is not None and self._state.batch != batch:
                raise ValueError(f"TPM: batch {batch} differs from the kept state's "
                                 f"{self._state.batch}; call reset_state() first")
            pre = self._precompute(x)
            y, state = self._step(pre, 0, batch, self._state)
            self._state = state.detach()
            return y
        steps, batch, _ = x.shape
        f_vm, fx, pz = self._precompute(ops.reshape(x, (steps * batch, n)))
        fa, ta = self.feat_attn, self.temp_attn
        weights = TPMWeights(fa.weight_h, fa.weight_c, self.enc.weight_ih, self.enc.weight_hh,
                             self.enc.bias, ta.weight_enc, ta.weight_h, ta.weight_c, ta.bias,
                             self.mix.weight_a, self.dec.weight_ih, self.dec.weight_hh,
                             self.dec.bias)
        return tpm_recurrence(f_vm, fx, pz, weights, steps, batch, self.n_vars)

    def _precompute(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The state-free terms for all rows R: f_vm (R, N), its score term (R, N) and the
        PLR term of z (R, H)."""
        rows, n = x.shape
        f = self.cscm(x)
        f_vm = ops.reshape(batch_transpose(ops.reshape(f, (rows, self.bars, self.n_vars))),
                           (rows, n))
        fa = self.feat_attn
        fx = ops.linear(f_vm, fa.weight_x, fa.bias)
        pz = ops.linear(self.plr(x), self.mix.weight_p, self.mix.bias)
        return f_vm, fx, pz

    def _step(self, pre, t: int, batch: int, state: TPMState | None):
        f_all, fx_all, pz_all = pre
        f_t, fx_t, pz_t = (_rows(a, t, batch) for a in (f_all, fx_all, pz_all))
        fa, ta, enc, dec = self.feat_attn, self.temp_attn, self.enc, self.dec
        scores = fx_t
        if state is not None:
            scores = ops.add(ops.add(scores, _mm(state.h_enc, fa.weight_h)),
                             _mm(state.c_enc, fa.weight_c))
        weights = ops.softmax(ops.activation(scores, "tanh"), heads=self.n_vars)
        a = ops.mul(weights, f_t)
        g = ops.linear(a, enc.weight_ih, enc.bias)
        if state is not None:
            g = ops.add(g, _mm(state.h_enc, enc.weight_hh))
        h_enc, c_enc = lstm_cell(g, None if state is None else state.c_enc)

        e = ops.linear(h_enc, ta.weight_enc, ta.bias)
        if state is not None:
            e = ops.add(ops.add(e, _mm(state.h_dec, ta.weight_h)), _mm(state.c_dec, ta.weight_c))
        attn = ops.softmax(ops.activation(e, "tanh"))
        z = ops.add(_mm(ops.mul(attn, h_enc), self.mix.weight_a), pz_t)
        g = ops.linear(z, dec.weight_ih, dec.bias)
        if state is not None:
            g = ops.add(g, _mm(state.h_dec, dec.weight_hh))
        h_dec, c_dec = lstm_cell(g, None if state is None else state.c_dec)
        return h_dec, TPMState(h_enc, c_enc, h_dec, c_dec)

    def state_signature(self):
        return None if self._state is None else self._state.batch

    def reset_state(self) -> None:
        """Forget the kept encoder and decoder states: the next step starts from zeros."""
        self._state = None

    def state(self) -> dict[str, np.ndarray] | None:
        """Host copies of the kept ``h_enc``, ``c_enc``, ``h_dec``, ``c_dec`` (B, H), or
        None after a reset."""
        if self._state is None:
            return None
        return {k: getattr(self._state, k).numpy() for k in ("h_enc", "c_enc", "h_dec", "c_dec")}
