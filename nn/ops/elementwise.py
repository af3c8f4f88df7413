"""Element-wise ops: add/sub/scale, mul, bias add, activations, dropout."""

from __future__ import annotations

from ..launch import accumulate, f32, i32, launch, replay_args, u32
from ..tensor import Tensor, make_output

FILE = "elementwise.cl"
ACTIVATIONS = {"none": 0, "tanh": 1, "sigmoid": 2, "relu": 3, "leaky_relu": 4, "softplus": 5}


def _check_same(a: Tensor, b: Tensor, op: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{op}: shapes differ {a.shape} vs {b.shape}")


def _axpby(a: Tensor, b: Tensor, alpha: float, beta: float, op: str) -> Tensor:
    _check_same(a, b, op)
    out = make_output(a.shape, (a, b), op)
    launch(out.device, FILE, "axpby_fwd", a.numel, a.buf, b.buf, out.buf, f32(alpha), f32(beta))
    if out.requires_grad:
        def _backward():
            for parent, coef in ((a, alpha), (b, beta)):
                if parent.requires_grad:
                    accumulate(parent.ensure_grad(), out.grad_buf, a.numel, out.device, coef)
        out._backward = _backward
    return out


def add(a: Tensor, b: Tensor) -> Tensor:
    return _axpby(a, b, 1.0, 1.0, "add")


def sub(a: Tensor, b: Tensor) -> Tensor:
    return _axpby(a, b, 1.0, -1.0, "sub")


def scale(a: Tensor, alpha: float) -> Tensor:
    """alpha * a."""
    out = make_output(a.shape, (a,), "scale")
    launch(out.device, FILE, "axpby_fwd", a.numel, a.buf, a.buf, out.buf, f32(alpha), f32(0.0))
    if out.requires_grad:
        out._backward = lambda: accumulate(a.ensure_grad(), out.grad_buf, a.numel, a.device, alpha)
    return out


def mul(a: Tensor, b: Tensor) -> Tensor:
    """Element-wise product."""
    _check_same(a, b, "mul")
    out = make_output(a.shape, (a, b), "mul")
    launch(out.device, FILE, "mul_fwd", a.numel, a.buf, b.buf, out.buf)
    if out.requires_grad:
        def _backward():
            if a.requires_grad:
                launch(out.device, FILE, "mul_bwd", a.numel, out.grad_buf, b.buf, a.ensure_grad())
            if b.requires_grad:
                launch(out.device, FILE, "mul_bwd", a.numel, out.grad_buf, a.buf, b.ensure_grad())
        out._backward = _backward
    return out


def bias_add(x: Tensor, bias: Tensor) -> Tensor:
    """x (..., n) + bias (n,) broadcast over leading dimensions."""
    n = bias.numel
    if x.shape[-1] != n:
        raise ValueError(f"bias_add: last dimension {x.shape[-1]} != bias size {n}")
    out = make_output(x.shape, (x, bias), "bias_add")
    launch(out.device, FILE, "bias_add_fwd", x.numel, x.buf, bias.buf, out.buf, i32(n))
    if out.requires_grad:
        def _backward():
            if x.requires_grad:
                accumulate(x.ensure_grad(), out.grad_buf, x.numel, x.device)
            if bias.requires_grad:
                launch(out.device, FILE, "bias_add_bwd", -(-n // 8), out.grad_buf,
                       bias.ensure_grad(), i32(x.numel // n), i32(n))
        out._backward = _backward
    return out


def activation(x: Tensor, kind: str) -> Tensor:
    """none / tanh / sigmoid / relu / leaky_relu (slope 0.01) / softplus."""
    try:
        code = ACTIVATIONS[kind]
    except KeyError:
        raise ValueError(
            f"unknown activation {kind!r}; valid: {', '.join(ACTIVATIONS)}") from None
    if code == 0:
        return x
    out = make_output(x.shape, (x,), kind)
    launch(out.device, FILE, "act_fwd", x.numel, x.buf, out.buf, i32(code))
    if out.requires_grad:
        out._backward = lambda: launch(out.device, FILE, "act_bwd", x.numel, x.buf, out.buf,
                                       out.grad_buf, x.ensure_grad(), i32(code))
    return out


def dropout(x: Tensor, p: float, seed: int, counter: int, next_args=None) -> Tensor:
    """Inverted dropout with a counter-based device RNG: same (seed, counter) -> same mask.
    ``next_args() -> (seed, counter)``: what a captured plan calls at each replay
    (see :func:`neurofx.nn.launch.replay_args`)."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    out = make_output(x.shape, (x,), "dropout")
    mask = out.device.alloc(x.nbytes, "activations", "dropout.mask")
    launch(out.device, FILE, "dropout_fwd", x.numel, x.buf, out.buf, mask, f32(p),
           u32(seed & 0xFFFFFFFF), u32(counter & 0xFFFFFFFF),
           dynamic=None if next_args is None else replay_args(next_args, 4))
    if out.requires_grad:
        out._backward = lambda: launch(out.device, FILE, "mul_bwd", x.numel, out.grad_buf, mask,
                                       x.ensure_grad())
    return out


__all__ = ["ACTIVATIONS", "accumulate", "activation", "add", "bias_add", "dropout", "mul",
           "scale", "sub"]
