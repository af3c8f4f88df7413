"""The test replay: an agent trades a period it never saw, and the run's report is written.

One *pass* replays the period (default January 2024) through the broker and records the account
(balance, equity, margin level) at every bar's close and every deal. The neural agent's pass is
deterministic by default (the VAE head's mean action); ``passes=N`` runs N stochastic passes
(seeds ``seed .. seed+N-1``) and reports the spread of their outcomes, because a policy is
"trained" when its passes agree (spec 6). The rule-based SMA crossover (``ma_cross``) runs
through the same path. See docs/testing-and-reports.md.

Files of ``runs/<name>/test/`` (``write_test_run``): report.html, metrics.json, trades.csv,
deals.csv (``neurofx.deals.write_deals_csv``; Real-ORL research imports it), series.npz, the
chart PNGs, and with passes ``passes.csv`` plus ``passes/pass-NN/`` (one report per pass) and
``passes/comparison.html``.

Finding and checking the trained encoder and actor is ``strategies/trained_agent.py`` (its names
are importable from here too).
"""

from __future__ import annotations

import csv
import dataclasses
import inspect
import io
import math
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from neurofx.atomic import write_text_atomic
from neurofx.deals import Deal, write_deals_csv
from neurofx.errors import NeurofxError
from neurofx.reports.html import write_comparison, write_report
from neurofx.reports.io import (
    DEALS_CSV,
    DEFAULT_CLOCK,
    METRICS_JSON,
    SERIES_NPZ,
    TRADES_CSV,
    load_run,
    write_metrics,
    write_series,
    write_trades_csv,
)
from neurofx.reports.metrics import BarSeries, Metrics, compute_metrics
from neurofx.reports.trades import sorted_deals, trades_from_deals

from .broker import BrokerConfig
from .feeds import BarArrays
from .ma_cross import MaCrossStrategy, ma_cross_backtest
from .replay import ReplayResult
from .trained_agent import MODEL_FILES, LoadedPolicy, load_test_policy, model_paths  # noqa: F401

DEFAULT_START = "2024-01-01"
DEFAULT_END = "2024-01-31"
PASSES_CSV = "passes.csv"
PASSES_DIR = "passes"


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


def _parse_day(text: str, flag: str) -> date:
    try:
        return datetime.strptime(text.strip(), "%Y-%m-%d").date()
    except ValueError:
        raise NeurofxError(f"{flag} {text!r}: not a date; write it as YYYY-MM-DD, "
                           f"e.g. {flag} {DEFAULT_START}") from None


def parse_period(start: str | None = None, end: str | None = None) -> Period:
    """Parse ``--start``/``--end`` (YYYY-MM-DD, both inclusive); defaults: January 2024."""
    p = Period(_parse_day(start or DEFAULT_START, "--start"), _parse_day(end or DEFAULT_END,
                                                                          "--end"))
    if p.end < p.start:
        raise NeurofxError(f"--end {p.end} is before --start {p.start}; pass an end on or after "
                           "the start")
    return p


def broker_config_from(cfg: Mapping) -> BrokerConfig:
    """The :class:`BrokerConfig` of a resolved configuration's ``[broker]`` and ``[data]``."""
    b = cfg["broker"]
    return BrokerConfig(
        symbol=str(cfg["data"]["symbol"]),
        initial_deposit_usd=float(b["deposit_usd"]),
        leverage=float(b["leverage"]),
        min_spread_points=float(b["min_spread_points"]),
        commission_usd_per_lot_side=float(b["commission_per_lot_usd"]),
        stop_out_level_pct=float(b["stop_out_pct"]),
    )


def load_config_bars(cfg: Mapping) -> pd.DataFrame:
    """The bars named by ``[data]`` (empty ``file``: the bundled EURUSD H1 set)."""
    from neurofx.data import load_bars

    d = cfg["data"]
    return load_bars(d["file"] or None, fmt=d["format"], source_tz=d["source_tz"] or None,
                     tz=d["tz"] or None)


def bars_clock(bars: pd.DataFrame, tz: str = "") -> str:
    """The report's name for the clock of ``bars`` (``load_bars`` keeps it in
    ``attrs["clock"]``): ``tz`` itself when ``data.tz`` converted the bars to it, else
    ``broker time, <zone>``, or ``broker time`` when the file's zone is unknown."""
    clock = bars.attrs.get("clock")
    if not clock:
        return DEFAULT_CLOCK
    return clock if tz and clock == tz else f"{DEFAULT_CLOCK}, {clock}"


