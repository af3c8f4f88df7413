"""A classic rule-based demo: simple-moving-average crossover with fixed lots and TP/SL.

At the open of bar t the strategy compares the fast and slow SMAs of the closes of bars t-2 and
t-1 (both closed). A cross up sends the action ``[lots, tp, sl, 0, 0, 0]`` through the seed's
netting rule (closing any sell, opening a buy at ask with TP/SL), a cross down the mirror image.
Between crosses positions run until their TP/SL or the next opposite cross.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from neurofx.errors import NeurofxError

from .broker import BrokerConfig
from .feeds import BarArrays
from .netting import NettingResult, apply_action
from .replay import ReplayResult, ReplayStrategy, run_replay


def sma(values: np.ndarray, period: int) -> np.ndarray:
    """Simple moving average; NaN for the first ``period - 1`` values."""
    out = np.full(len(values), np.nan)
    if len(values) >= period:
        c = np.cumsum(np.concatenate(([0.0], values)))
        out[period - 1:] = (c[period:] - c[:-period]) / period
    return out


class MaCrossStrategy(ReplayStrategy):
    """SMA(fast)/SMA(slow) crossover; TP/SL as fractions of 1000 points (spec 3.1)."""

    def __init__(self, bars: BarArrays, fx, close_at_end: bool = True, fast_bars: int = 12,
                 slow_bars: int = 48, lots: float = 0.1, tp_frac: float = 0.5,
                 sl_frac: float = 0.3):
        super().__init__(bars, fx, close_at_end)
        if not 1 <= fast_bars < slow_bars:
            raise NeurofxError(f"ma_cross: need 1 <= fast_bars < slow_bars, got {fast_bars}, "
                               f"{slow_bars}")
        # computed once over all closes; decide(t) reads only indices < t
        self.fast = sma(bars.close, fast_bars)
        self.slow = sma(bars.close, slow_bars)
        self.lots, self.tp_frac, self.sl_frac = lots, tp_frac, sl_frac
        self.signals: list[tuple[int, NettingResult]] = []

    def decide(self, t: int) -> None:
        if t < 2:
            return
        prev = self.fast[t - 2] - self.slow[t - 2]
        last = self.fast[t - 1] - self.slow[t - 1]
        if np.isnan(prev) or np.isnan(last):
            return
        if prev <= 0 < last:
            action = (self.lots, self.tp_frac, self.sl_frac, 0.0, 0.0, 0.0)
        elif prev >= 0 > last:
            action = (0.0, 0.0, 0.0, self.lots, self.tp_frac, self.sl_frac)
        else:
            return
        self.signals.append((t, apply_action(self.fx, action)))


@dataclass(frozen=True)
class MaCrossSummary:
    """Round trips (``out`` deals), wins, money figures in USD, and the full replay result."""

    trades: int
    wins: int
    gross_profit_usd: float
    commission_usd: float
    swap_usd: float
    net_profit_usd: float
    final_balance_usd: float
    result: ReplayResult


def ma_cross_backtest(bars: pd.DataFrame | BarArrays, start=None, end=None,
                      broker_config: BrokerConfig | None = None, feed: str = "numpy",
                      **strategy_kwargs) -> MaCrossSummary:
    """Replay the crossover on ``bars`` between ``start`` and ``end`` and summarise it."""
    res = run_replay(bars, MaCrossStrategy, start=start, end=end, broker_config=broker_config,
                     feed=feed, **strategy_kwargs)
    outs = [d for d in res.deals if d.entry == "out"]
    gross = sum(d.profit for d in outs)
    commission = sum(d.commission for d in res.deals)
    swap = sum(d.swap for d in res.deals)
    return MaCrossSummary(
        trades=len(outs), wins=sum(d.profit > 0 for d in outs),
        gross_profit_usd=round(gross, 2), commission_usd=round(commission, 2),
        swap_usd=round(swap, 2), net_profit_usd=round(gross + commission + swap, 2),
        final_balance_usd=res.final.balance_usd, result=res,
    )
