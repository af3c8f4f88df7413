"""Variational head: reparameterised sample of a diagonal Gaussian, with a KL term."""

from __future__ import annotations

import numpy as np
import pyopencl as cl

from .. import ops
from ..device import get_device
from ..module import Module, register
from ..ops.vae import vae_kl, vae_sample, vae_sample_rows
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
    sample (a device tensor, (B, k)). :meth:`set_row_seeds` gives each row of a batch its own
    seed (a group of passes decided together: row b samples what a batch of one with seed
    ``seeds[b]`` samples).

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
        self.row_seeds: tuple[int, ...] | None = None
        self._seed_bufs: dict[int, cl.Buffer] = {}  # one device buffer per row count

    def set_row_seeds(self, seeds) -> None:
        """One noise seed per row for sampling (``None``: the one ``seed`` for the batch).
        A call then takes exactly ``len(seeds)`` rows. Each row count keeps its own device
        buffer, so the captured plans of every count read the seeds set last."""
        if seeds is None:
            self.row_seeds = None
            return
        host = np.array([int(s) & 0xFFFFFFFF for s in seeds], dtype=np.uint32)
        if host.size == 0:
            raise ValueError("VAEHead.set_row_seeds: need at least one seed")
        dev = get_device()
        buf = self._seed_bufs.get(host.size)
        if buf is None:
            buf = self._seed_bufs[host.size] = dev.alloc(4 * host.size, "other",
                                                          "VAEHead.row_seeds")
        cl.enqueue_copy(dev.queue, buf, host, is_blocking=True)
        self.row_seeds = tuple(int(s) for s in host)

    def plan_mode(self):
        return None if self.row_seeds is None else len(self.row_seeds)

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
        if self.row_seeds is not None:
            if len(self.row_seeds) != x.shape[0]:
                raise ValueError(f"VAEHead: {len(self.row_seeds)} row seeds set for a batch "
                                 f"of {x.shape[0]} rows")
            y, self.last_eps = vae_sample_rows(x, self._seed_bufs[len(self.row_seeds)],
                                               self.next_args()[1],
                                               next_counter=lambda: self.next_args()[1])
            return y
        seed, counter = self.next_args()
        y, self.last_eps = vae_sample(x, seed, counter, next_args=self.next_args)
        return y

    _plan_counters = ("calls",)

    def next_args(self) -> tuple[int, int]:
        """Advance the sampling counter: (seed, counter) of the next noise draw."""
        self.calls += 1
        return self.seed, self.calls
