"""Layout ops: reshape (a view), concat / split / slice along the last dimension."""

from __future__ import annotations

import numpy as np

from ..launch import i32, launch
from ..tensor import Tensor, make_output


def reshape(x: Tensor, shape) -> Tensor:
    """Same buffer, new shape; the gradient buffer is shared as well (no copy, no kernel)."""
    shape = tuple(int(s) for s in shape)
    if -1 in shape:
        known = int(np.prod([s for s in shape if s != -1]))
        shape = tuple(x.numel // known if s == -1 else s for s in shape)
    if int(np.prod(shape)) != x.numel:
        raise ValueError(f"reshape: cannot view {x.shape} as {shape}")
    out = make_output(shape, (x,), "reshape", buf=x.buf)
    if out.requires_grad:
        out.grad_buf = x.ensure_grad()
    return out


def _rows_cols(t: Tensor) -> tuple[int, int]:
    cols = t.shape[-1] if t.shape else 1
    return t.numel // max(cols, 1), cols


def _copy_cols(dev, src, dst, rows, src_cols, dst_cols, src_off, dst_off, ncols, acc):
    launch(dev, "shape.cl", "copy_cols", (ncols, rows), src, dst, i32(src_cols), i32(dst_cols),
           i32(src_off), i32(dst_off), i32(acc))


def concat(tensors: list[Tensor]) -> Tensor:
    """Concatenate along the last dimension (leading dimensions must agree)."""
    lead = tensors[0].shape[:-1]
    for t in tensors:
        if t.shape[:-1] != lead:
            raise ValueError(f"concat: leading shapes differ {t.shape} vs {tensors[0].shape}")
    widths = [t.shape[-1] for t in tensors]
    total = sum(widths)
    out = make_output((*lead, total), tuple(tensors), "concat")
    rows = out.numel // total
    offsets = np.cumsum([0, *widths[:-1]])
    for t, off, w in zip(tensors, offsets, widths, strict=True):
        _copy_cols(out.device, t.buf, out.buf, rows, w, total, 0, int(off), w, 0)
    if out.requires_grad:
        def _backward():
            for t, off, w in zip(tensors, offsets, widths, strict=True):
                if t.requires_grad:
                    _copy_cols(out.device, out.grad_buf, t.ensure_grad(), rows, total, w,
                               int(off), 0, w, 1)
        out._backward = _backward
    return out


def slice_cols(x: Tensor, start: int, stop: int) -> Tensor:
    """x[..., start:stop] as a new tensor."""
    rows, cols = _rows_cols(x)
    if not 0 <= start < stop <= cols:
        raise ValueError(f"slice_cols: [{start}:{stop}] outside last dimension {cols}")
    w = stop - start
    out = make_output((*x.shape[:-1], w), (x,), "slice")
    _copy_cols(out.device, x.buf, out.buf, rows, cols, w, start, 0, w, 0)
    if out.requires_grad:
        out._backward = lambda: _copy_cols(out.device, out.grad_buf, x.ensure_grad(), rows, w,
                                           cols, 0, start, w, 1)
    return out


def split(x: Tensor, sizes: list[int]) -> list[Tensor]:
    """Split the last dimension into consecutive pieces of the given sizes."""
    if sum(sizes) != x.shape[-1]:
        raise ValueError(f"split: sizes {sizes} do not sum to {x.shape[-1]}")
    bounds = np.cumsum([0, *sizes])
    return [slice_cols(x, int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
