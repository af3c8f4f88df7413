"""PLR long-term trend features (the seed's CNeuronPLROCL; spec 9.5)."""

from __future__ import annotations

from ..module import Module, register
from ..ops.plr import PLRSegments, plr
from ..tensor import Tensor


@register
class PLR(Module):
    """Piecewise linear representation of each variable's series; no parameters.

    Input (B, L*V) or (B, L, V) when ``time_major`` (bar-major: the seed's 120 bars x 9
    features, its "transpose = true"), else (B, V*L) or (B, V, L). Output: the same shape.

    Per variable, the turning points (TTP) are the first point, every running extreme that the
    series afterwards leaves by at least ``min_step`` in the opposite direction (a threshold
    zigzag; ties extend an extreme to the later point) and the last point. Each segment
    [t_s, t_{s+1}] between consecutive TTPs (both ends included, local time p = t - t_s)
    gets its least-squares line, written as the triplet (slope, intercept, (n-1)/L) at times
    3s, 3s+1, 3s+2 of the variable, for the first ``max_segments`` segments (default and
    maximum L // 3, in time order); the remaining times are zero. ``min_step`` applies to the
    values as given: feed the normalised series (the seed's TPM feeds the BatchNorm output).

    Gradient: the segmentation is piecewise constant in x (no gradient through the TTP
    choice); within it slope and intercept are linear in the values of their segment (a point
    shared by two segments receives from both); the length triplet entry has no gradient.
    :attr:`last_segments` keeps the last forward's turning points (``.host(device)``).
    """

    def __init__(self, length: int, n_vars: int, min_step: float = 0.2,
                 time_major: bool = True, max_segments: int | None = None):
        if length < 3 or n_vars < 1 or min_step <= 0:
            raise ValueError(f"PLR: need length >= 3, n_vars >= 1, min_step > 0; got "
                             f"length={length}, n_vars={n_vars}, min_step={min_step}")
        max_segments = length // 3 if max_segments is None else max_segments
        if not 1 <= max_segments <= length // 3:
            raise ValueError(f"PLR: max_segments={max_segments} must be in [1, length // 3 = "
                             f"{length // 3}]")
        self.length, self.n_vars, self.min_step = length, n_vars, min_step
        self.time_major, self.max_segments = time_major, max_segments
        self.last_segments: PLRSegments | None = None

    def config(self) -> dict:
        return {"length": self.length, "n_vars": self.n_vars, "min_step": self.min_step,
                "time_major": self.time_major, "max_segments": self.max_segments}

    def forward(self, x: Tensor) -> Tensor:
        per_sample = self.length * self.n_vars
        inner = (self.length, self.n_vars) if self.time_major else (self.n_vars, self.length)
        if not ((len(x.shape) == 2 and x.shape[1] == per_sample)
                or (len(x.shape) == 3 and x.shape[1:] == inner)):
            raise ValueError(f"PLR: input must be (B, {per_sample}) or (B, {inner[0]}, "
                             f"{inner[1]}), got {x.shape}")
        y, self.last_segments = plr(x, self.length, self.n_vars, self.time_major,
                                    self.min_step, self.max_segments)
        return y