def check_period_in_bars(bars: pd.DataFrame, period: Period) -> None:
    """One-line error when the bars hold nothing of the period."""
    idx = pd.DatetimeIndex(bars.index)
    n = int(((idx >= period.start_ts) & (idx < period.end_exclusive_ts)).sum())
    if n == 0:
        src = bars.attrs.get("source", "bar file")
        raise NeurofxError(
            f"{src}: no bars from {period}; the file covers {idx[0]:%Y-%m-%d} to "
            f"{idx[-1]:%Y-%m-%d}, pass --start/--end inside that range")


# ----------------------------------------------------------------------------- one pass
@dataclass(frozen=True)
class PassOutcome:
    """What one replay pass leaves for its report: deals, per-bar series and excursions."""

    label: str
    deals: list[Deal]
    series: BarSeries
    deposit_usd: float
    excursions: dict[int, tuple[float, float]]
    rejected_orders: int
    seed: int | None = None  # the stochastic pass's seed; None for a deterministic pass

    def metrics(self) -> Metrics:
        trades = trades_from_deals(self.deals, self.deposit_usd, self.excursions)
        return compute_metrics(self.deals, self.series, self.deposit_usd, trades)


def series_from_records(time_s, records: Mapping[str, np.ndarray]) -> BarSeries:
    """The report's bar series from a replay's per-bar account records."""
    return BarSeries.from_arrays(time_s, records["balance_usd"], records["equity_usd"],
                                 records["margin_level_pct"])


def trade_excursions(deals: Sequence[Deal], bars: BarArrays, config: BrokerConfig
                     ) -> dict[int, tuple[float, float]]:
    """(MFE, MAE) in USD of every ``out`` deal, from the bars its position was held through.

    MFE = max(0, best floating P/L), MAE = min(0, worst floating P/L) of the closed volume,
    before commission; longs are valued at bid, shorts at ask = bid + max(spread, min spread).
    A position opened at the open of bar i and closed during bar k saw the full ranges of bars
    i .. k-1, the open of bar k and its exit price; what bar k did after the exit is unknown
    and left out (so an exit at the open, or a TP/SL hit in the entry bar, adds only prices
    known to have been traded). The end-of-test close at bar k's close also counts bar k.
    """
    spread = np.round(np.maximum(bars.spread_points, config.min_spread_points) * config.point,
                      config.digits)
    out: dict[int, tuple[float, float]] = {}
    for d in deals:
        if d.entry != "out":
            continue
        i = int(np.searchsorted(bars.time_s, d.entry_time, side="left"))
        k = int(np.searchsorted(bars.time_s, d.time, side="left"))
        if k >= len(bars) or bars.time_s[k] != d.time or i > k:
            raise NeurofxError(f"deal {d.ticket}: time {d.time} is not a bar of the replay; "
                               "pass the bars the replay ran on")
        long = d.side == "sell"  # an out sell closes a long position
        off = 0.0 if long else spread
        # the end-of-test close comes after bar k's whole range
        full = k + 1 if d.reason == "end_of_test" else k
        known = [bars.open[k] + (0.0 if long else spread[k]), d.price]
        hi = np.append((bars.high + off)[i:full], known)
        lo = np.append((bars.low + off)[i:full], known)
        scale = d.volume * config.contract_size_units
        if long:
            best, worst = (hi.max() - d.entry_price) * scale, (lo.min() - d.entry_price) * scale
        else:
            best, worst = (d.entry_price - lo.min()) * scale, (d.entry_price - hi.max()) * scale
        out[d.ticket] = (round(max(0.0, best), 2), round(min(0.0, worst), 2))
    return out


def outcome_from_replay(result: ReplayResult, bars: BarArrays, label: str,
                        seed: int | None = None) -> PassOutcome:
    """Turn a finished replay (over exactly ``bars``) into a :class:`PassOutcome`."""
    deals = sorted_deals(result.deals)
    return PassOutcome(
        label=label, deals=deals, series=series_from_records(result.time_s, result.records),
        deposit_usd=float(result.config.initial_deposit_usd),
        excursions=trade_excursions(deals, bars, result.config),
        rejected_orders=int(result.rejected_orders), seed=seed)


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
    return outcome_from_replay(summary.result, arrays, "ma-cross")


# ----------------------------------------------------------------------------- neural agent
def run_neural_passes(loaded: LoadedPolicy, bars: pd.DataFrame, features: np.ndarray,
                      period: Period, broker_config: BrokerConfig, passes: int = 0,
                      seed: int = 0, stops_mode: str = "research") -> list[PassOutcome]:
    """One deterministic pass (``passes=0``) or ``passes`` stochastic ones seeded with
    ``pass_seed(seed, i)``. ``features`` are computed over all of ``bars``."""
    from .agent import run_agent_pass
    from .policies import pass_seed

    arrays = BarArrays.from_frame(bars)
    seeds = [None] if passes == 0 else [pass_seed(seed, i) for i in range(passes)]
    out = []
    for i, s in enumerate(seeds, start=1):
        res = run_agent_pass(arrays, features, loaded.policy, period.start_ts,
                             period.end_exclusive_ts, broker_config, seed=s,
                             stops_mode=stops_mode)
        window = BarArrays(**{k: v[res.first_bar:res.first_bar + res.steps]
                              for k, v in arrays.__dict__.items()})
        out.append(outcome_from_replay(res.replay, window, "neural" if s is None
                                       else f"pass {i}", seed=s))
    return out


