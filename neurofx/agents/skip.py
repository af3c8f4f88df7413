"""The ``skip`` encoder: a fitted linear forecast plus a small learned correction.

``forecast = skip(x) + residual(x)`` (standardised units, bar-major 24 x 9 like the targets):

* ``skip`` is a ridge regression of the 216 targets on the 1080-value window that shrinks
  towards each target's AR(1) on its feature's newest bar (not towards zero), in
  *volatility units*: the price-like features of the window (close-open, high-open, low-open,
  ATR, MACD main and signal) are divided by the window's mean bar range
  ``s = mean(|high-open| + |low-open|) / 2``, the price-like targets are forecast in the same
  units and multiplied by ``s`` again (RSI, CCI and the normalised tick volume are scale-free
  and pass unscaled). It is fitted in closed form by :meth:`SkipEncoder.fit_linear` (the study
  calls it on the training bars), with one penalty per output chosen on the last 20 % of the
  training span (:mod:`.ridge`); its weights are state, not parameters: training leaves them.
* ``residual`` (``hidden > 0``; off by default) is the seed's running normaliser -> dense
  ``hidden`` tanh -> dense 216, its last layer zero at the start, so a fresh encoder forecasts
  exactly the fitted path and gradient training only adds to it. Measured on held-out bars it
  hurts (it learns the fitted path's in-sample residuals: docs/models.md), hence the default
  ``hidden=0``: the encoder is the fitted path alone and has no trainable parameter.

Why (docs/models.md): on held-out bars the seed's TPM encoder and an MLP lose to a plain
ridge regression; this model starts from a better linear forecast and learns on top of it.
"""

from __future__ import annotations

import numpy as np

from neurofx.errors import NeurofxError
from neurofx.nn import ops
from neurofx.nn.layers import BatchNorm
from neurofx.nn.module import Dense, Module, child_seed
from neurofx.nn.module import register as register_layer
from neurofx.nn.ops.volscale import vol_scale, vol_unscale
from neurofx.nn.tensor import Parameter, StateTensor, Tensor
from neurofx.schema import BAR_FEATURES, FEATURE_NAMES, FORECAST_BARS, HISTORY_BARS

from . import ridge
from .registry import check_sizes, register
from .tpm import NORM_EPS

PRICE_FEATURES = ("close_open", "high_open", "low_open", "atr14", "macd_main", "macd_signal")
RANGE_FEATURES = ("high_open", "low_open")
SCALE_EPS = 1e-7  # added to the window's mean range (price units): keeps a flat window finite
VAL_SHARE = 0.2


def price_mask(n_vars: int = BAR_FEATURES) -> np.ndarray:
    return np.array([1.0 if name in PRICE_FEATURES else 0.0 for name in FEATURE_NAMES[:n_vars]],
                    np.float32)


def window_scale(x: np.ndarray, n_vars: int = BAR_FEATURES, eps: float = SCALE_EPS) -> np.ndarray:
    """The kernel's ``s`` per row of raw windows (float64): mean (|high-open| + |low-open|)/2."""
    hi, lo = (FEATURE_NAMES.index(n) for n in RANGE_FEATURES)
    w = np.asarray(x, np.float64).reshape(len(x), -1, n_vars)
    return (np.abs(w[:, :, hi]) + np.abs(w[:, :, lo])).mean(axis=1) / 2.0 + eps


