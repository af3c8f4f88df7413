"""What the models learn from a trajectory: encoder targets and their per-feature scaler, the
actor's 12-value input, the critic's immediate rewards and the cloning rule (spec 5.2-5.3).

Encoder target of step ``i`` (spec 1.4): the first 216 values of the state of step ``i + 24``,
i.e. the 24 bars that follow step ``i``, newest first (bar ``i + 24`` at columns 0..8, bar
``i + 1`` at columns 207..215), 9 features each. Those raw features have very different scales
(price differences ~1e-3, RSI ~50, CCI ~100), so the study standardises them per feature with
statistics of the training trajectories (:class:`TargetScaler`) and stores the scaler in the
encoder file; :meth:`TargetScaler.inverse` turns a forecast back into raw units.

The critic's targets, the 3 immediate rewards of each stored action, are relative balance and
equity changes and ``-ATR/balance``: ~1e-5..1e-3, so an MSE on them is ~1e-6 and its gradients
vanish. They are standardised per component the same way (:meth:`TargetScaler.fit_rewards`),
and :func:`improvement_targets` applies the critic-guided rule of spec 5.3 step 5 to the raw
reward behind a standardised score.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from neurofx.collectors.trajectory import Trajectory
from neurofx.data.features import StateWindows
from neurofx.errors import NeurofxError
from neurofx.schema import ACTOR_ACCOUNT_SIZE, BAR_FEATURES, FORECAST_BARS, actor_vector

SCALER_VERSION = 1
# std floor relative to a column's root mean square (see TargetScaler.from_rows)
STD_FLOOR = 1e-3
IMPROVE_UP, IMPROVE_DOWN = 1.01, 0.99  # spec 5.3 step 5


def encoder_targets(states: np.ndarray, n_forecast: int = FORECAST_BARS) -> np.ndarray:
    """Raw targets of steps ``0 .. T-1-n_forecast``: row i = ``states[i + n_forecast, :216]``."""
    width = n_forecast * BAR_FEATURES
    return np.asarray(states[n_forecast:, :width])


def scaled_encoder_targets(states, scaler: TargetScaler, n_forecast: int = FORECAST_BARS,
                           cache: dict | None = None):
    """``scaler.transform(encoder_targets(states))``. For :class:`StateWindows` (a version-2
    store) the same values are read on demand: windows of ``n_forecast`` bars of the
    standardised feature matrix (the transform is per value), made once per matrix in
    ``cache``."""
    if not isinstance(states, StateWindows):
        return scaler.transform(encoder_targets(states, n_forecast))
    cache = {} if cache is None else cache
    key = id(states.matrix)
    if key not in cache:
        cache[key] = (states.matrix, states.matrix.mapped(scaler.transform))
    return states.later(n_forecast, n_forecast, cache[key][1])


@dataclass(frozen=True)
class TargetScaler:
    """Per-component standardisation ``z = (raw - mean) / std`` of target vectors.

    ``mean``/``std`` hold one value per component (K). A target vector's width must be a
    multiple of K and is read as consecutive groups of K: the encoder's forecast is 24 bars x 9
    features (K = 9, bar-major), the critic's target is the 3 rewards (K = 3, one group).
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def from_rows(cls, rows: np.ndarray) -> TargetScaler:
        """Mean and population std (float64) of each column of ``rows`` (N, K).

        The std is floored at ``STD_FLOOR`` x the column's root mean square, so a column with
        no real spread (a constant, or float rounding noise around one) does not turn into
        values of ~1/0; an all-zero column gets std 1."""
        rows = np.asarray(rows, dtype=np.float64)
        if rows.ndim != 2 or len(rows) == 0:
            raise ValueError(f"need a non-empty (N, K) array to fit a scaler, got {rows.shape}")
        mean = rows.mean(axis=0)
        std = rows.std(axis=0)
        std = np.maximum(std, STD_FLOOR * np.sqrt(mean ** 2 + std ** 2))
        std = np.where(std > 0, std, 1.0)
        return cls(tuple(float(x) for x in mean), tuple(float(x) for x in std))

    @classmethod
    def fit(cls, trajectories: list[Trajectory]) -> TargetScaler:
        """The encoder's scaler: statistics of each of the 9 features over the newest bar of
        every step of ``trajectories``. Every bar of a trajectory except the first 119 is the
        newest bar of some step, so this is the distribution the targets are drawn from."""
        return cls.from_rows(np.concatenate([t.states[:, :BAR_FEATURES] for t in trajectories]))

    @classmethod
    def fit_rewards(cls, trajectories: list[Trajectory]) -> TargetScaler:
        """The critic's scaler: statistics of each of the 3 immediate rewards
        (:func:`critic_targets`) over every step of ``trajectories``."""
        return cls.from_rows(np.concatenate([critic_targets(t) for t in trajectories]))

    @property
    def size(self) -> int:
        return len(self.mean)

    def vectors(self, width: int) -> tuple[np.ndarray, np.ndarray]:
        """``mean`` and ``std`` (float64) tiled to a target vector of ``width`` values."""
        if width % self.size:
            raise ValueError(f"target width {width} is not a multiple of {self.size}")
        reps = width // self.size
        return np.tile(self.mean, reps), np.tile(self.std, reps)

    def transform(self, raw: np.ndarray) -> np.ndarray:
        """Raw targets (..., width) -> standardised float32."""
        raw = np.asarray(raw, dtype=np.float64)
        mean, std = self.vectors(raw.shape[-1])
        return ((raw - mean) / std).astype(np.float32)

    def inverse(self, scaled: np.ndarray) -> np.ndarray:
        """Standardised values (..., width) -> raw units (float64)."""
        scaled = np.asarray(scaled, dtype=np.float64)
        mean, std = self.vectors(scaled.shape[-1])
        return scaled * std + mean

    def to_dict(self) -> dict:
        return {"version": SCALER_VERSION, "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, data, where: str, size: int = BAR_FEATURES,
                  fix: str = "retrain the encoder with 'neurofx study encoder'",
                  field: str = "target_scaler") -> TargetScaler:
        """Inverse of :meth:`to_dict` for a scaler of ``size`` components; ``where`` names the
        file, ``field`` the key and ``fix`` the remedy in the one-line error."""
        ok = isinstance(data, dict) and data.get("version") == SCALER_VERSION
        if ok:
            mean, std = data.get("mean"), data.get("std")
            ok = (isinstance(mean, list) and isinstance(std, list)
                  and len(mean) == len(std) == size
                  and all(isinstance(v, int | float) and not isinstance(v, bool)
                          and math.isfinite(v) for v in mean + std)
                  and all(v > 0 for v in std))
        if not ok:
            raise NeurofxError(f"{where}: field '{field}' is missing or invalid (version "
                               f"{SCALER_VERSION}, {size} means and {size} positive stds "
                               f"expected); {fix}")
        return cls(tuple(float(v) for v in mean), tuple(float(v) for v in std))


