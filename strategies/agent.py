"""One agent pass: replay bars, ask a policy at every bar open, record what it saw, did, earned.

Record ``i`` belongs to the decision at the open of bar ``i`` of the pass (docs/research.md):

* ``states[i]``: the 120 x 9 features of the bars closed before bar i, newest first;
* ``accounts[i]``: the account record (spec 2.2) at bar i's open quote, after the broker's
  open-price processing (gap fills of TP/SL, stop-out) and before action i;
* ``actions[i]``: the netted action actually executed (:func:`apply_action`);
* ``rewards[i]``: the consequence of action i measured at the open of bar i+1 (after its gap
  fills), or at the pass's final close for the last record (spec 3.3 with our fixes).

:func:`run_agent_pass` is the API the ``research`` and ``test`` commands share.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from neurofx.collectors.trajectory import Trajectory
from neurofx.data.features import FeatureMatrix, StateWindows
from neurofx.errors import NeurofxError
from neurofx.schema import HISTORY_BARS, actor_vector

from .broker import BrokerConfig
from .feeds import BarArrays
from .netting import apply_action
from .policies import Policy
from .replay import ReplayResult, ReplayStrategy, run_replay
from .state import account_record, step_rewards

ATR_COLUMN = 6  # atr14 in neurofx.data.FEATURE_NAMES


class AgentStrategy(ReplayStrategy):
    """Asks ``policy`` at every bar open and records one step per bar (module docstring)."""

    def __init__(self, bars: BarArrays, fx, close_at_end: bool = True, *, policy: Policy,
                 states: np.ndarray | StateWindows, atr: np.ndarray, zero_means_none: bool = False,
                 stops_mode: str = "research"):
        super().__init__(bars, fx, close_at_end)
        n = len(bars)
        if states.shape[0] != n or atr.shape[0] != n:
            raise ValueError("states and atr must have one row per bar of the pass")
        self.policy = policy
        self.states = states
        self.atr = atr
        self.zero_means_none = zero_means_none
        self.stops_mode = stops_mode
        self.accounts = np.zeros((n, 8), dtype=np.float64)
        self.actor_inputs = np.zeros((n, 12), dtype=np.float32)
        self.actions = np.zeros((n, 6), dtype=np.float64)
        self.rewards = np.zeros((n, 3), dtype=np.float64)
        self.flat = np.zeros(n, dtype=bool)  # no position open during bar i (after action i)

    def _reward(self, i: int, balance: float, equity: float) -> None:
        self.rewards[i] = step_rewards(self.accounts[i, 0], balance, equity,
                                       float(self.atr[i]), bool(self.flat[i]))

    def decide(self, t: int) -> None:
        rec = account_record(self.fx)
        self.accounts[t] = rec
        if t > 0:
            self._reward(t - 1, rec[0], rec[1])
        vec = actor_vector(rec, self.accounts[t - 1] if t > 0 else None)
        self.actor_inputs[t] = vec
        action = self.policy.act(t, self.states[t], vec)
        res = apply_action(self.fx, action, zero_means_none=self.zero_means_none,
                           stops_mode=self.stops_mode)
        self.actions[t] = res.action
        self.flat[t] = not self.fx.positions

    def next(self):
        super().next()
        t = self._t
        if t == len(self.bars) - 1:  # final close, after the end-of-pass closes
            self._reward(t, self.fx.balance, self.fx.equity)


@dataclass(frozen=True, eq=False)
class PassResult:
    """One pass: the replay (deals, per-bar close records, final account) and the step arrays.

    ``rewards`` are immediate (not discounted), float64. ``actor_inputs`` are the 12-vectors the
    policy saw; ``flat[i]`` tells whether no position was open during bar i.
    """

    replay: ReplayResult
    states: StateWindows  # windows of the feature matrix, read on demand (T, 1080) float32
    accounts: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    actor_inputs: np.ndarray
    flat: np.ndarray
    first_bar: int  # index of the pass's first bar in the full bar/feature arrays
    seed: int | None

    @property
    def steps(self) -> int:
        return int(self.states.shape[0])

    @property
    def final_balance(self) -> float:
        return float(self.replay.final.balance_usd)

    @property
    def profit(self) -> float:
        """Final balance - deposit (every position is closed at the pass's last close)."""
        return round(self.final_balance - self.replay.config.initial_deposit_usd, 2)

    @property
    def period(self) -> str:
        t = pd.to_datetime(self.replay.time_s[[0, -1]], unit="s")
        return f"{t[0]:%Y-%m-%d %H:%M}..{t[1]:%Y-%m-%d %H:%M}"

    def to_trajectory(self, policy: str, extra: dict | None = None) -> Trajectory:
        """The store record of this pass (immediate rewards; the store discounts them)."""
        # trades as MT5 counts them: the closing ("out") deals
        info = {"deals": len(self.replay.deals),
                "trades": sum(d.entry == "out" for d in self.replay.deals),
                "rejected_orders": self.replay.rejected_orders}
        info.update(extra or {})
        return Trajectory(
            states=self.states, accounts=self.accounts, actions=self.actions.astype(np.float32),
            rewards=self.rewards.astype(np.float32), profit=self.profit, policy=policy,
            seed=self.seed, period=self.period, extra=info,
        )


def _unix(value) -> int:
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return int(ts.value // 10**9)


def window_bounds(time_s: np.ndarray, start=None, end=None) -> tuple[int, int]:
    """Indices ``[lo, hi)`` of the bars with ``start <= time < end`` (broker clock)."""
    lo = 0 if start is None else int(np.searchsorted(time_s, _unix(start), side="left"))
    hi = len(time_s) if end is None else int(np.searchsorted(time_s, _unix(end), side="left"))
    if hi <= lo:
        raise NeurofxError(f"no bars between start={start} and end={end}")
    return lo, hi


def run_agent_pass(bars: pd.DataFrame | BarArrays, features: np.ndarray | FeatureMatrix,
                   policy: Policy,
                   start=None, end=None, broker_config: BrokerConfig | None = None, *,
                   seed: int | None = None, zero_means_none: bool = False,
                   stops_mode: str = "research", history: int = HISTORY_BARS,
                   feed: str = "numpy") -> PassResult:
    """Replay the bars with ``start <= time < end`` with ``policy`` and record every step.

    ``bars`` and ``features`` cover the same, longer span (features are computed once over the
    whole file so the indicators are warmed up; the window needs ``history`` valid feature rows
    before its first bar); a :class:`FeatureMatrix` carries the bars' digest and feature
    settings into the trajectory (the store's key). ``policy.reset(seed)`` is called first.
    ``zero_means_none`` and ``stops_mode`` go to :func:`apply_action` (Real-ORL:
    ``zero_means_none=True``; the test period may use ``stops_mode="test"``).
    """
    arrays = bars if isinstance(bars, BarArrays) else BarArrays.from_frame(bars)
    matrix = features if isinstance(features, FeatureMatrix) else None
    values = matrix.values if matrix is not None else np.asarray(features)
    if values.ndim != 2 or values.shape[0] != len(arrays):
        raise NeurofxError(f"features have {values.shape[0]} rows but there are "
                           f"{len(arrays)} bars; compute them over the same bars")
    if matrix is None:
        matrix = FeatureMatrix.from_features(values)
    lo, hi = window_bounds(arrays.time_s, start, end)
    window = BarArrays(**{k: v[lo:hi] for k, v in arrays.__dict__.items()})
    idx = np.arange(lo, hi)
    states = matrix.windows(idx, history if history != matrix.history else None)
    atr = values[idx, ATR_COLUMN].astype(np.float64)
    policy.reset(seed)
    res = run_replay(window, AgentStrategy, broker_config=broker_config, feed=feed,
                     close_at_end=True, policy=policy, states=states, atr=atr,
                     zero_means_none=zero_means_none, stops_mode=stops_mode)
    s = res.strategy
    return PassResult(replay=res, states=states, accounts=s.accounts, actions=s.actions,
                      rewards=s.rewards, actor_inputs=s.actor_inputs, flat=s.flat,
                      first_bar=lo, seed=seed)