@register_layer
class SkipEncoder(Module):
    """State window (B, bars*n_vars) -> forecast (B, horizon*n_vars): fitted volatility-scaled
    ridge path + learned residual MLP (see the module docstring)."""

    def __init__(self, bars: int = HISTORY_BARS, n_vars: int = BAR_FEATURES, hidden: int = 0,
                 horizon: int = FORECAST_BARS, norm_window: int = 10000, seed: int = 0):
        n, out = bars * n_vars, horizon * n_vars
        self.bars, self.n_vars, self.hidden, self.horizon = bars, n_vars, hidden, horizon
        self.norm_window, self.seed = norm_window, seed
        self.hi, self.lo = (FEATURE_NAMES.index(name) for name in RANGE_FEATURES)
        if hidden:
            self.norm = BatchNorm(n, mode="running", eps=NORM_EPS, window=norm_window)
            self.body = Dense(n, hidden, "tanh", seed=child_seed(seed, 9, 1))
            self.head = Dense(hidden, out, "none", seed=child_seed(seed, 9, 2))
            self.head.weight = Parameter(np.zeros((out, hidden), np.float32), "weight", hidden)
            self.head.bias = Parameter(np.zeros(out, np.float32), "bias", 1)
        self.skip_weight = StateTensor.of(np.zeros((out, n), np.float32), "skip.weight")
        self.skip_bias = StateTensor.of(np.zeros(out, np.float32), "skip.bias")
        self.skip_gain = StateTensor.of(np.zeros(out, np.float32), "skip.gain")
        self.skip_offset = StateTensor.of(np.zeros(out, np.float32), "skip.offset")
        self.input_mask = StateTensor.of(price_mask(n_vars), "skip.input_mask")
        self.output_mask = StateTensor.of(np.tile(price_mask(n_vars), horizon), "skip.output_mask")

    def config(self) -> dict:
        return {"bars": self.bars, "n_vars": self.n_vars, "hidden": self.hidden,
                "horizon": self.horizon, "norm_window": self.norm_window, "seed": self.seed}

    def forward(self, x: Tensor) -> Tensor:
        n = self.bars * self.n_vars
        if len(x.shape) != 2 or x.shape[1] != n:
            raise ValueError(f"SkipEncoder: input must be (B, {n}), got {x.shape}")
        xs, s = vol_scale(x, self.input_mask, self.n_vars, self.hi, self.lo, SCALE_EPS)
        r = ops.linear(xs, self.skip_weight, self.skip_bias)
        skip = vol_unscale(r, s, self.output_mask, self.skip_gain, self.skip_offset)
        if not self.hidden:
            return skip
        return ops.add(skip, self.head(self.body(self.norm(x))))

    def fit_linear(self, states: np.ndarray, targets: np.ndarray, target_mean: np.ndarray,
                   target_std: np.ndarray, gap: int | None = None,
                   per_output: bool = True) -> ridge.LinearMap:
        """Fit the skip path on raw windows ``states`` (N, bars*n_vars) in time order and their
        standardised targets (N, horizon*n_vars) (``raw = z * target_std + target_mean``).
        The ridge shrinks towards each output's AR(1) on its feature's newest bar (fitted
        first; the ridge fits what it leaves). Penalties are chosen on the last 20 % of the
        rows, fitted on the rest minus ``gap`` rows (default: the horizon, so no fitted target
        overlaps a validation input); then prior and ridge are refitted on all rows. Returns
        the fitted map from volatility-scaled windows to volatility-scaled raw targets."""
        x = np.asarray(states, np.float64)
        z = np.asarray(targets, np.float64)
        mean, std = np.asarray(target_mean, np.float64), np.asarray(target_std, np.float64)
        s = window_scale(x, self.n_vars)
        cmask = price_mask(self.n_vars).astype(bool)
        tmask = np.tile(cmask, self.horizon)
        xs = x.reshape(len(x), -1, self.n_vars).copy()
        xs[:, :, cmask] /= s[:, None, None]
        xs = xs.reshape(len(x), -1)
        power = np.where(tmask[None, :], s[:, None], 1.0)  # (N, out)
        scaled_targets = (z * std + mean) / power
        # the prior the penalty shrinks towards: each output's AR(1) on its feature's newest bar
        cols = np.arange(z.shape[1]) % self.n_vars
        gap = self.horizon if gap is None else gap
        cut = int(round((1.0 - VAL_SHARE) * len(x)))
        a, b = ridge.ar1(xs[:cut - gap], scaled_targets[:cut - gap], cols)

        def score(fit, rows):
            prior = a + b * xs[rows][:, cols]
            pred = ((fit.predict(xs[rows]) + prior) * power[rows] - mean) / std
            return ((pred - z[rows]) ** 2).mean(axis=0)

        penalty = ridge.choose_penalties(xs, scaled_targets - (a + b * xs[:, cols]), score,
                                         VAL_SHARE, gap, per_output)
        a, b = ridge.ar1(xs, scaled_targets, cols)
        fit = ridge.fit(xs, scaled_targets - (a + b * xs[:, cols]), penalty)
        weight, bias = fit.folded()
        weight[np.arange(len(cols)), cols] += b
        fitted = ridge.LinearMap(weight, bias + a, penalty)
        self.skip_weight.assign(fitted.weight)
        self.skip_bias.assign(fitted.bias)
        self.skip_gain.assign(1.0 / std)
        self.skip_offset.assign(-mean / std)
        return fitted


@register("encoder", "skip")
def skip_encoder(hidden: int = 0, seed: int = 1, norm_window: int = 10000) -> dict:
    """Fitted volatility-scaled ridge forecast [+ residual MLP 1080-hidden-216 (tanh)]."""
    check_sizes("encoder", "skip", norm_window=norm_window)
    if not isinstance(hidden, int) or isinstance(hidden, bool) or hidden < 0:
        raise NeurofxError(f"encoder model 'skip': override hidden={hidden!r} must be an "
                           "integer >= 0 (0: no residual MLP)")
    return {"type": "SkipEncoder", "hidden": hidden, "norm_window": norm_window, "seed": seed}
