"""The seed's trajectory sampling (spec 5.1): profit-weighted trajectories, early-biased starts.

Every function takes an injected ``np.random.Generator``; none touches the global RNG.
The distributions are described in docs/trajectories.md.
"""

from __future__ import annotations

import numpy as np

from neurofx.errors import NeurofxError
from neurofx.schema import FORECAST_BARS

PROB_LAMBDA = 0.9  # seed: lambda of GetProbTrajectories
SCORE_PERCENTILE = 80.0  # seed: k = P80(s) - max(s)


def trajectory_weights(
    scores, lam: float = PROB_LAMBDA, percentile: float = SCORE_PERCENTILE
) -> np.ndarray:
    """Sampling probabilities of trajectories from their scores (float64, sum 1).

    With ``mx = max(s)``, ``mn = min(s) - 0.1 |mx|``, ``k = P80(s) - mx`` (numpy's linear
    percentile)::

        mult = exp(|s - mx| / k)            # k < 0: 1 for the best, shrinks poor runs
        w = (s - mn) / (mx - mn)
        w = w / (w + lam) * mult            # NaN -> 0, then normalised to sum 1

    Uniform when all scores are equal. Where the seed divides by zero we take the limit
    k -> 0-: if ``k == 0`` (the top 20 % tie at the maximum) ``mult`` is 1 for scores equal
    to the maximum and 0 for the rest.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1 or s.size == 0:
        raise NeurofxError(f"trajectory scores: need a non-empty 1-D vector, got shape {s.shape}")
    if not np.isfinite(s).all():
        raise NeurofxError("trajectory scores: field 'score' holds NaN or inf")
    mx = s.max()
    if mx == s.min():
        return np.full(s.size, 1.0 / s.size)
    mn = s.min() - 0.1 * abs(mx)
    k = np.percentile(s, percentile) - mx
    gap = np.abs(s - mx)
    mult = (gap == 0.0).astype(np.float64) if k == 0.0 else np.exp(gap / k)
    w = (s - mn) / (mx - mn)
    w = w / (w + lam) * mult
    w = np.nan_to_num(w, nan=0.0)
    return w / w.sum()


def sample_trajectory(rng: np.random.Generator, weights) -> int:
    """Index drawn with probability ``weights[i] / sum(weights)`` (cumulative sum + one uniform).

    A zero weight is never drawn.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.size == 0 or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise NeurofxError("trajectory weights: need a non-empty vector of finite weights >= 0")
    cum = np.cumsum(w)
    idx = int(np.searchsorted(cum, rng.random() * cum[-1], side="right"))
    # float rounding can push the draw past the end: fall back to the last drawable index
    return min(idx, int(np.flatnonzero(w > 0)[-1]))


def sample_start(rng: np.random.Generator, total: int, n_forecast: int = FORECAST_BARS) -> int:
    """Start step ``floor(u1 * u2 * (total - 2 - n_forecast))``, redrawn while it is <= 0.

    ``u1 * u2`` has density ``-ln x`` on (0, 1): starts near the beginning of the trajectory
    are much more likely than late ones (see docs/trajectories.md).
    """
    span = int(total) - 2 - int(n_forecast)
    if span < 2:
        raise NeurofxError(
            f"trajectory of {total} steps is too short to sample a start: it needs at least "
            f"{n_forecast + 4} steps (n_forecast {n_forecast} + 4)"
        )
    while True:
        idx = int(np.floor(rng.random() * rng.random() * span))
        if idx > 0:
            return idx
