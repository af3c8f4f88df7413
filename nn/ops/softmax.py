"""Softmax over k contiguous heads of the last dimension."""

from __future__ import annotations

from ..launch import i32, launch
from ..tensor import Tensor, make_output


def softmax(x: Tensor, heads: int = 1) -> Tensor:
    """Independent softmax over ``heads`` contiguous blocks of each row's last dimension."""
    last = x.shape[-1]
    if heads < 1 or last % heads:
        raise ValueError(f"softmax: {heads} heads do not divide the last dimension {last}")
    block = last // heads
    out = make_output(x.shape, (x,), "softmax")
    launch(out.device, "softmax.cl", "softmax_fwd", x.numel // block, x.buf, out.buf, i32(block))
    if out.requires_grad:
        out._backward = lambda: launch(out.device, "softmax.cl", "softmax_bwd", x.numel // block,
                                       out.buf, out.grad_buf, x.ensure_grad(), i32(block))
    return out
