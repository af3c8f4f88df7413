"""Batch normalisation: torch's BatchNorm1d, or the seed's running per-element normaliser."""

from __future__ import annotations

import numpy as np

from ..module import Module, register
from ..ops.norm import batch_norm, norm_with_stats, running_norm
from ..tensor import Parameter, StateTensor, Tensor

MODES = ("batch", "running")


@register
class BatchNorm(Module):
    """Per-feature normalisation of x (..., n): features are the last dimension, every leading
    index is a sample. ``gamma`` (init 1) and ``beta`` (init 0) are (n,); the statistics
    ``running_mean`` / ``running_var`` (n,) are state saved with the weights.

    * ``mode="batch"`` (torch BatchNorm1d): training normalises with the batch mean and biased
      variance and moves the running stats by ``momentum`` towards (mean, unbiased variance);
      eval normalises with the running stats. Training needs >= 2 samples.
    * ``mode="running"`` (the seed's BatchNorm, spec 9.1): every forward, in training and in
      inference alike, updates the stats sample by sample (in row order) with
      ``N = min(count, window)``::

          mean = (mean*(N-1) + x) / N;  var = (var*(N-1) + (x - mean)^2) / N
          y = gamma * (x - mean) / sqrt(var + eps) + beta     (with the updated stats)

      ``count`` (state, (1,)) holds min(samples seen, window). The first samples therefore
      get a cumulative average (N = 1, 2, ...: the first sample sets mean = x, var = 0 and
      maps to beta) instead of the seed's fixed window diluting zero-initialised stats; from
      sample ``window`` on the rule is exactly the seed's. The gradient treats the stats as
      constants: dx = dy * gamma / sqrt(var + eps).

    ``momentum`` applies to mode "batch" only, ``window`` to mode "running" only.
    Adam-mini blocks: one for ``gamma``, one for ``beta``. :meth:`stats` returns the
    statistics for a later RevIN de-normalisation.
    """

    def __init__(self, n: int, mode: str = "batch", momentum: float = 0.1, eps: float = 1e-5,
                 window: int = 10000):
        if mode not in MODES:
            raise ValueError(f"BatchNorm: unknown mode {mode!r}; valid: {', '.join(MODES)}")
        if n < 1 or window < 1 or eps <= 0 or not 0.0 <= momentum <= 1.0:
            raise ValueError(f"BatchNorm: need n >= 1, window >= 1, eps > 0, momentum in [0, 1]; "
                             f"got n={n}, window={window}, eps={eps}, momentum={momentum}")
        self.n, self.mode, self.momentum, self.eps, self.window = n, mode, momentum, eps, window
        self.gamma = Parameter(np.ones(n, np.float32), "weight", n)
        self.beta = Parameter(np.zeros(n, np.float32), "bias", n)
        self.running_mean = StateTensor.of(np.zeros(n, np.float32), "bn.running_mean")
        self.running_var = StateTensor.of(np.ones(n, np.float32), "bn.running_var")
        if mode == "running":
            self.count = StateTensor.of(np.zeros(1, np.float32), "bn.count")

    def config(self) -> dict:
        return {"n": self.n, "mode": self.mode, "momentum": self.momentum, "eps": self.eps,
                "window": self.window}

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.n:
            raise ValueError(f"BatchNorm({self.n}): input last dimension is {x.shape[-1]}")
        if self.mode == "running":
            return running_norm(x, self.gamma, self.beta, self.running_mean, self.running_var,
                                self.count, self.window, self.eps)
        if self.training:
            return batch_norm(x, self.gamma, self.beta, self.running_mean, self.running_var,
                              self.eps, self.momentum)
        return norm_with_stats(x, self.gamma, self.beta, self.running_mean, self.running_var,
                               self.eps)

    def stats(self) -> dict[str, np.ndarray]:
        """Host copies: ``mean``, ``var`` (n,) and, in running mode, ``count``."""
        out = {"mean": self.running_mean.numpy(), "var": self.running_var.numpy()}
        if self.mode == "running":
            out["count"] = self.count.numpy()
        return out
