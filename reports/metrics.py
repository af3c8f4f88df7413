"""MT5 Strategy Tester statistics as pure functions of deal, trade and equity arrays.

Every formula is written out in docs/metrics.md; the names here carry their units. Undefined
values (an average over no trades, a ratio 0/0) are ``nan``; a positive number divided by zero
is ``inf`` (e.g. the profit factor with no losing trade). metrics.json stores ``nan`` as
``null`` and ``inf`` as the string ``"inf"`` (see reports/io.py).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from neurofx.deals import Deal
from neurofx.errors import NeurofxError
from neurofx.reports.stats import (
    daily_sharpe,
    drawdown,
    holding_times,
    hpr_stats,
    lr_stats,
    min_margin_level,
    ratio,
    streaks,
    trade_stats,
    z_score,
)
from neurofx.reports.trades import TradeTable, deal_ledger, sorted_deals, trades_from_deals

BALANCE_TOLERANCE_USD = 0.01  # deals vs recorded balance: one cent


@dataclass(frozen=True, eq=False)
class BarSeries:
    """What the tester records every bar. ``margin_level_pct`` is nan/inf with no margin used."""

    time_s: np.ndarray
    balance_usd: np.ndarray
    equity_usd: np.ndarray
    margin_level_pct: np.ndarray

    def __post_init__(self):
        n = len(self.time_s)
        for f in fields(self):
            arr = getattr(self, f.name)
            if np.ndim(arr) != 1 or len(arr) != n:
                raise NeurofxError(
                    f"series: '{f.name}' has shape {np.shape(arr)}, expected ({n},) like 'time_s'")
        if n == 0:
            raise NeurofxError("series: no bars recorded; a report needs at least one bar")
        if np.any(np.diff(self.time_s) < 0):
            i = int(np.argmax(np.diff(self.time_s) < 0)) + 1
            raise NeurofxError(f"series: 'time_s' goes backwards at bar {i}; record bars in order")
        for name in ("balance_usd", "equity_usd"):
            if not np.all(np.isfinite(getattr(self, name))):
                raise NeurofxError(f"series: '{name}' contains nan or inf; record finite money")

    @classmethod
    def from_arrays(cls, time_s, balance_usd, equity_usd, margin_level_pct=None) -> BarSeries:
        t = np.asarray(time_s, dtype=np.int64)
        margin = (np.full(len(t), np.nan) if margin_level_pct is None
                  else np.asarray(margin_level_pct, dtype=np.float64))
        return cls(t, np.asarray(balance_usd, dtype=np.float64),
                   np.asarray(equity_usd, dtype=np.float64), margin)

    @classmethod
    def from_mapping(cls, m: Mapping) -> BarSeries:
        """Accept ``{"time_s"|"time", "balance_usd"|"balance", "equity_usd"|"equity",
        "margin_level_pct"|"margin_level"}`` (the margin level is optional)."""
        def get(*names, required=True):
            for name in names:
                if name in m:
                    return m[name]
            if required:
                raise NeurofxError(f"series: missing key '{names[0]}' (or '{names[1]}')")
            return None
        return cls.from_arrays(get("time_s", "time"), get("balance_usd", "balance"),
                               get("equity_usd", "equity"),
                               get("margin_level_pct", "margin_level", required=False))


def as_series(series: BarSeries | Mapping) -> BarSeries:
    return series if isinstance(series, BarSeries) else BarSeries.from_mapping(series)


def _f(label: str, kind: str, digits: int = 2):
    # kind (usd, pct, count, ratio, hours, time, plain) and digits drive the report's formatting
    return field(metadata={"label": label, "kind": kind, "digits": digits})


@dataclass(frozen=True)
class Metrics:
    """The report's statistics; see docs/metrics.md for each formula."""

    initial_deposit_usd: float = _f("Initial deposit", "usd")
    final_balance_usd: float = _f("Final balance", "usd")
    final_equity_usd: float = _f("Final equity", "usd")
    bars: int = _f("Bars", "count")
    first_bar_time_s: int = _f("First bar", "time")
    last_bar_time_s: int = _f("Last bar", "time")
    total_net_profit_usd: float = _f("Total net profit", "usd")
    gross_profit_usd: float = _f("Gross profit", "usd")
    gross_loss_usd: float = _f("Gross loss", "usd")
    unallocated_commission_usd: float = _f("Commission of positions still open", "usd")
    profit_factor: float = _f("Profit factor", "ratio")
    expected_payoff_usd: float = _f("Expected payoff", "usd")
    recovery_factor: float = _f("Recovery factor", "ratio")
    sharpe_daily_annualised: float = _f("Sharpe ratio (daily equity, annualised)", "ratio")
    sharpe_daily_returns: int = _f("Daily returns in Sharpe", "count")
    sharpe_mt5_per_trade: float = _f("Sharpe ratio (MT5, per trade)", "ratio")
    balance_drawdown_absolute_usd: float = _f("Balance drawdown absolute", "usd")
    balance_drawdown_maximal_usd: float = _f("Balance drawdown maximal", "usd")
    balance_drawdown_maximal_pct: float = _f("Balance drawdown maximal", "pct")
    balance_drawdown_relative_pct: float = _f("Balance drawdown relative", "pct")
    balance_drawdown_relative_usd: float = _f("Balance drawdown relative", "usd")
    equity_drawdown_absolute_usd: float = _f("Equity drawdown absolute", "usd")
    equity_drawdown_maximal_usd: float = _f("Equity drawdown maximal", "usd")
    equity_drawdown_maximal_pct: float = _f("Equity drawdown maximal", "pct")
    equity_drawdown_relative_pct: float = _f("Equity drawdown relative", "pct")
    equity_drawdown_relative_usd: float = _f("Equity drawdown relative", "usd")
    equity_drawdown_longest_bars: int = _f("Longest time below an equity peak (bars)", "count")
    min_margin_level_pct: float = _f("Minimal margin level", "pct")
    z_score: float = _f("Z-score", "ratio")
    z_score_probability_pct: float = _f("Z-score probability", "pct")
    ahpr: float = _f("AHPR", "ratio", 4)
    ahpr_pct: float = _f("AHPR", "pct", 4)
    ghpr: float = _f("GHPR", "ratio", 4)
    ghpr_pct: float = _f("GHPR", "pct", 4)
    lr_correlation: float = _f("LR correlation", "ratio")
    lr_standard_error_usd: float = _f("LR standard error", "usd")
    total_trades: int = _f("Total trades", "count")
    total_deals: int = _f("Total deals", "count")
    short_trades: int = _f("Short trades", "count")
    short_trades_won_pct: float = _f("Short trades won", "pct")
    long_trades: int = _f("Long trades", "count")
    long_trades_won_pct: float = _f("Long trades won", "pct")
    profit_trades: int = _f("Profit trades", "count")
    profit_trades_pct: float = _f("Profit trades (of total)", "pct")
    loss_trades: int = _f("Loss trades", "count")
    loss_trades_pct: float = _f("Loss trades (of total)", "pct")
    largest_profit_trade_usd: float = _f("Largest profit trade", "usd")
    largest_loss_trade_usd: float = _f("Largest loss trade", "usd")
    average_profit_trade_usd: float = _f("Average profit trade", "usd")
    average_loss_trade_usd: float = _f("Average loss trade", "usd")
    max_consecutive_wins_count: int = _f("Maximum consecutive wins", "count")
    max_consecutive_wins_usd: float = _f("Maximum consecutive wins", "usd")
    max_consecutive_losses_count: int = _f("Maximum consecutive losses", "count")
    max_consecutive_losses_usd: float = _f("Maximum consecutive losses", "usd")
    maximal_consecutive_profit_usd: float = _f("Maximal consecutive profit", "usd")
    maximal_consecutive_profit_count: int = _f("Maximal consecutive profit", "count")
    maximal_consecutive_loss_usd: float = _f("Maximal consecutive loss", "usd")
    maximal_consecutive_loss_count: int = _f("Maximal consecutive loss", "count")
    average_consecutive_wins: float = _f("Average consecutive wins", "plain", 0)
    average_consecutive_losses: float = _f("Average consecutive losses", "plain", 0)
    average_consecutive_wins_exact: float = _f("Average consecutive wins (exact)", "plain")
    average_consecutive_losses_exact: float = _f("Average consecutive losses (exact)", "plain")
    holding_time_min_hours: float = _f("Minimal position holding time", "hours")
    holding_time_max_hours: float = _f("Maximal position holding time", "hours")
    holding_time_avg_hours: float = _f("Average position holding time", "hours")

    def as_dict(self) -> dict:
        return asdict(self)


