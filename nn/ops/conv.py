"""1-D convolution per variable (no padding), with shared or per-variable weights."""

from __future__ import annotations

from ..launch import i32, launch
from ..tensor import Tensor, make_output

FILE = "conv.cl"
CONV_C = 16  # outputs (weight-gradient columns) per work-item (kernels/conv.cl)
CONV_FW = 4  # filters per work-item of the weight gradient


def conv1d(x: Tensor, weight: Tensor, bias: Tensor | None, step: int) -> Tensor:
    """x (B, V, L) -> (B, V, U, F) with U = (L - W) // step + 1.

    ``weight`` is (F, W) shared by all variables, or (V, F, W) with independent weights per
    variable; ``bias`` is (F,) or (V, F) to match, or None.
    """
    if len(x.shape) != 3:
        raise ValueError(f"conv1d: input must be (batch, variables, length), got {x.shape}")
    batch, n_vars, length = x.shape
    indep = len(weight.shape) == 3
    if indep and weight.shape[0] != n_vars:
        raise ValueError(f"conv1d: independent weights for {weight.shape[0]} variables, "
                         f"input has {n_vars}")
    filters, window = weight.shape[-2:]
    if bias is not None and bias.shape != weight.shape[:-1]:
        raise ValueError(f"conv1d: bias shape {bias.shape} != {weight.shape[:-1]}")
    if step < 1 or window > length:
        raise ValueError(f"conv1d: window {window} / step {step} do not fit length {length}")
    positions = (length - window) // step + 1
    parents = (x, weight) if bias is None else (x, weight, bias)
    out = make_output((batch, n_vars, positions, filters), parents, "conv1d")
    dev = out.device
    bias_buf = bias.buf if bias is not None else weight.buf
    launch(dev, FILE, "conv1d_fwd", (-(-filters // CONV_C), positions, batch * n_vars), x.buf,
           weight.buf, bias_buf, out.buf, i32(n_vars), i32(length), i32(window), i32(step),
           i32(indep), i32(bias is not None), i32(filters))
    if out.requires_grad:
        def _backward():
            dy = out.grad_buf
            if x.requires_grad:
                launch(dev, FILE, "conv1d_bwd_input", (-(-length // CONV_C), batch * n_vars),
                       dy, weight.buf, x.ensure_grad(), i32(n_vars), i32(positions),
                       i32(filters), i32(window), i32(step), i32(indep), i32(length))
            w_grad = weight.requires_grad
            b_grad = bias is not None and bias.requires_grad
            if w_grad or b_grad:
                # an unneeded weight gradient goes to scratch
                dw = (weight.ensure_grad() if w_grad
                      else dev.alloc(weight.nbytes, "activations", "conv1d.scratch"))
                db = bias.ensure_grad() if b_grad else dw
                launch(dev, FILE, "conv1d_bwd_weight",
                       (-(-window // CONV_C), -(-filters // CONV_FW), n_vars if indep else 1),
                       dy, x.buf, dw, db, i32(batch), i32(n_vars), i32(length), i32(positions),
                       i32(window), i32(step), i32(indep), i32(b_grad), i32(filters))
        out._backward = _backward
    return out

