"""Variational head: reparameterised sample of a diagonal Gaussian, with a KL term."""

from __future__ import annotations

from .. import ops
from ..module import Module, register
from ..ops.vae import vae_kl, vae_sample
from ..tensor import Tensor


@register
class VAEHead(Module):
    """x (B, 2k) = [mu | logvar] -> (B, k); no parameters.

    Training: ``mu + exp(0.5 * logvar) * eps`` with eps ~ N(0, 1) drawn on the device (Box-Muller
    on the counter-based RNG; seed ``seed``, counter = number of sampling calls, so a rerun
    draws the same noise), and the loss term
    ``kld_mult * mean_b(-0.5 * sum_j(1 + logvar - mu^2 - exp(logvar)))`` in ``_extra_losses``
    (added by ``Model.loss``; replaced on every forward, empty in eval mode).
    Eval: the deterministic ``mu``, unless ``stochastic`` forces sampling (the seed's actor
    explores through this noise in research passes). ``last_eps`` is the noise of the last
    sample (a device tensor, (B, k)).

    .. note:: The default ``kld_mult`` 1e-3 is our choice: the seed names the multiplier
       (spec 9.6) without a value in the available sources.
    """

    def __init__(self, k: int, kld_mult: float = 1e-3, stochastic: bool = False, seed: int = 0):
        if k < 1 or kld_mult < 0:
            raise ValueError(f"VAEHead: need k >= 1 and kld_mult >= 0, got k={k}, "
                             f"kld_mult={kld_mult}")
        self.k, self.kld_mult, self.stochastic, self.seed = k, kld_mult, stochastic, seed
        self.calls = 0
        self.last_eps: Tensor | None = None
        self._extra_losses: list[Tensor] = []

    def config(self) -> dict:
        # `stochastic` is a run-time switch (research exploration), not part of the architecture
        return {"k": self.k, "kld_mult": self.kld_mult, "seed": self.seed}

    def forward(self, x: Tensor) -> Tensor:
        if len(x.shape) != 2 or x.shape[1] != 2 * self.k:
            raise ValueError(f"VAEHead({self.k}): input must be (B, {2 * self.k}) = "
                             f"[mu | logvar], got {x.shape}")
        self._extra_losses = []
        if self.training and self.kld_mult > 0:
            self._extra_losses = [vae_kl(x, self.kld_mult)]
        if not (self.training or self.stochastic):
            return ops.slice_cols(x, 0, self.k)
        seed, counter = self.next_args()
        y, self.last_eps = vae_sample(x, seed, counter, next_args=self.next_args)
        return y

    _plan_counters = ("calls",)

    def next_args(self) -> tuple[int, int]:
        """Advance the sampling counter: (seed, counter) of the next noise draw."""
        self.calls += 1
        return self.seed, self.calls