def improvement_targets(scores: np.ndarray, scaler: TargetScaler, up: float = IMPROVE_UP,
                        down: float = IMPROVE_DOWN) -> np.ndarray:
    """Spec 5.3 step 5 on standardised critic scores (..., 3): the raw reward
    ``r = inverse(score)`` is moved to ``r * up`` if ``r >= 0`` else ``r * down`` (the sign and
    the 1 % are about the reward itself, not its distance from the training mean), and the
    result is standardised again. Computed as the equivalent shift
    ``score + (factor - 1) * r / std`` (= ``transform(factor * r)`` without a float32 round
    trip of the score); float32."""
    q = np.asarray(scores, dtype=np.float64)
    raw = scaler.inverse(q)
    _, std = scaler.vectors(q.shape[-1])
    factor = np.where(raw >= 0, up, down)
    return (q + (factor - 1.0) * raw / std).astype(np.float32)


def actor_inputs(accounts: np.ndarray) -> np.ndarray:
    """The actor's 12-value input of every step, float32 (T, 12): research's
    :func:`~neurofx.schema.actor_vector` (spec 2.3) with the previous step's record
    (step 0: its own), so training sees exactly what the agent sees when it trades."""
    acc = np.asarray(accounts, dtype=np.float64)
    if len(acc) == 0:
        return np.zeros((0, ACTOR_ACCOUNT_SIZE), np.float32)
    return np.stack([actor_vector(acc[i], acc[i - 1] if i else None) for i in range(len(acc))])


def critic_targets(traj: Trajectory) -> np.ndarray:
    """Immediate 3-component reward of each stored action in raw units, float32 (T, 3) (the
    critic learns them standardised by :meth:`TargetScaler.fit_rewards`).

    neurofx records ``rewards[i]`` as the consequence of ``action[i]`` (the seed stores it one
    step later), so spec 5.3's ``rewards_{i+1} - 0.99 * rewards_{i+2}`` becomes
    ``R_i - gamma * R_{i+1}`` here, i.e. :meth:`Trajectory.immediate_rewards`.
    """
    return traj.immediate_rewards().astype(np.float32)


def clones(traj: Trajectory) -> bool:
    """Spec 5.3 step 4: behaviour cloning only on trajectories whose discounted cumulative
    balance reward at step 0 is positive."""
    summed = traj if traj.discounted else traj.discount()
    return bool(summed.rewards[0, 0] > 0)
