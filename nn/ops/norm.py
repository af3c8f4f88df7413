"""Batch normalisation over rows (features = last dimension): batch statistics, given
statistics, and the seed's running per-element normaliser. Statistics live in device buffers
that the forward kernels update in place (no host round trip)."""

from __future__ import annotations

from ..launch import f32, i32, launch
from ..tensor import Tensor, make_output

FILE = "norm.cl"


def _rows(x: Tensor, gamma: Tensor, beta: Tensor, op: str) -> tuple[int, int]:
    n = gamma.numel
    if x.shape[-1] != n or beta.numel != n:
        raise ValueError(f"{op}: input last dimension {x.shape[-1]} != {n} features")
    return x.numel // n, n


def _backward(kernel: str, x, gamma, beta, out, xhat, inv, rows, n):
    dev = out.device

    def run():
        need_dx = x.requires_grad
        need_dp = gamma.requires_grad and beta.requires_grad
        dx = x.ensure_grad() if need_dx else xhat
        dg = gamma.ensure_grad() if need_dp else xhat
        db = beta.ensure_grad() if need_dp else xhat
        launch(dev, FILE, kernel, n, out.grad_buf, xhat, inv, gamma.buf, dx, dg, db, i32(rows),
               i32(need_dx), i32(need_dp))
    return run


def batch_norm(x: Tensor, gamma: Tensor, beta: Tensor, running_mean: Tensor,
               running_var: Tensor, eps: float, momentum: float, update: bool = True) -> Tensor:
    """Normalise with the batch's mean and biased variance per feature; when ``update`` the
    running stats move by ``momentum`` towards (mean, unbiased variance). Needs >= 2 rows."""
    rows, n = _rows(x, gamma, beta, "batch_norm")
    if rows < 2:
        raise ValueError(f"batch_norm: training needs at least 2 rows per feature, got {rows}; "
                         "use eval mode or mode='running' for single samples")
    out = make_output(x.shape, (x, gamma, beta), "batch_norm")
    dev = out.device
    xhat = dev.alloc(4 * x.numel, "activations", dev.owner)
    inv = dev.alloc(4 * n, "activations", dev.owner)
    launch(dev, FILE, "bn_batch_fwd", n, x.buf, gamma.buf, beta.buf, out.buf, xhat, inv,
           running_mean.buf, running_var.buf, i32(rows), f32(eps), f32(momentum), i32(update))
    if out.requires_grad:
        out._backward = _backward("bn_batch_bwd", x, gamma, beta, out, xhat, inv, rows, n)
    return out


def norm_with_stats(x: Tensor, gamma: Tensor, beta: Tensor, mean: Tensor, var: Tensor,
                    eps: float) -> Tensor:
    """gamma * (x - mean) / sqrt(var + eps) + beta with constant per-feature stats."""
    rows, n = _rows(x, gamma, beta, "norm_with_stats")
    out = make_output(x.shape, (x, gamma, beta), "batch_norm_eval")
    dev = out.device
    xhat = dev.alloc(4 * x.numel, "activations", dev.owner)
    inv = dev.alloc(4 * x.numel, "activations", dev.owner)
    launch(dev, FILE, "bn_stats_fwd", (n, rows), x.buf, gamma.buf, beta.buf, mean.buf, var.buf,
           out.buf, xhat, inv, f32(eps))
    if out.requires_grad:
        out._backward = _backward("bn_const_bwd", x, gamma, beta, out, xhat, inv, rows, n)
    return out


def running_norm(x: Tensor, gamma: Tensor, beta: Tensor, mean: Tensor, var: Tensor,
                 count: Tensor, window: int, eps: float) -> Tensor:
    """The seed's running normaliser (spec 9.1): rows update the per-feature stats in order,
    each row is normalised with the stats that include it. The gradient treats the stats as
    constants. ``count`` (1,) holds min(rows seen, window)."""
    rows, n = _rows(x, gamma, beta, "running_norm")
    out = make_output(x.shape, (x, gamma, beta), "running_norm")
    dev = out.device
    xhat = dev.alloc(4 * x.numel, "activations", dev.owner)
    inv = dev.alloc(4 * x.numel, "activations", dev.owner)
    launch(dev, FILE, "bn_running_fwd", -(-n // 8), x.buf, gamma.buf, beta.buf, mean.buf,
           var.buf, count.buf, out.buf, xhat, inv, i32(rows), f32(window), f32(eps), i32(n))
    launch(dev, FILE, "bn_running_count", 1, count.buf, i32(rows), f32(window))
    if out.requires_grad:
        out._backward = _backward("bn_const_bwd", x, gamma, beta, out, xhat, inv, rows, n)
    return out