# ----------------------------------------------------------------------------- passes
PASS_COLUMNS = ("pass", "seed", "net_profit_usd", "final_balance_usd", "total_trades",
                "profit_trades_pct", "profit_factor", "equity_drawdown_maximal_usd",
                "equity_drawdown_maximal_pct", "sharpe_daily_annualised")


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


def pass_spread(outcomes: Sequence[PassOutcome], metrics: Sequence[Metrics]) -> PassSpread:
    """Key figures of each pass and the spread (min, median, max; nan-aware) over them."""
    rows = []
    for i, (o, m) in enumerate(zip(outcomes, metrics, strict=True), start=1):
        rows.append({"pass": i, "seed": -1 if o.seed is None else o.seed,
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


# ----------------------------------------------------------------------------- writing
def write_pass_files(folder: Path, o: PassOutcome, metrics: Metrics, title: str,
                     clock: str = DEFAULT_CLOCK) -> Path:
    """The data files of one pass (no charts, no HTML: ``neurofx report FOLDER`` makes them)."""
    write_deals_csv(folder / DEALS_CSV, o.deals)
    write_trades_csv(folder / TRADES_CSV, trades_from_deals(o.deals, o.deposit_usd,
                                                            o.excursions))
    write_series(folder / SERIES_NPZ, o.series)
    write_metrics(folder / METRICS_JSON, metrics, title,
                  {"seed": o.seed, "rejected orders": o.rejected_orders}, clock)
    return folder


@dataclass(frozen=True)
class TestRun:
    """What ``write_test_run`` wrote: the main report, its metrics and the pass spread."""

    __test__ = False  # not a pytest class

    report_path: Path
    metrics: Metrics
    spread: PassSpread | None
    comparison_path: Path | None


def write_test_run(out_dir: str | Path, outcomes: Sequence[PassOutcome], title: str,
                   extra: Mapping | None = None, clock: str = DEFAULT_CLOCK) -> TestRun:
    """Write the test report of one pass, or of several passes (median pass + spread).

    With one outcome its report goes to ``out_dir``. With several, each pass's data files go
    to ``passes/pass-NN/``, their comparison to ``passes/comparison.html``, the spread to
    ``passes.csv``, and ``out_dir`` holds the report of the median pass (by net profit).
    ``clock`` names the clock of the bar times (see :func:`bars_clock`).
    """
    if not outcomes:
        raise NeurofxError("test: no passes to report; run at least one pass")
    out = Path(out_dir)
    extra = dict(extra or {})
    # outputs of an earlier run with passes would no longer match this report
    shutil.rmtree(out / PASSES_DIR, ignore_errors=True)
    (out / PASSES_CSV).unlink(missing_ok=True)
    if len(outcomes) == 1:
        o = outcomes[0]
        extra["rejected orders"] = o.rejected_orders
        path = write_report(out, o.deals, o.series, o.deposit_usd, title, extra,
                            excursions=o.excursions, clock=clock)
        return TestRun(path, o.metrics(), None, None)
    metrics = [o.metrics() for o in outcomes]
    spread = pass_spread(outcomes, metrics)
    folders = [write_pass_files(out / PASSES_DIR / f"pass-{i:02d}", o, m,
                                f"{title}, pass {i} (seed {o.seed})", clock)
               for i, (o, m) in enumerate(zip(outcomes, metrics, strict=True), start=1)]
    comparison = write_comparison(out / PASSES_DIR, [
        dataclasses.replace(load_run(f), title=f"pass {i}") for i, f in enumerate(folders, 1)],
        clock=clock)
    write_passes_csv(out / PASSES_CSV, spread)
    m = outcomes[spread.median_pass]
    extra.update({"report of pass": f"{spread.median_pass + 1} of {len(outcomes)} "
                                    f"(median net profit, seed {m.seed})",
                  "rejected orders": m.rejected_orders, **spread.as_extra()})
    path = write_report(out, m.deals, m.series, m.deposit_usd, title, extra,
                        excursions=m.excursions, clock=clock)
    return TestRun(path, metrics[spread.median_pass], spread, comparison)
