"""Per-row volatility scaling (kernels/volscale.cl): forward-only ops for a path whose input needs
no gradient (a model's raw input feeding a fitted, frozen linear map).

``vol_scale`` divides chosen columns of each row by the row's mean absolute "range"
``s = mean_i(|x[i*nv+hi]| + |x[i*nv+lo]|) / 2 + eps`` and returns ``s``; ``vol_unscale``
multiplies chosen output columns by ``s`` again and applies a per-column affine map.
"""

from __future__ import annotations

from ..launch import f32, i32, launch
from ..tensor import Tensor, make_output

FILE = "volscale.cl"


def _no_grad_input(x: Tensor, op: str) -> None:
    if x.requires_grad:
        raise ValueError(f"{op}: forward-only op; its input must not need a gradient")


def vol_scale(x: Tensor, cmask: Tensor, n_vars: int, hi: int, lo: int,
              eps: float) -> tuple[Tensor, Tensor]:
    """x (B, groups*n_vars) -> (xs (B, groups*n_vars), s (B, 1)): ``xs = x / s`` in the
    columns whose variable index v (= column % n_vars) has ``cmask[v] != 0``."""
    _no_grad_input(x, "vol_scale")
    if len(x.shape) != 2 or x.shape[1] % n_vars or cmask.numel != n_vars:
        raise ValueError(f"vol_scale: input must be (B, groups*{n_vars}) with a {n_vars}-value "
                         f"mask, got {x.shape} and {cmask.numel}")
    if not (0 <= hi < n_vars and 0 <= lo < n_vars):
        raise ValueError(f"vol_scale: hi={hi}, lo={lo} must index one of {n_vars} variables")
    rows, n = x.shape
    xs = make_output(x.shape, (x,), "vol_scale")
    s = make_output((rows, 1), (x,), "vol_scale.s")
    launch(x.device, FILE, "vol_scale", rows, x.buf, cmask.buf, xs.buf, s.buf,
           i32(n // n_vars), i32(n_vars), i32(hi), i32(lo), f32(eps))
    return xs, s


def vol_unscale(r: Tensor, s: Tensor, tmask: Tensor, gain: Tensor, offset: Tensor) -> Tensor:
    """``y[b, j] = r[b, j] * (s[b] if tmask[j] else 1) * gain[j] + offset[j]``; r (B, n)."""
    _no_grad_input(r, "vol_unscale")
    if len(r.shape) != 2 or s.numel != r.shape[0] or not (
            tmask.numel == gain.numel == offset.numel == r.shape[1]):
        raise ValueError(f"vol_unscale: r {r.shape}, s {s.shape}, tmask/gain/offset "
                         f"{tmask.numel}/{gain.numel}/{offset.numel} do not fit")
    rows, n = r.shape
    y = make_output(r.shape, (r,), "vol_unscale")
    launch(r.device, FILE, "vol_unscale", (n, rows), r.buf, s.buf, tmask.buf, gain.buf,
           offset.buf, y.buf)
    return y
