"""Baselines: what doing nothing, holding, a plain rule and trading at random would have done on
the same bars with the same broker as the agent (docs/testing-and-reports.md, "Baselines").

* **flat**: no order at all (the deposit, untouched);
* **buy-and-hold**: one long position of the deposit's nominal (``deposit / contract size``
  lots, on the lot step) bought at the first bar's ask and closed at the last bar's close;
* **ma-cross**: the SMA-crossover rule (``ma_cross``) with the ``[test]`` ``ma_*`` settings;
* **random**: :class:`RandomEntriesStrategy` over K seeded passes. Each pass opens exactly as
  many positions as the agent made trades, at bars drawn uniformly, long or short with equal
  odds, with volume, TP and SL drawn from the agent's own entries; a new entry first closes
  what is open, so every position is one trade and the trade count matches the agent's.

The statistics of the passes are ``neurofx.reports.baselines``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from neurofx.errors import NeurofxError

from .backtest import PassOutcome, Period, run_ma_cross_pass
from .broker import BUY, SELL, BrokerConfig
from .feeds import BarArrays
from .replay import ReplayStrategy, run_replay

FLAT, BUY_AND_HOLD, MA_CROSS, RANDOM = "flat", "buy-and-hold", "ma-cross", "random"
_RANDOM_STREAM = 15  # the random baseline's seeds differ from the agent's pass seeds
TP_SL_POINTS = 1000.0  # TP/SL fractions are of 1000 points, as the agent's actions (spec 3.1)


@dataclass(frozen=True)
class Entry:
    """One position the agent opened: volume, TP and SL (fractions of 1000 points, 0: none)."""

    lots: float
    tp_frac: float
    sl_frac: float


def buy_and_hold_lots(config: BrokerConfig) -> float:
    """The deposit's nominal in lots (``deposit / contract size``), on the lot step and within
    the broker's volume limits."""
    steps = round(config.initial_deposit_usd / config.contract_size_units / config.lot_step)
    return round(min(max(steps * config.lot_step, config.min_lot), config.max_lot), 8)


class FlatStrategy(ReplayStrategy):
    """Never trades."""


class BuyAndHoldStrategy(ReplayStrategy):
    """Buys ``lots`` at the first bar's open (ask) without TP/SL; the replay closes it at the
    last bar's close (``end_of_test``)."""

    def __init__(self, bars: BarArrays, fx, close_at_end: bool = True, *, lots: float):
        super().__init__(bars, fx, close_at_end)
        self.lots = lots

    def decide(self, t: int) -> None:
        if t == 0:
            self.fx.buy(self.lots, reason="agent")


def random_seed(seed: int, index: int) -> int:
    """The seed of random baseline pass ``index`` of a test with ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(index), _RANDOM_STREAM])
               .generate_state(1)[0])


class RandomEntriesStrategy(ReplayStrategy):
    """``trades`` entries at distinct bars drawn uniformly (never the last bar), each long or
    short with equal odds and with a (volume, TP, SL) drawn from ``entries``. An entry closes
    whatever is open first; TP/SL are priced from the entry quote as the netting rule does
    (buys from ask, sells from bid). All draws come from one generator seeded with ``seed``."""

    def __init__(self, bars: BarArrays, fx, close_at_end: bool = True, *,
                 entries: Sequence[Entry], trades: int, seed: int):
        super().__init__(bars, fx, close_at_end)
        if not entries:
            raise NeurofxError("random baseline: no agent entries to draw volume, TP and SL from")
        rng = np.random.default_rng(seed)
        n = min(int(trades), max(len(bars) - 1, 0))
        at = np.sort(rng.choice(max(len(bars) - 1, 0), size=n, replace=False))
        sides = np.where(rng.random(n) < 0.5, BUY, SELL)
        picks = rng.integers(len(entries), size=n)
        self.plan = {int(t): (str(s), entries[int(k)]) for t, s, k in zip(at, sides, picks,
                                                                          strict=True)}

    def decide(self, t: int) -> None:
        plan = self.plan.get(t)
        if plan is None:
            return
        side, e = plan
        fx, cfg = self.fx, self.fx.config
        fx.close_all(reason="agent")
        sign, ref = (1.0, fx.ask) if side == BUY else (-1.0, fx.bid)
        tp = round(ref + sign * e.tp_frac * TP_SL_POINTS * cfg.point, cfg.digits) \
            if e.tp_frac > 0 else None
        sl = round(ref - sign * e.sl_frac * TP_SL_POINTS * cfg.point, cfg.digits) \
            if e.sl_frac > 0 else None
        (fx.buy if side == BUY else fx.sell)(e.lots, tp=tp, sl=sl, reason="agent")


def agent_entries(outcome: PassOutcome) -> list[Entry]:
    """The (volume, TP, SL) of every position the agent's pass opened: the volume of each
    ``in`` deal with the TP/SL fractions of the action executed at its bar (an agent pass's
    netted actions, or the SMA-crossover's fixed settings)."""
    strat = outcome.replay.strategy
    time_s = outcome.bars.time_s
    out = []
    for d in outcome.replay.deals:
        if d.entry != "in":
            continue
        if hasattr(strat, "actions"):  # an agent pass: the netted action of that bar
            a = strat.actions[int(np.searchsorted(time_s, d.time))]
            tp, sl = (a[1], a[2]) if d.side == BUY else (a[4], a[5])
        else:
            tp, sl = getattr(strat, "tp_frac", 0.0), getattr(strat, "sl_frac", 0.0)
        out.append(Entry(float(d.volume), float(tp), float(sl)))
    return out


def _window(bars, period: Period) -> BarArrays:
    arrays = bars if isinstance(bars, BarArrays) else BarArrays.from_frame(bars)
    return arrays.window(period.start_ts, period.end_exclusive_ts)


def _outcome(label: str, window: BarArrays, strategy, broker: BrokerConfig, *,
             pass_seed: int | None = None, **kwargs) -> PassOutcome:
    res = run_replay(window, strategy, broker_config=broker, close_at_end=True, **kwargs)
    return PassOutcome(label, res, window, seed=pass_seed)


def run_fixed_baselines(bars, period: Period, broker: BrokerConfig,
                        ma_settings: dict) -> dict[str, PassOutcome]:
    """flat, buy-and-hold and the SMA crossover over ``period`` (one pass each)."""
    window = _window(bars, period)
    return {FLAT: _outcome(FLAT, window, FlatStrategy, broker),
            BUY_AND_HOLD: _outcome(BUY_AND_HOLD, window, BuyAndHoldStrategy, broker,
                                   lots=buy_and_hold_lots(broker)),
            MA_CROSS: run_ma_cross_pass(bars, period, broker, **ma_settings)}


def run_random_baseline(bars, period: Period, broker: BrokerConfig, entries: Sequence[Entry],
                        trades: int, passes: int, seed: int) -> list[PassOutcome]:
    """``passes`` seeded passes of :class:`RandomEntriesStrategy` (seeds
    :func:`random_seed`)."""
    window = _window(bars, period)
    out = []
    for i in range(passes):
        s = random_seed(seed, i)
        out.append(_outcome(f"random {i + 1}", window, RandomEntriesStrategy, broker, pass_seed=s,
                            entries=list(entries), trades=trades, seed=s))
    return out
