"""Drive a :class:`~neurofx.strategies.broker.ForexBroker` from a backtrader replay.

backtrader supplies the clock (``cheat_on_open=True``): ``next_open`` runs at the open of bar t
(broker ``open_bar``, then the ``decide(t)`` hook, whose orders fill at that open) and ``next``
at its close (broker ``close_bar``: intrabar TP/SL, stop-out, marking, then the per-bar record).
backtrader's own broker is never given an order.

``decide`` must only use bars closed before t: :attr:`ReplayStrategy.view` holds array views
ending at t-1 plus the open quote of t. The bt lines (``self.data.high[0]``...) already hold bar
t's full values at ``next_open`` time; strategies must not read them.

One replay may drive several brokers over the same bars in lockstep (:func:`run_replay_group`:
a group of passes, one ``decide`` per bar for all of them, the vectorised-environment pattern);
each broker's deals and records are exactly those of a replay of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import backtrader as bt
import numpy as np
import pandas as pd

from neurofx.deals import Deal

from .broker import ACCOUNT_FIELDS, AccountState, BrokerConfig, ForexBroker
from .feeds import BarArrays, make_feed

RECORD_FIELDS = ACCOUNT_FIELDS


class MarketView:
    """What a decision at the open of bar ``t`` may see: closed bars ``[0, t)`` and the open quote.

    The ``past_*`` arrays are read-only views ending at bar t-1 (index -1 = last closed bar).
    """

    __slots__ = ("t", "time_s", "bid", "ask", "_bars")

    def __init__(self, bars: BarArrays, t: int, bid: float, ask: float):
        self._bars, self.t, self.bid, self.ask = bars, t, bid, ask
        self.time_s = int(bars.time_s[t])

    def _past(self, name: str) -> np.ndarray:
        v = getattr(self._bars, name)[: self.t]
        v.flags.writeable = False
        return v

    past_time_s = property(lambda self: self._past("time_s"))
    past_open = property(lambda self: self._past("open"))
    past_high = property(lambda self: self._past("high"))
    past_low = property(lambda self: self._past("low"))
    past_close = property(lambda self: self._past("close"))
    past_volume = property(lambda self: self._past("volume"))
    past_spread_points = property(lambda self: self._past("spread_points"))


@dataclass(frozen=True)
class ReplayResult:
    """Deals, per-bar account arrays (at each bar's close) and the final account.

    ``strategy`` is the strategy that ran, or for one pass of a group the object holding that
    pass's own per-bar arrays (e.g. :class:`~neurofx.strategies.agent.AgentRow`)."""

    deals: list[Deal]
    time_s: np.ndarray
    records: dict[str, np.ndarray]
    final: AccountState
    config: BrokerConfig
    rejected_orders: int
    strategy: object

    @property
    def balance(self) -> np.ndarray:
        return self.records["balance_usd"]

    @property
    def equity(self) -> np.ndarray:
        return self.records["equity_usd"]


class ReplayStrategy(bt.Strategy):
    """Base strategy: subclasses override :meth:`decide` and trade through ``self.fx``.

    Constructed by :func:`run_replay` with plain keyword arguments; subclasses take their own
    keyword arguments and pass ``bars``, ``fx`` and ``close_at_end`` on to this ``__init__``.
    ``fx`` may be a list of brokers (:func:`run_replay_group`): every one opens and closes each
    bar, ``self.fx`` is the first, and ``decide`` trades through ``self.brokers``.
    """

    def __init__(self, bars: BarArrays, fx: ForexBroker | Sequence[ForexBroker],
                 close_at_end: bool = True):
        self.bars = bars
        self.brokers = [fx] if isinstance(fx, ForexBroker) else list(fx)
        self.fx = self.brokers[0]
        self.close_at_end = close_at_end
        self.view: MarketView | None = None
        self.tables = [np.full((len(bars), len(RECORD_FIELDS)), np.nan) for _ in self.brokers]
        self.table = self.tables[0]
        self.records = {name: self.table[:, i] for i, name in enumerate(RECORD_FIELDS)}
        self.bars_done = 0
        self._t = -1

    def decide(self, t: int) -> None:
        """Hook at the open of bar ``t``: read ``self.view``, place orders on ``self.fx``."""

    # backtrader calls prenext*/nextstart* before its minimum period; route all to one path
    def next_open(self):
        self._t = t = self._t + 1
        b = self.bars
        if self.data.datetime[0] != b.dtnum[t]:
            raise RuntimeError(f"feed and bar arrays out of step at bar {t}")
        for fx in self.brokers:
            fx.open_bar(int(b.time_s[t]), b.open[t], b.spread_points[t])
        self.view = MarketView(b, t, self.fx.bid, self.fx.ask)  # same quote for every broker
        self.decide(t)

    def next(self):
        t = self._t
        b = self.bars
        last = t == len(b) - 1
        for fx, table in zip(self.brokers, self.tables, strict=True):
            fx.close_bar(b.high[t], b.low[t], b.close[t])
            if self.close_at_end and last and fx.positions:
                fx.close_all(reason="end_of_test")
            table[t] = fx.account_values()
        self.bars_done = t + 1

    prenext_open = nextstart_open = next_open
    prenext = nextstart = next


def run_replay(bars: pd.DataFrame | BarArrays, strategy_cls: type[ReplayStrategy], start=None,
               end=None, broker_config: BrokerConfig | None = None, feed: str = "numpy",
               close_at_end: bool = True, **strategy_kwargs) -> ReplayResult:
    """Replay ``bars`` (``start <= time < end``) through ``strategy_cls`` with a fresh broker.

    Open positions are closed at the last bar's close (reason ``end_of_test``) unless
    ``close_at_end`` is False. ``strategy_kwargs`` go to the strategy's ``__init__``.
    """
    return run_replay_group(bars, strategy_cls, 1, start, end, broker_config, feed,
                            close_at_end, **strategy_kwargs)[0]


def run_replay_group(bars: pd.DataFrame | BarArrays, strategy_cls: type[ReplayStrategy],
                     brokers: int, start=None, end=None,
                     broker_config: BrokerConfig | None = None, feed: str = "numpy",
                     close_at_end: bool = True, **strategy_kwargs) -> list[ReplayResult]:
    """:func:`run_replay` with ``brokers`` fresh brokers driven by one strategy in lockstep;
    one result per broker, each ``strategy`` the object the strategy's ``row_record(i)``
    gives (the strategy itself when it has none)."""
    arrays = bars if isinstance(bars, BarArrays) else BarArrays.from_frame(bars)
    if start is not None or end is not None:
        arrays = arrays.window(start, end)
    fxs = [ForexBroker(broker_config) for _ in range(brokers)]
    cerebro = bt.Cerebro(stdstats=False, cheat_on_open=True)
    cerebro.adddata(make_feed(arrays, feed))
    cerebro.addstrategy(strategy_cls, bars=arrays, fx=fxs if brokers > 1 else fxs[0],
                        close_at_end=close_at_end, **strategy_kwargs)
    strat = cerebro.run()[0]
    if strat.bars_done != len(arrays):
        raise RuntimeError(f"replay stopped after {strat.bars_done} of {len(arrays)} bars")
    row = getattr(strat, "row_record", lambda i: strat)
    return [ReplayResult(
        deals=list(fx.deals), time_s=arrays.time_s,
        records={name: table[:, k] for k, name in enumerate(RECORD_FIELDS)},
        final=fx.snapshot(), config=fx.config, rejected_orders=fx.rejected_orders,
        strategy=row(i),
    ) for i, (fx, table) in enumerate(zip(fxs, strat.tables, strict=True))]
