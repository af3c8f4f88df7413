"""Closed-form ridge regression (numpy, float64) with its penalty chosen on a chronological
hold-out: the fitted linear path of the ``skip`` encoder and the forecast benchmark's linear
baseline (benchmarks/forecast.py) are the same code.

Rows are in time order. :func:`choose_penalties` fits on the first ``1 - val_share`` of the
rows, minus ``gap`` rows so that no fitted target overlaps the validation inputs, and scores
every penalty of ``PENALTIES`` on the rest; :func:`fit` then refits on all rows. One penalty
for all outputs (``per_output=False``) is the textbook ridge; ``per_output=True`` lets each
output column pick its own (a short-horizon RSI wants little shrinkage, a 24-bar-ahead
close-open all of it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PENALTIES = (1e1, 3e1, 1e2, 3e2, 1e3, 3e3, 1e4, 3e4, 1e5, 3e5, 1e6, 1e7, 1e8, 1e9)


@dataclass(frozen=True)
class Ridge:
    """``predict(X) = (X - x_mean) / x_std @ weight + y_mean``; weight (n_in, n_out)."""

    x_mean: np.ndarray
    x_std: np.ndarray
    y_mean: np.ndarray
    weight: np.ndarray
    penalty: np.ndarray  # (n_out,)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, np.float64) - self.x_mean) / self.x_std) @ self.weight + self.y_mean

    def folded(self) -> tuple[np.ndarray, np.ndarray]:
        """(W (n_out, n_in), b (n_out,)) with ``predict(X) = X @ W.T + b`` (raw inputs)."""
        w = self.weight / self.x_std[:, None]
        return w.T, self.y_mean - self.x_mean @ w


@dataclass(frozen=True)
class LinearMap:
    """``predict(X) = X @ weight.T + bias`` (raw inputs): a fitted model in one matrix, e.g. a
    ridge fit plus its prior; ``penalty`` (n_out,) records the ridge penalties."""

    weight: np.ndarray  # (n_out, n_in)
    bias: np.ndarray
    penalty: np.ndarray

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, np.float64) @ self.weight.T + self.bias


class _Solver:
    """Ridge solutions for many penalties from one SVD of the standardised inputs."""

    def __init__(self, x: np.ndarray, y: np.ndarray):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        self.x_mean, self.y_mean = x.mean(axis=0), y.mean(axis=0)
        std = x.std(axis=0)
        self.x_std = np.where(std > 0, std, 1.0)
        u, self.sv, self.vt = np.linalg.svd((x - self.x_mean) / self.x_std, full_matrices=False)
        self.uty = u.T @ (y - self.y_mean)

    def solve(self, penalty: np.ndarray) -> Ridge:
        """Weights of each output column with its own penalty (n_out,)."""
        weight = np.empty((self.vt.shape[1], self.uty.shape[1]))
        for lam in np.unique(penalty):
            cols = penalty == lam
            weight[:, cols] = self.vt.T @ ((self.sv / (self.sv ** 2 + lam))[:, None]
                                           * self.uty[:, cols])
        return Ridge(self.x_mean, self.x_std, self.y_mean, weight, penalty)


def choose_penalties(x, y, score, val_share: float = 0.2, gap: int = 0,
                     per_output: bool = False, penalties=PENALTIES) -> np.ndarray:
    """Penalty per output column (n_out,) chosen on the last ``val_share`` of the rows.

    ``score(ridge, rows) -> (n_out,)`` is the validation error of each output on ``rows`` (a
    slice of the validation rows' indices), so callers judge in their own output units."""
    n = len(x)
    cut = int(round((1.0 - val_share) * n))
    fit_rows = cut - gap
    if fit_rows < 2 or cut >= n:
        raise ValueError(f"ridge: {n} rows are too few to hold out {val_share:.0%} after a gap "
                         f"of {gap}")
    solver = _Solver(x[:fit_rows], y[:fit_rows])
    val = np.arange(cut, n)
    n_out = np.asarray(y).shape[1]
    errors = np.stack([score(solver.solve(np.full(n_out, lam)), val) for lam in penalties])
    lams = np.asarray(penalties, np.float64)
    if per_output:
        return lams[errors.argmin(axis=0)]
    return np.full(n_out, lams[errors.mean(axis=1).argmin()])


def ar1(x, y, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per output k, least squares ``y[:, k] ~ a[k] + b[k] * x[:, cols[k]]`` (a constant
    column gets b = 0); returns (a, b)."""
    x, y = np.asarray(x, np.float64)[:, cols], np.asarray(y, np.float64)
    xm, ym = x.mean(axis=0), y.mean(axis=0)
    var = ((x - xm) ** 2).sum(axis=0)
    b = np.where(var > 0, ((x - xm) * (y - ym)).sum(axis=0) / np.where(var > 0, var, 1.0), 0.0)
    return ym - b * xm, b


def fit(x, y, penalty: np.ndarray) -> Ridge:
    """Ridge on all rows with the given penalty per output column."""
    return _Solver(x, y).solve(np.asarray(penalty, np.float64))
