"""1-D convolution layer over several variables (the seed's CNeuronConvOCL)."""

from __future__ import annotations

import numpy as np

from .. import ops
from ..module import Module, register, uniform_init
from ..ops.conv import conv1d
from ..tensor import Parameter, Tensor


@register
class Conv1D(Module):
    """Convolution along the length of each variable, without padding.

    Input (B, n_vars, L), or (B, n_vars * L) read as that; output (B, n_vars, U, filters)
    with U = (L - window) // step + 1 and the filters contiguous::

        y[b, v, u, f] = act(bias[f] + sum_j weight[f, j] * x[b, v, u*step + j])

    ``weight`` is (filters, window), shared by all variables, or (n_vars, filters, window)
    with ``independent`` weights per variable (the seed's CSCM gives each of its 120 bars its
    own conv weights); ``bias`` is (filters,) or (n_vars, filters) to match.
    Adam-mini blocks: one per filter row (``window`` weights); the bias keeps per-element
    Adam. Initialisation U(-1/sqrt(window), 1/sqrt(window)) like torch.
    """

    def __init__(self, window: int, step: int, filters: int, n_vars: int = 1,
                 independent: bool = False, activation: str = "none", bias: bool = True,
                 seed: int = 0):
        if min(window, step, filters, n_vars) < 1:
            raise ValueError(f"Conv1D: window, step, filters and n_vars must be >= 1, got "
                             f"{window}, {step}, {filters}, {n_vars}")
        if activation not in ops.ACTIVATIONS:
            raise ValueError(f"Conv1D: unknown activation {activation!r}; valid: "
                             f"{', '.join(ops.ACTIVATIONS)}")
        self.window, self.step, self.filters, self.n_vars = window, step, filters, n_vars
        self.independent, self.activation, self.seed = independent, activation, seed
        lead = (n_vars, filters) if independent else (filters,)
        rng = np.random.default_rng(seed)
        self.weight = Parameter(uniform_init(rng, (*lead, window), window), "weight", window)
        self.bias = Parameter(uniform_init(rng, lead, window), "bias", 1) if bias else None

    def config(self) -> dict:
        return {"window": self.window, "step": self.step, "filters": self.filters,
                "n_vars": self.n_vars, "independent": self.independent,
                "activation": self.activation, "bias": self.bias is not None, "seed": self.seed}

    def output_length(self, length: int) -> int:
        """Positions U for an input of ``length`` per variable."""
        return (length - self.window) // self.step + 1

    def forward(self, x: Tensor) -> Tensor:
        if len(x.shape) == 2 and x.shape[1] % self.n_vars == 0:
            x = ops.reshape(x, (x.shape[0], self.n_vars, x.shape[1] // self.n_vars))
        if len(x.shape) != 3 or x.shape[1] != self.n_vars or x.shape[2] < self.window:
            raise ValueError(f"Conv1D: input must be (B, {self.n_vars}, L >= {self.window}), "
                             f"got {x.shape}")
        return ops.activation(conv1d(x, self.weight, self.bias, self.step), self.activation)