METRIC_FIELDS = tuple(f.name for f in fields(Metrics))
METRIC_LABELS = {f.name: f.metadata["label"] for f in fields(Metrics)}
METRIC_KINDS = {f.name: f.metadata["kind"] for f in fields(Metrics)}
METRIC_DIGITS = {f.name: f.metadata["digits"] for f in fields(Metrics)}
INT_METRICS = frozenset(f.name for f in fields(Metrics) if f.type in ("int", int))


def check_balance_identity(deals: Iterable[Deal], series: BarSeries, deposit_usd: float) -> float:
    """Return deposit + sum(profit + commission + swap); raise if the last bar disagrees."""
    expected = float(deal_ledger(list(deals), deposit_usd).balance_usd[-1])
    recorded = float(series.balance_usd[-1])
    if not abs(expected - recorded) <= BALANCE_TOLERANCE_USD:
        raise NeurofxError(
            f"series: last bar's balance {recorded:.2f} differs from deposit {deposit_usd:.2f} "
            f"+ deal profits, commissions and swaps = {expected:.2f}; record every deal")
    return expected


def compute_metrics(
    deals: Iterable[Deal], series: BarSeries | Mapping, deposit_usd: float,
    trades: TradeTable | None = None,
) -> Metrics:
    """All report statistics from the deal list, the per-bar series and the initial deposit."""
    if not (isinstance(deposit_usd, numbers.Real) and not isinstance(deposit_usd, bool)
            and math.isfinite(deposit_usd) and deposit_usd > 0):
        raise NeurofxError(f"deposit: {deposit_usd!r} is not a positive amount; pass e.g. 10000")
    deposit_usd = float(deposit_usd)
    ds = sorted_deals(deals)
    bars = as_series(series)
    check_balance_identity(ds, bars, deposit_usd)
    ledger = deal_ledger(ds, deposit_usd)
    tt = trades if trades is not None else trades_from_deals(ds, deposit_usd)
    net = tt.net_usd

    ts = trade_stats(net, tt.direction)
    bdd = drawdown(ledger.balance_usd, deposit_usd)
    edd = drawdown(bars.equity_usd, deposit_usd)
    sharpe_d, n_days = daily_sharpe(bars.time_s, bars.equity_usd, deposit_usd)
    hpr = hpr_stats(net, deposit_usd)
    lr = lr_stats(net, deposit_usd)
    z = z_score(net)
    st = streaks(net)
    ht = holding_times(tt.holding_hours)
    total_net = float(ledger.balance_usd[-1] - deposit_usd)
    return Metrics(
        initial_deposit_usd=deposit_usd,
        final_balance_usd=float(bars.balance_usd[-1]),
        final_equity_usd=float(bars.equity_usd[-1]),
        bars=len(bars.time_s),
        first_bar_time_s=int(bars.time_s[0]),
        last_bar_time_s=int(bars.time_s[-1]),
        total_net_profit_usd=total_net,
        gross_profit_usd=ts.gross_profit_usd,
        gross_loss_usd=ts.gross_loss_usd,
        unallocated_commission_usd=ledger.unallocated_commission_usd,
        profit_factor=ts.profit_factor,
        expected_payoff_usd=ts.expected_payoff_usd,
        recovery_factor=ratio(total_net, edd.maximal_usd),
        sharpe_daily_annualised=sharpe_d,
        sharpe_daily_returns=n_days,
        sharpe_mt5_per_trade=hpr.sharpe_mt5,
        balance_drawdown_absolute_usd=bdd.absolute_usd,
        balance_drawdown_maximal_usd=bdd.maximal_usd,
        balance_drawdown_maximal_pct=bdd.maximal_pct,
        balance_drawdown_relative_pct=bdd.relative_pct,
        balance_drawdown_relative_usd=bdd.relative_usd,
        equity_drawdown_absolute_usd=edd.absolute_usd,
        equity_drawdown_maximal_usd=edd.maximal_usd,
        equity_drawdown_maximal_pct=edd.maximal_pct,
        equity_drawdown_relative_pct=edd.relative_pct,
        equity_drawdown_relative_usd=edd.relative_usd,
        equity_drawdown_longest_bars=edd.longest_underwater_points,
        min_margin_level_pct=min_margin_level(bars.margin_level_pct),
        z_score=z.z,
        z_score_probability_pct=z.probability_pct,
        ahpr=hpr.ahpr,
        ahpr_pct=(hpr.ahpr - 1.0) * 100.0,
        ghpr=hpr.ghpr,
        ghpr_pct=(hpr.ghpr - 1.0) * 100.0,
        lr_correlation=lr.correlation,
        lr_standard_error_usd=lr.standard_error_usd,
        total_trades=ts.total_trades,
        total_deals=len(ds),
        short_trades=ts.short_trades,
        short_trades_won_pct=ts.short_trades_won_pct,
        long_trades=ts.long_trades,
        long_trades_won_pct=ts.long_trades_won_pct,
        profit_trades=ts.profit_trades,
        profit_trades_pct=ts.profit_trades_pct,
        loss_trades=ts.loss_trades,
        loss_trades_pct=ts.loss_trades_pct,
        largest_profit_trade_usd=ts.largest_profit_trade_usd,
        largest_loss_trade_usd=ts.largest_loss_trade_usd,
        average_profit_trade_usd=ts.average_profit_trade_usd,
        average_loss_trade_usd=ts.average_loss_trade_usd,
        max_consecutive_wins_count=st.max_wins_count,
        max_consecutive_wins_usd=st.max_wins_usd,
        max_consecutive_losses_count=st.max_losses_count,
        max_consecutive_losses_usd=st.max_losses_usd,
        maximal_consecutive_profit_usd=st.maximal_profit_usd,
        maximal_consecutive_profit_count=st.maximal_profit_count,
        maximal_consecutive_loss_usd=st.maximal_loss_usd,
        maximal_consecutive_loss_count=st.maximal_loss_count,
        average_consecutive_wins=st.average_wins,
        average_consecutive_losses=st.average_losses,
        average_consecutive_wins_exact=st.average_wins_exact,
        average_consecutive_losses_exact=st.average_losses_exact,
        holding_time_min_hours=ht[0],
        holding_time_max_hours=ht[1],
        holding_time_avg_hours=ht[2],
    )


