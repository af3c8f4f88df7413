"""Reductions to a scalar and the MSE loss (mean-reduced like torch.nn.MSELoss)."""

from __future__ import annotations

from ..launch import f32, i32, launch
from ..tensor import Tensor, make_output

FILE = "reduce.cl"
WG = 256  # must match reduce.cl


def sum_all(x: Tensor, scale_by: float = 1.0) -> Tensor:
    """scale_by * sum of all elements, shape (1,)."""
    out = make_output((1,), (x,), "sum")
    launch(out.device, FILE, "sum_fwd", WG, x.buf, out.buf, i32(x.numel), f32(scale_by),
           local_size=(WG,))
    if out.requires_grad:
        out._backward = lambda: launch(out.device, FILE, "sum_bwd", x.numel, out.grad_buf,
                                       x.ensure_grad(), f32(scale_by))
    return out


def mean(x: Tensor) -> Tensor:
    return sum_all(x, 1.0 / x.numel)


def mse_loss(pred: Tensor, target: Tensor) -> Tensor:
    """mean((pred - target)^2) over all elements, shape (1,); no gradient to the target."""
    if pred.shape != target.shape:
        raise ValueError(f"mse_loss: prediction {pred.shape} and target {target.shape} differ")
    out = make_output((1,), (pred,), "mse")
    n = i32(pred.numel)
    launch(out.device, FILE, "mse_fwd", WG, pred.buf, target.buf, out.buf, n, local_size=(WG,))
    if out.requires_grad:
        out._backward = lambda: launch(out.device, FILE, "mse_bwd", pred.numel, pred.buf,
                                       target.buf, out.grad_buf, pred.ensure_grad(), n)
    return out
