"""RevIN de-normalisation from a BatchNorm layer's statistics (the seed's RevIN layer; spec 9.2)."""

from __future__ import annotations

import weakref

import numpy as np

from ..module import Module, register
from ..ops.forecast import IndexMap, revin_denorm
from ..tensor import Tensor


@register
class RevIN(Module):
    """Undo an input :class:`~neurofx.nn.layers.BatchNorm` on forecast outputs; no parameters.

    x (B, n_out) -> (B, n_out). Output j is de-normalised with the statistics of the
    normaliser's element k = ``index_map[j]`` (n_src = the normaliser's size)::

        y[b, j] = (x[b, j] - beta[k]) * sqrt(var[k] + eps) / gamma'[k] + mean[k]

    the exact inverse of the normaliser's ``gamma * (x - mean) / sqrt(var + eps) + beta``
    (same eps), with its current running statistics (in the seed's running mode these include
    the latest forward). gamma' keeps gamma's sign with magnitude >= ``min_gamma``.

    ``index_map`` defaults to the seed's ``j % n_src``: for a bar-major input (120 bars x 9)
    and a bar-major forecast (24 bars x 9), forecast bar t, feature f uses input bar t, feature
    f (the feature always matches). :meth:`latest_bar_map` gives the alternative where every
    forecast bar uses the most recent input bar's statistics.

    The normaliser is attached with :meth:`bind` (a weak reference, not a child module: its
    parameters stay where they are). Gradients flow to x and to the normaliser's gamma and
    beta (the true derivative of the composition); mean and var are constants.
    """

    def __init__(self, n_out: int, n_src: int, index_map: list[int] | None = None,
                 min_gamma: float = 1e-3):
        if n_out < 1 or n_src < 1 or min_gamma <= 0:
            raise ValueError(f"RevIN: need n_out >= 1, n_src >= 1, min_gamma > 0; got "
                             f"n_out={n_out}, n_src={n_src}, min_gamma={min_gamma}")
        index = np.arange(n_out) % n_src if index_map is None else np.asarray(index_map)
        if index.shape != (n_out,) or index.min() < 0 or index.max() >= n_src:
            raise ValueError(f"RevIN: index_map must hold {n_out} integers in [0, {n_src}), "
                             f"got shape {index.shape}, range [{index.min()}, {index.max()}]")
        self.n_out, self.n_src, self.min_gamma = n_out, n_src, min_gamma
        self.index_map = None if index_map is None else [int(i) for i in index]
        self._index = index.astype(np.int32)
        self._imap: IndexMap | None = None
        self._source = None

    @staticmethod
    def latest_bar_map(horizon: int, n_vars: int, bar: int = 0) -> list[int]:
        """index_map for a bar-major forecast (horizon x n_vars) that de-normalises every
        forecast bar with input bar ``bar``'s statistics (bar 0 = most recent in the seed)."""
        return [bar * n_vars + j % n_vars for j in range(horizon * n_vars)]

    def bind(self, source) -> RevIN:
        """Use ``source`` (a BatchNorm of n_src features) as the normaliser to undo."""
        if getattr(source, "n", None) != self.n_src:
            raise ValueError(f"RevIN: source normaliser has {getattr(source, 'n', None)} "
                             f"features, expected n_src={self.n_src}")
        self._source = weakref.ref(source)
        return self

    def config(self) -> dict:
        return {"n_out": self.n_out, "n_src": self.n_src, "index_map": self.index_map,
                "min_gamma": self.min_gamma}

    def forward(self, x: Tensor) -> Tensor:
        bn = self._source() if self._source is not None else None
        if bn is None:
            raise ValueError("RevIN: no normaliser bound; call revin.bind(batch_norm_layer) "
                             "when building the model")
        if self._imap is None:
            self._imap = IndexMap.build(x.device, self._index, self.n_src)
        return revin_denorm(x, self._imap, bn.gamma, bn.beta, bn.running_mean,
                            bn.running_var, bn.eps, self.min_gamma)
