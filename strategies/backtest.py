"""The test replay: an agent trades a period it never saw, bar by bar through the broker.

One *pass* replays the period (default January 2024) and records the account (balance, equity,
margin level) at every bar's close and every deal. The neural agent's pass is deterministic by
default (the VAE head's mean action); ``passes=N`` runs N stochastic passes (seeds
``pass_seed(seed, i)``), because a policy is "trained" when its passes agree (spec 6). The
rule-based SMA crossover (``ma_cross``) runs through the same path. The statistics and files of
the passes are ``neurofx.reports`` (``reports.passes``, ``reports.backtest``); the test step
that joins them is ``neurofx.pipeline.test``. See docs/testing-and-reports.md.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

from neurofx.errors import NeurofxError

from .agent import MAX_GROUP, run_agent_group
from .broker import BrokerConfig, spread_price
from .feeds import BarArrays
from .ma_cross import MaCrossStrategy, ma_cross_backtest
from .policies import pass_seed, row_policy
from .replay import ReplayResult
from .trained_agent import LoadedPolicy


@dataclass(frozen=True)
class Period:
    """A test period of whole days: ``start`` to ``end`` inclusive (the bars' clock)."""

    start: date
    end: date

    @property
    def start_ts(self) -> pd.Timestamp:
        return pd.Timestamp(self.start)

    @property
    def end_exclusive_ts(self) -> pd.Timestamp:
        """The first instant after the period (midnight after ``end``)."""
        return pd.Timestamp(self.end + timedelta(days=1))

    def __str__(self) -> str:
        return f"{self.start.isoformat()} to {self.end.isoformat()}"


@dataclass(frozen=True)
class PassOutcome:
    """A finished replay pass and exactly the bars it ran on."""

    label: str
    replay: ReplayResult
    bars: BarArrays
    seed: int | None = None  # the stochastic pass's seed; None for a deterministic pass

    def spreads(self) -> np.ndarray:
        """Each bar's spread in price units as the broker quoted it (:func:`spread_price`)."""
        cfg = self.replay.config
        return np.array([spread_price(s, cfg) for s in self.bars.spread_points],
                        dtype=np.float64)


def ma_cross_settings(**overrides) -> dict:
    """The SMA-crossover's keyword settings: its defaults updated with ``overrides``."""
    params = inspect.signature(MaCrossStrategy.__init__).parameters
    settings = {k: p.default for k, p in params.items()
                if k not in ("self", "bars", "fx", "close_at_end")}
    unknown = sorted(set(overrides) - set(settings))
    if unknown:
        raise NeurofxError(f"ma-cross: unknown setting {unknown[0]!r}; valid: "
                           f"{', '.join(settings)}")
    settings.update(overrides)
    return settings


def run_ma_cross_pass(bars: pd.DataFrame, period: Period, broker_config: BrokerConfig,
                      **settings) -> PassOutcome:
    """The SMA-crossover demo over ``period`` (its SMAs warm up inside the period)."""
    arrays = BarArrays.from_frame(bars).window(period.start_ts, period.end_exclusive_ts)
    summary = ma_cross_backtest(arrays, broker_config=broker_config,
                                **ma_cross_settings(**settings))
    return PassOutcome("ma-cross", summary.result, arrays)


def run_neural_passes(loaded: LoadedPolicy, bars: pd.DataFrame, features: np.ndarray,
                      period: Period, broker_config: BrokerConfig, passes: int = 0,
                      seed: int = 0, stops_mode: str = "research",
                      group: int = MAX_GROUP) -> list[PassOutcome]:
    """One deterministic pass (``passes=0``) or ``passes`` stochastic ones seeded with
    ``pass_seed(seed, i)``, replayed side by side in groups of at most ``group`` (the same
    passes whatever the group size). ``features`` are computed over all of ``bars``."""
    arrays = BarArrays.from_frame(bars)
    seeds = [None] if passes == 0 else [pass_seed(seed, i) for i in range(passes)]
    policy = row_policy(loaded.policy)
    results = []
    for g in range(0, len(seeds), group):
        results += run_agent_group(arrays, features, policy, seeds[g:g + group],
                                   period.start_ts, period.end_exclusive_ts, broker_config,
                                   stops_mode=stops_mode)
    out = []
    for i, (s, res) in enumerate(zip(seeds, results, strict=True), start=1):
        window = BarArrays(**{k: v[res.first_bar:res.first_bar + res.steps]
                              for k, v in arrays.__dict__.items()})
        out.append(PassOutcome("neural" if s is None else f"pass {i}", res.replay, window,
                               seed=s))
    return out