def summary_lines(m: Metrics) -> list[str]:
    """The key figures for a terminal summary, one per line."""
    def num(x, fmt):
        if isinstance(x, float) and math.isnan(x):
            return "n/a"
        if isinstance(x, float) and math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return format(x, fmt)
    return [
        f"net profit        {num(m.total_net_profit_usd, '+,.2f')} USD "
        f"(balance {num(m.final_balance_usd, ',.2f')} from {num(m.initial_deposit_usd, ',.2f')})",
        f"trades            {m.total_trades} ({m.profit_trades} won, "
        f"{num(m.profit_trades_pct, '.1f')} %; long {num(m.long_trades_won_pct, '.1f')} %, "
        f"short {num(m.short_trades_won_pct, '.1f')} %)",
        f"profit factor     {num(m.profit_factor, '.2f')}   "
        f"recovery factor {num(m.recovery_factor, '.2f')}",
        f"sharpe            {num(m.sharpe_daily_annualised, '.2f')} (daily, annualised)   "
        f"{num(m.sharpe_mt5_per_trade, '.2f')} (MT5 per trade)",
        f"equity drawdown   {num(m.equity_drawdown_maximal_usd, ',.2f')} USD "
        f"({num(m.equity_drawdown_maximal_pct, '.2f')} %) maximal",
        f"balance drawdown  {num(m.balance_drawdown_maximal_usd, ',.2f')} USD "
        f"({num(m.balance_drawdown_maximal_pct, '.2f')} %) maximal",
    ]
