"""One test pass as its report sees it, and the statistics over several passes.

A stochastic agent is tested with N passes (spec 6); the spread of their outcomes (min, median,
max of the key figures) says whether the policy is trained: its passes agree. ``passes.csv``
holds one row per pass (:data:`PASS_COLUMNS`).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neurofx.atomic import write_text_atomic
from neurofx.deals import Deal
from neurofx.reports.metrics import BarSeries, Metrics, compute_metrics
from neurofx.reports.trades import TradeTable, trades_from_deals

PASS_COLUMNS = ("pass", "seed", "net_profit_usd", "final_balance_usd", "total_trades",
                "profit_trades_pct", "profit_factor", "equity_drawdown_maximal_usd",
                "equity_drawdown_maximal_pct", "sharpe_daily_annualised")


@dataclass(frozen=True)
class PassData:
    """The data of one replay pass its report is made of: deals (ticket order), per-bar series and
    the excursions of its trades."""

    label: str
    deals: list[Deal]
    series: BarSeries
    deposit_usd: float
    excursions: dict[int, tuple[float, float]]
    rejected_orders: int
    seed: int | None = None  # the stochastic pass's seed; None for a deterministic pass

    def trades(self) -> TradeTable:
        return trades_from_deals(self.deals, self.deposit_usd, self.excursions)

    def metrics(self) -> Metrics:
        return compute_metrics(self.deals, self.series, self.deposit_usd, self.trades())


@dataclass(frozen=True)
class PassSpread:
    """Per-pass key figures and their min/median/max over the passes."""

    rows: list[dict]
    stats: dict[str, tuple[float, float, float]]  # column -> (min, median, max)
    median_pass: int  # index of the pass whose net profit is the (lower) median

    def lines(self) -> list[str]:
        def f(name, fmt):
            lo, med, hi = self.stats[name]
            return f"{format(lo, fmt)} / {format(med, fmt)} / {format(hi, fmt)}"
        return [
            f"passes            {len(self.rows)} stochastic; min / median / max:",
            f"  net profit      {f('net_profit_usd', '+,.2f')} USD",
            f"  trades          {f('total_trades', '.0f')}",
            f"  profit trades   {f('profit_trades_pct', '.1f')} %",
            f"  profit factor   {f('profit_factor', '.2f')}",
            f"  equity drawdown {f('equity_drawdown_maximal_pct', '.2f')} % maximal",
        ]

    def as_extra(self) -> dict[str, str]:
        """The spread as rows of the report's run table."""
        out = {}
        for col, (label, fmt) in _SPREAD_LABELS.items():
            out[f"passes: {label}, min / median / max"] = " / ".join(
                "n/a" if math.isnan(v) else format(v, fmt) for v in self.stats[col])
        return out


_SPREAD_LABELS = {
    "net_profit_usd": ("net profit (USD)", "+,.2f"),
    "final_balance_usd": ("final balance (USD)", ",.2f"),
    "total_trades": ("trades", ".0f"),
    "profit_trades_pct": ("profit trades (%)", ".2f"),
    "profit_factor": ("profit factor", ".2f"),
    "equity_drawdown_maximal_usd": ("equity drawdown maximal (USD)", ",.2f"),
    "equity_drawdown_maximal_pct": ("equity drawdown maximal (%)", ".2f"),
    "sharpe_daily_annualised": ("Sharpe ratio (daily, annualised)", ".2f"),
}


def pass_spread(passes: Sequence[PassData], metrics: Sequence[Metrics]) -> PassSpread:
    """Key figures of each pass and the spread (min, median, max; nan-aware) over them."""
    rows = []
    for i, (p, m) in enumerate(zip(passes, metrics, strict=True), start=1):
        rows.append({"pass": i, "seed": -1 if p.seed is None else p.seed,
                     "net_profit_usd": m.total_net_profit_usd,
                     "final_balance_usd": m.final_balance_usd, "total_trades": m.total_trades,
                     "profit_trades_pct": m.profit_trades_pct, "profit_factor": m.profit_factor,
                     "equity_drawdown_maximal_usd": m.equity_drawdown_maximal_usd,
                     "equity_drawdown_maximal_pct": m.equity_drawdown_maximal_pct,
                     "sharpe_daily_annualised": m.sharpe_daily_annualised})
    stats = {}
    for col in PASS_COLUMNS[2:]:
        v = np.array([r[col] for r in rows], dtype=np.float64)
        finite = v[~np.isnan(v)]
        stats[col] = ((float(finite.min()), float(np.median(finite)), float(finite.max()))
                      if finite.size else (math.nan,) * 3)
    net = np.array([r["net_profit_usd"] for r in rows])
    order = np.argsort(net, kind="stable")
    median_pass = int(order[(len(order) - 1) // 2])
    return PassSpread(rows, stats, median_pass)


def write_passes_csv(path: Path, spread: PassSpread) -> Path:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(PASS_COLUMNS)
    w.writerows([r[c] for c in PASS_COLUMNS] for r in spread.rows)
    return write_text_atomic(path, buf.getvalue())
