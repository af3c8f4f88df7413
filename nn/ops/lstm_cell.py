"""LSTM recurrence over a sequence: per step one GEMM with ``W_hh`` and one fused cell kernel.

The input projections ``xw = x @ W_ih^T + bias`` for all T*B rows come in as one tensor (one
GEMM upstream, see :class:`neurofx.nn.layers.LSTM`); this op adds the recurrent term step by
step and runs the gates. Backward is full backprop through time: per step (last to first) the
fused cell backward, then one GEMM ``dh_{t-1} = dG_t @ W_hh``; ``dW_hh`` is a single GEMM over
all steps at the end. Gate order i, f, g, o (torch).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyopencl as cl

from ..gemm import get_gemm
from ..launch import accumulate, i32, launch
from ..tensor import Tensor, make_output

FILE = "lstm.cl"


@dataclass
class LSTMState:
    """Final (h, c) device buffers of a recurrence, each (B, H): the next call's start."""

    h_buf: cl.Buffer
    c_buf: cl.Buffer
    batch: int


def lstm_recurrence(xw: Tensor, w_hh: Tensor, steps: int, batch: int,
                    init: LSTMState | None = None) -> tuple[Tensor, LSTMState]:
    """Hidden states (T, B, H) of an LSTM from input projections ``xw`` (T*B, 4H).

    ``w_hh`` is (4H, H). ``init`` is the starting state (zero when None); it is treated as a
    constant: no gradient flows into it (sequence mode starts at zero, step mode truncates).
    Returns the output tensor and the final state.
    """
    four_h, hidden = w_hh.shape
    if four_h != 4 * hidden:
        raise ValueError(f"lstm: weight_hh shape {w_hh.shape} is not (4H, H)")
    if xw.shape != (steps * batch, four_h):
        raise ValueError(f"lstm: input projections {xw.shape} != ({steps * batch}, {four_h})")
    if init is not None and init.batch != batch:
        raise ValueError(f"lstm: state batch {init.batch} != input batch {batch}")
    dev = xw.device
    gemm = get_gemm(dev)
    out = make_output((steps, batch, hidden), (xw, w_hh), "lstm")
    store = out.requires_grad
    owner = dev.owner
    rows = steps * batch
    c_all = dev.alloc(4 * rows * hidden, "activations", owner)
    h_step = dev.alloc(4 * batch * hidden, "activations", owner)
    hh = dev.alloc(4 * batch * four_h, "activations", owner)
    gates = dev.alloc(4 * rows * four_h, "activations", owner) if store else h_step
    hprev = dev.alloc(4 * rows * hidden, "activations", owner) if store else h_step
    if store:  # slot 0 of h_{t-1} is the initial state (for dW_hh)
        if init is None:
            dev.fill(hprev, 0.0, 0, 4 * batch * hidden)
        else:
            dev.copy(hprev, init.h_buf, 4 * batch * hidden)
    grid = (hidden, batch)
    for t in range(steps):
        h_in = (init.h_buf if init is not None else None) if t == 0 else h_step
        if h_in is not None:
            gemm.gemm(h_in, w_hh.buf, hh, batch, four_h, hidden, trans_b=True)
        if t == 0:
            c_src, c_off, has_c = (init.c_buf, 0, 1) if init is not None else (c_all, 0, 0)
        else:
            c_src, c_off, has_c = c_all, (t - 1) * batch * hidden, 1
        launch(dev, FILE, "lstm_cell_fwd", grid, xw.buf, hh, i32(h_in is not None), c_src,
               i32(c_off), i32(has_c), gates, c_all, out.buf, h_step, hprev, i32(t),
               i32(steps), i32(store))
    # the last step's c is a slice of c_all: copy it out so the state owns a whole buffer
    c_last = dev.alloc(4 * batch * hidden, "other", owner)
    dev.copy(c_last, c_all, 4 * batch * hidden, src_offset=4 * (steps - 1) * batch * hidden)
    state = LSTMState(h_step, c_last, batch)
    if store:
        def _backward():
            dg_all = dev.alloc(4 * rows * four_h, "activations", owner)
            dg_step = dev.alloc(4 * batch * four_h, "activations", owner)
            dh_rec = dev.alloc(4 * batch * hidden, "activations", owner)
            dc = dev.zeros(batch * hidden, "activations", owner)
            for t in reversed(range(steps)):
                if t == 0:
                    c_src, c_off, has_c = ((init.c_buf, 0, 1) if init is not None
                                           else (c_all, 0, 0))
                else:
                    c_src, c_off, has_c = c_all, (t - 1) * batch * hidden, 1
                launch(dev, FILE, "lstm_cell_bwd", grid, out.grad_buf, dh_rec,
                       i32(t < steps - 1), gates, c_all, c_src, i32(c_off), i32(has_c), dc,
                       dg_step, dg_all, i32(t))
                if t > 0:  # dh_{t-1} = dG_t (B, 4H) @ W_hh (4H, H)
                    gemm.gemm(dg_step, w_hh.buf, dh_rec, batch, hidden, four_h)
            if xw.requires_grad:
                accumulate(xw.ensure_grad(), dg_all, rows * four_h, dev)
            if w_hh.requires_grad:  # dW_hh (4H, H) += dG^T (4H, T*B) @ h_prev (T*B, H)
                gemm.gemm(dg_all, hprev, w_hh.ensure_grad(), four_h, hidden, rows,
                          trans_a=True, accumulate=True)
        out._backward = _backward
    return out, state


def zero_state(device, batch: int, hidden: int) -> LSTMState:
    """A zeroed (h, c) state for ``batch`` rows."""
    return LSTMState(device.zeros(batch * hidden, "other", device.owner),
                     device.zeros(batch * hidden, "other", device.owner), batch)


__all__ = ["LSTMState", "lstm_recurrence", "zero_state"]
