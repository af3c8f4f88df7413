"""Piecewise linear representation (PLR) of each variable's series (kernels/plr.cl)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyopencl as cl

from ..launch import f32, i32, launch
from ..tensor import Tensor, make_output

FILE = "plr.cl"


@dataclass
class PLRSegments:
    """Device buffers of a PLR forward: turning points (B, V, S+1) and segment counts (B, V)."""

    ttp_buf: cl.Buffer
    nseg_buf: cl.Buffer
    batch: int
    n_vars: int
    max_segments: int

    def host(self, device) -> list[list[list[int]]]:
        """Turning-point times per sample and variable (each list has nseg + 1 entries)."""
        b, v, s = self.batch, self.n_vars, self.max_segments
        ttp = np.empty((b, v, s + 1), np.int32)
        nseg = np.empty((b, v), np.int32)
        cl.enqueue_copy(device.queue, ttp, self.ttp_buf, is_blocking=False)
        cl.enqueue_copy(device.queue, nseg, self.nseg_buf, is_blocking=True)
        return [[ttp[i, j, : nseg[i, j] + 1].tolist() for j in range(v)] for i in range(b)]


def plr(x: Tensor, length: int, n_vars: int, time_major: bool, min_step: float,
        max_segments: int) -> tuple[Tensor, PLRSegments]:
    """PLR features of x (B, L*V) read as (B, L, V) when ``time_major`` else (B, V, L).

    Per variable: turning points t_0 = 0 < t_1 < ... (threshold zigzag with ``min_step``, last
    point L-1), then for segment s = [t_s, t_{s+1}] (n = t_{s+1} - t_s + 1 points, p = t - t_s)
    the least-squares line, written at times 3s, 3s+1, 3s+2 of the variable::

        slope = sum_p (p - pbar) y_p / sum_p (p - pbar)^2,  intercept = ybar - slope * pbar,
        length = (n - 1) / L

    for the first ``max_segments`` segments (<= L // 3); other times are zero. The output has
    x's shape. Gradient: the segmentation is held fixed (piecewise constant in x), slope and
    intercept are linear in the segment's values; the length has none.
    """
    if x.numel % (length * n_vars) or x.numel == 0:
        raise ValueError(f"plr: input {x.shape} is not a batch of {length} x {n_vars} series")
    if not 1 <= max_segments <= length // 3:
        raise ValueError(f"plr: max_segments={max_segments} must be in [1, L // 3 = "
                         f"{length // 3}]")
    batch = x.numel // (length * n_vars)
    ts, vs = (n_vars, 1) if time_major else (1, length)
    out = make_output(x.shape, (x,), "plr")
    dev = out.device
    ttp = dev.alloc(4 * batch * n_vars * (max_segments + 1), "activations", dev.owner)
    nseg = dev.alloc(4 * batch * n_vars, "activations", dev.owner)
    launch(dev, FILE, "plr_fwd", (n_vars, batch), x.buf, out.buf, ttp, nseg, i32(length),
           i32(max_segments), i32(ts), i32(vs), f32(min_step))
    if out.requires_grad:
        out._backward = lambda: launch(dev, FILE, "plr_bwd", (n_vars, batch), out.grad_buf, ttp,
                                       nseg, x.ensure_grad(), i32(length), i32(max_segments),
                                       i32(ts), i32(vs))
    return out, PLRSegments(ttp, nseg, batch, n_vars, max_segments)


__all__ = ["PLRSegments", "plr"]
