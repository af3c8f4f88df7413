"""The CSCM short-term feature block of the seed's TPM encoder (spec 1.2 step 1)."""

from __future__ import annotations

from .. import ops
from ..module import Module, child_seed, register
from ..tensor import Tensor
from .conv import Conv1D


@register
class CSCM(Module):
    """Per-bar convolution pyramid: each of ``bars`` bars has its own weights.

    x (R, bars*n_vars) bar-major (bar l, feature v at column l*n_vars + v) -> same shape.
    For every bar separately (u = that bar's n_vars values)::

        y_0 = sigmoid(W_0 u + b_0)                      n_vars -> n_vars
        y_k = sigmoid(W_k y_{k-1} + b_k)                levels[k-1] sizes: 9 -> 6 -> 5 -> 4 -> 1
        out = W_out [y_1; ...; y_K] + b_out              sum(levels) = 16 -> n_vars (linear)

    Each map is a :class:`Conv1D` with ``n_vars = bars`` independent variables whose window
    spans the whole previous level (one position), i.e. a small dense layer per bar. Parameter
    names: ``inp.*``, ``pyramid.<k>.*``, ``out.*``. Adam-mini: one block per filter (row),
    biases per element (Conv1D).

    .. note:: The seed's CSCM (CNeuronCSCMOCL) convolves along each level with windows
       {9, 6, 5, 4} and swapped size/count arguments; read per bar this is the pyramid above.
       We write each level as a full map of the previous level (window = its size), which is
       what a one-position convolution computes.
    """

    def __init__(self, bars: int = 120, n_vars: int = 9, levels: list[int] | tuple = (6, 5, 4, 1),
                 seed: int = 0):
        levels = [int(k) for k in levels]
        if bars < 1 or n_vars < 1 or not levels or min(levels) < 1:
            raise ValueError(f"CSCM: need bars >= 1, n_vars >= 1 and levels >= 1, got "
                             f"bars={bars}, n_vars={n_vars}, levels={levels}")
        self.bars, self.n_vars, self.levels, self.seed = bars, n_vars, levels, seed

        def conv(size_in, size_out, act, i):
            return Conv1D(size_in, size_in, size_out, n_vars=bars, independent=True,
                          activation=act, seed=child_seed(seed, 7, i))

        self.inp = conv(n_vars, n_vars, "sigmoid", 0)
        sizes = [n_vars, *levels]
        self.pyramid = [conv(sizes[k], sizes[k + 1], "sigmoid", k + 1)
                        for k in range(len(levels))]
        self.out = conv(sum(levels), n_vars, "none", len(levels) + 1)

    def config(self) -> dict:
        return {"bars": self.bars, "n_vars": self.n_vars, "levels": list(self.levels),
                "seed": self.seed}

    def forward(self, x: Tensor) -> Tensor:
        width = self.bars * self.n_vars
        if len(x.shape) != 2 or x.shape[1] != width:
            raise ValueError(f"CSCM({self.bars}x{self.n_vars}): input must be (R, {width}), "
                             f"got {x.shape}")
        rows = x.shape[0]

        def per_bar(t: Tensor) -> Tensor:  # (R, bars, 1, F) -> (R, bars, F)
            return ops.reshape(t, (rows, self.bars, t.shape[-1]))

        y = per_bar(self.inp(x))
        outs = []
        for conv in self.pyramid:
            y = per_bar(conv(y))
            outs.append(y)
        cat = outs[0] if len(outs) == 1 else ops.concat(outs)
        return ops.reshape(self.out(cat), (rows, width))
