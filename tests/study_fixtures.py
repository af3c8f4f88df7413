"""Synthetic trajectory stores for the study tests (no backtrader: fast and exact).

Each trajectory is built from a smooth multi-sine bar series, so the 24-bar forecast is
learnable from the 120-bar window. Stored actions are a fixed function of the account
vector (learnable by cloning), and the immediate rewards a fixed linear function of the action
plus a per-trajectory offset on the balance reward (its sign decides "profitable").
"""

from __future__ import annotations

import numpy as np

from neurofx.collectors.store import TrajectoryStore
from neurofx.collectors.trajectory import Trajectory

T0 = 1_672_531_200  # 2023-01-01 00:00 UTC
SCALES = np.array([1e-3, 1.2e-3, 0.8e-3, 1.0, 50.0, 100.0, 1e-3, 2e-4, 1.5e-4])
OFFSETS = np.array([0.0, 0.0, 0.0, 1.0, 50.0, 0.0, 2e-3, 0.0, 0.0])
PERIODS = np.array([24.0, 12.0, 36.0, 48.0, 30.0, 20.0, 60.0, 72.0, 40.0])
REWARD_MATRIX = np.array([[0.4, -0.2, 0.1, -0.4, 0.2, -0.1],
                          [-0.1, 0.1, -0.3, 0.1, -0.1, 0.3],
                          [0.05, 0.05, 0.05, 0.05, 0.05, 0.05]])


def bar_series(n: int, phase: float) -> np.ndarray:
    """(n, 9) bars: feature f = OFFSETS[f] + SCALES[f] * sin(2 pi b / PERIODS[f] + phase + f)."""
    b = np.arange(n)[:, None]
    return OFFSETS + SCALES * np.sin(2 * np.pi * b / PERIODS + phase + np.arange(9))


def states_from_bars(bars: np.ndarray, steps: int) -> np.ndarray:
    """states[i] = bars i+119 (newest, bar 0) ... i (bar 119), 9 values each."""
    return np.stack([bars[i:i + 120][::-1].reshape(-1) for i in range(steps)]).astype(np.float32)


def fixture_actions(accounts: np.ndarray) -> np.ndarray:
    """The stored action as a fixed function of the account record: lots and the daily
    harmonic (which every trajectory covers in full, so held-out ones are in distribution)."""
    day = np.sin(2 * np.pi * accounts[:, 7] / 86_400)
    return np.stack([2 * accounts[:, 2], 0.5 + 0.3 * day, 0.5 - 0.2 * day,
                     2 * accounts[:, 3], 0.5 - 0.3 * day, 0.4 + 0.2 * day], axis=1)


def make_trajectory(steps: int, phase: float, offset: float, seed: int,
                    policy: str = "fixture") -> tuple[Trajectory, dict]:
    """A discounted trajectory and the raw pieces it was built from (for reference checks)."""
    rng = np.random.default_rng(seed)
    bars = bar_series(steps + 119, phase)
    states = states_from_bars(bars, steps)
    acc = np.zeros((steps, 8))
    acc[:, 0] = 10_000 + np.cumsum(rng.normal(0, 5, steps))
    acc[:, 1] = acc[:, 0] + rng.normal(0, 3, steps)
    acc[:, 2] = rng.choice([0.0, 0.01, 0.05, 0.1], steps)
    acc[:, 3] = rng.choice([0.0, 0.02, 0.08], steps)
    acc[:, 4] = rng.normal(0, 2, steps)
    acc[:, 5] = rng.normal(0, 2, steps)
    acc[:, 6] = rng.normal(0, 1, steps)
    acc[:, 7] = T0 + 3600.0 * (np.arange(steps) + seed * 997)
    actions = fixture_actions(acc).astype(np.float32)
    raw = 0.1 * actions.astype(np.float64) @ REWARD_MATRIX.T
    raw[:, 0] += offset
    raw = raw.astype(np.float32)
    traj = Trajectory(states=states, accounts=acc, actions=actions, rewards=raw,
                      profit=100.0 if offset > 0 else -50.0, policy=policy, seed=seed)
    return traj.discount(), {"bars": bars, "raw_rewards": raw}


def build_store(path, n: int = 6, steps: int = 160, profitable: int | None = None,
                seed: int = 0, phase_step: float = 0.7) -> TrajectoryStore:
    """A store of ``n`` trajectories, the first ``profitable`` (default: n - 2) with a positive
    balance-reward offset. Trajectory k's bars have phase ``phase_step * k``; with
    ``phase_step=0`` all see the same market, so only the account vector tells actions apart."""
    profitable = n - 2 if profitable is None else profitable
    store = TrajectoryStore.open(path, create=True)
    for k in range(n):
        offset = 0.01 if k < profitable else -0.01
        traj, _ = make_trajectory(steps, phase=phase_step * k, offset=offset, seed=seed * 100 + k)
        result = store.add(traj, min_profit=-1e9)
        assert result.kept, result.reason
    return store
