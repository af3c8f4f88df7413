"""What the models learn from a trajectory: encoder targets and their per-feature scaler, the
actor's 12-value input, the critic's immediate rewards and the cloning rule (spec 5.2-5.3).

Encoder target of step ``i`` (spec 1.4): the first 216 values of the state of step ``i + 24``,
i.e. the 24 bars that follow step ``i``, newest first (bar ``i + 24`` at columns 0..8, bar
``i + 1`` at columns 207..215), 9 features each. Those raw features have very different scales
(price differences ~1e-3, RSI ~50, CCI ~100), so the study standardises them per feature with
statistics of the training trajectories (:class:`TargetScaler`) and stores the scaler in the
encoder file; :meth:`TargetScaler.inverse` turns a forecast back into raw units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from neurofx.collectors.trajectory import BAR_DESCR, Trajectory
from neurofx.errors import NeurofxError
from neurofx.strategies.state import actor_vector

N_FORECAST = 24
FORECAST_SIZE = N_FORECAST * BAR_DESCR  # 216
ACCOUNT_INPUT_SIZE = 12
SCALER_VERSION = 1


def encoder_targets(states: np.ndarray, n_forecast: int = N_FORECAST) -> np.ndarray:
    """Raw targets of steps ``0 .. T-1-n_forecast``: row i = ``states[i + n_forecast, :216]``."""
    width = n_forecast * BAR_DESCR
    return np.asarray(states)[n_forecast:, :width]


@dataclass(frozen=True)
class TargetScaler:
    """Per-feature standardisation of forecast vectors (24 bars x 9 features, bar-major)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def fit(cls, trajectories: list[Trajectory]) -> TargetScaler:
        """Mean and population std of each of the 9 features over the newest bar of every
        step of ``trajectories`` (float64). Every bar of a trajectory except the first 119 is
        the newest bar of some step, so this is the distribution the targets are drawn from.
        A constant feature gets std 1."""
        rows = np.concatenate([t.states[:, :BAR_DESCR] for t in trajectories]).astype(np.float64)
        mean = rows.mean(axis=0)
        std = rows.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        return cls(tuple(float(x) for x in mean), tuple(float(x) for x in std))

    def _vectors(self, width: int) -> tuple[np.ndarray, np.ndarray]:
        if width % BAR_DESCR:
            raise ValueError(f"forecast width {width} is not a multiple of {BAR_DESCR}")
        reps = width // BAR_DESCR
        return np.tile(self.mean, reps), np.tile(self.std, reps)

    def transform(self, raw: np.ndarray) -> np.ndarray:
        """Raw forecast values (..., 216) -> standardised float32."""
        raw = np.asarray(raw)
        mean, std = self._vectors(raw.shape[-1])
        return ((raw - mean) / std).astype(np.float32)

    def inverse(self, scaled: np.ndarray) -> np.ndarray:
        """Standardised forecast (..., 216) -> raw units (float64)."""
        scaled = np.asarray(scaled, dtype=np.float64)
        mean, std = self._vectors(scaled.shape[-1])
        return scaled * std + mean

    def to_dict(self) -> dict:
        return {"version": SCALER_VERSION, "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, data, where: str) -> TargetScaler:
        """Inverse of :meth:`to_dict`; ``where`` names the file in the one-line error."""
        ok = isinstance(data, dict) and data.get("version") == SCALER_VERSION
        if ok:
            mean, std = data.get("mean"), data.get("std")
            ok = (isinstance(mean, list) and isinstance(std, list)
                  and len(mean) == len(std) == BAR_DESCR
                  and all(isinstance(v, int | float) and math.isfinite(v) for v in mean + std)
                  and all(v > 0 for v in std))
        if not ok:
            raise NeurofxError(f"{where}: field 'target_scaler' is missing or invalid (version "
                               f"{SCALER_VERSION}, 9 means and 9 positive stds expected); "
                               f"retrain the encoder with 'neurofx study encoder'")
        return cls(tuple(float(v) for v in mean), tuple(float(v) for v in std))


def actor_inputs(accounts: np.ndarray) -> np.ndarray:
    """The actor's 12-value input of every step, float32 (T, 12): research's
    :func:`~neurofx.strategies.state.actor_vector` (spec 2.3) with the previous step's record
    (step 0: its own), so training sees exactly what the agent sees when it trades."""
    acc = np.asarray(accounts, dtype=np.float64)
    if len(acc) == 0:
        return np.zeros((0, ACCOUNT_INPUT_SIZE), np.float32)
    return np.stack([actor_vector(acc[i], acc[i - 1] if i else None) for i in range(len(acc))])


def critic_targets(traj: Trajectory) -> np.ndarray:
    """Immediate 3-component reward of each stored action, float32 (T, 3).

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
