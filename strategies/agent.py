"""One agent pass: replay bars, ask a policy at every bar open, record what it saw, did, earned.

Record ``i`` belongs to the decision at the open of bar ``i`` of the pass (docs/research.md):

* ``states[i]``: the 120 x 9 features of the bars closed before bar i, newest first;
* ``accounts[i]``: the account record (spec 2.2) at bar i's open quote, after the broker's
  open-price processing (gap fills of TP/SL, stop-out) and before action i;
* ``actions[i]``: the netted action actually executed (:func:`apply_action`);
* ``rewards[i]``: the consequence of action i measured at the open of bar i+1 (after its gap
  fills), or at the pass's final close for the last record (spec 3.3 with our fixes).

:func:`run_agent_pass` (one pass) and :func:`run_agent_group` (passes side by side) are the API
the ``research`` and ``test`` commands share.
"""

from __future__ import annotations

from collections.abc import Sequence
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
from .policies import Policy, RowPolicy, row_policy
from .replay import ReplayResult, ReplayStrategy, run_replay_group
from .state import account_record, step_rewards

ATR_COLUMN = 6  # atr14 in neurofx.data.FEATURE_NAMES
# The largest group of passes replayed side by side. A group's actor forward multiplies
# (group, n) matrices, and the engine switches dense products to its packed path from 128
# rows on (neurofx.nn.gemm), which sums in another order: below that, every row of a batch is
# computed exactly as a batch of one (tests/test_pass_groups.py checks the registered actors).
MAX_GROUP = 64


@dataclass(eq=False)
class AgentRow:
    """One pass of an :class:`AgentStrategy` group: the arrays it records (module docstring);
    ``flat[i]`` tells whether no position was open during bar i (after action i)."""

    accounts: np.ndarray
    actor_inputs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    flat: np.ndarray

    @classmethod
    def empty(cls, n: int) -> AgentRow:
        return cls(np.zeros((n, 8), np.float64), np.zeros((n, 12), np.float32),
                   np.zeros((n, 6), np.float64), np.zeros((n, 3), np.float64),
                   np.zeros(n, dtype=bool))


class AgentStrategy(ReplayStrategy):
    """Asks ``policy`` at every bar open and records one step per bar (module docstring), for
    one broker or a group of them in lockstep: each bar, one ``policy.act_rows`` call decides
    for every pass of the group (a :class:`~neurofx.strategies.policies.RowPolicy`)."""

    def __init__(self, bars: BarArrays, fx, close_at_end: bool = True, *, policy: RowPolicy,
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
        self.rows = [AgentRow.empty(n) for _ in self.brokers]
        self._vectors = np.zeros((len(self.brokers), 12), dtype=np.float32)

    def row_record(self, i: int) -> AgentRow:
        return self.rows[i]

    def _reward(self, row: AgentRow, i: int, balance: float, equity: float) -> None:
        row.rewards[i] = step_rewards(row.accounts[i, 0], balance, equity, float(self.atr[i]),
                                      bool(row.flat[i]))

    def decide(self, t: int) -> None:
        for k, (fx, row) in enumerate(zip(self.brokers, self.rows, strict=True)):
            rec = account_record(fx)
            row.accounts[t] = rec
            if t > 0:
                self._reward(row, t - 1, rec[0], rec[1])
            row.actor_inputs[t] = self._vectors[k] = actor_vector(
                rec, row.accounts[t - 1] if t > 0 else None)
        actions = self.policy.act_rows(t, self.states[t], self._vectors)
        for fx, row, action in zip(self.brokers, self.rows, actions, strict=True):
            res = apply_action(fx, action, zero_means_none=self.zero_means_none,
                               stops_mode=self.stops_mode)
            row.actions[t] = res.action
            row.flat[t] = not fx.positions

    def next(self):
        super().next()
        t = self._t
        if t == len(self.bars) - 1:  # final close, after the end-of-pass closes
            for fx, row in zip(self.brokers, self.rows, strict=True):
                self._reward(row, t, fx.balance, fx.equity)


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
    ``zero_means_none=True``; the test period may use ``stops_mode="test"``). The same as a
    group of one (:func:`run_agent_group`).
    """
    return run_agent_group(bars, features, row_policy(policy), [seed], start, end,
                           broker_config, zero_means_none=zero_means_none,
                           stops_mode=stops_mode, history=history, feed=feed)[0]


def run_agent_group(bars: pd.DataFrame | BarArrays, features: np.ndarray | FeatureMatrix,
                    policy: RowPolicy, seeds: Sequence[int | None], start=None, end=None,
                    broker_config: BrokerConfig | None = None, *, zero_means_none: bool = False,
                    stops_mode: str = "research", history: int = HISTORY_BARS,
                    feed: str = "numpy") -> list[PassResult]:
    """:func:`run_agent_pass` for ``len(seeds)`` passes over the same bars side by side, bar by
    bar (one replay, one broker per pass): ``policy.reset_rows(seeds)`` first, then one
    ``policy.act_rows`` per bar for all of them. Each pass's result is the same, byte for
    byte, as in a group of any other size (a :class:`RowPolicy` answers each row as if alone;
    tests/test_pass_groups.py)."""
    if not 1 <= len(seeds) <= MAX_GROUP:
        raise NeurofxError(f"a group of passes has 1..{MAX_GROUP} passes, got {len(seeds)}")
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
    policy.reset_rows(list(seeds))
    results = run_replay_group(window, AgentStrategy, len(seeds), broker_config=broker_config,
                               feed=feed, close_at_end=True, policy=policy, states=states,
                               atr=atr, zero_means_none=zero_means_none, stops_mode=stops_mode)
    return [PassResult(replay=res, states=states, accounts=res.strategy.accounts,
                       actions=res.strategy.actions, rewards=res.strategy.rewards,
                       actor_inputs=res.strategy.actor_inputs, flat=res.strategy.flat,
                       first_bar=lo, seed=seed)
            for res, seed in zip(results, seeds, strict=True)]
