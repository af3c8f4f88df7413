"""Test: replay a period the agent never saw and write the run's report (seed Test.mq5;
docs/testing-and-reports.md).

:func:`run_test` loads the trained models (neural agent) or sets up the SMA-crossover demo,
replays the configured bars through the broker (``strategies.backtest``), turns each pass into
the data of its report (:func:`pass_data`: excursions and series, ``reports.excursions``) and
writes ``<runs.root>/<run>/test/`` (``reports.backtest``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, datetime

import pandas as pd

from neurofx.atomic import atomic_folder
from neurofx.config import Config, TestSettings, run_dir, snapshot
from neurofx.errors import NeurofxError
from neurofx.locks import exclusive
from neurofx.reports.backtest import BacktestReport, bars_clock, write_backtest_report
from neurofx.reports.excursions import trade_excursions
from neurofx.reports.metrics import BarSeries, summary_lines
from neurofx.reports.passes import PassData
from neurofx.reports.trades import sorted_deals
from neurofx.strategies.backtest import (
    PassOutcome,
    Period,
    ma_cross_settings,
    run_ma_cross_pass,
    run_neural_passes,
)
from neurofx.strategies.trained_agent import LoadedPolicy, load_test_policy, model_paths

DEFAULT_START = TestSettings.start
DEFAULT_END = TestSettings.end
MA_PREFIX = "ma_"  # [test] keys of the SMA-crossover's settings


@dataclass(frozen=True)
class BacktestResult:
    """What :func:`run_test` did: the title of its report and what it wrote."""

    title: str
    report: BacktestReport
    passes: int  # passes replayed (1: deterministic or the demo)

    def lines(self) -> list[str]:
        """The terminal summary: title, key figures, the spread of the passes, the paths."""
        out = [self.title]
        spread = self.report.spread
        if spread is not None:
            k = spread.median_pass
            out.append(f"report of pass {k + 1} of {self.passes} (median net profit, seed "
                       f"{spread.rows[k]['seed']}); all passes below")
        out += summary_lines(self.report.metrics)
        if spread is not None:
            out += spread.lines()
            out.append(f"passes compared: {self.report.comparison_path}")
        out.append(f"report: {self.report.report_path}")
        return out


def _parse_day(text: str, flag: str) -> date:
    try:
        return datetime.strptime(text.strip(), "%Y-%m-%d").date()
    except ValueError:
        raise NeurofxError(f"{flag} {text!r}: not a date; write it as YYYY-MM-DD, "
                           f"e.g. {flag} {DEFAULT_START}") from None


def parse_period(start: str | None = None, end: str | None = None) -> Period:
    """Parse ``--start``/``--end`` (YYYY-MM-DD, both inclusive); defaults: January 2024."""
    p = Period(_parse_day(start or DEFAULT_START, "--start"),
               _parse_day(end or DEFAULT_END, "--end"))
    if p.end < p.start:
        raise NeurofxError(f"--end {p.end} is before --start {p.start}; pass an end on or after "
                           "the start")
    return p


def check_period_in_bars(bars: pd.DataFrame, period: Period) -> None:
    """One-line error when the period reaches past the bars' first or last day (or holds
    none of them)."""
    idx = pd.DatetimeIndex(bars.index)
    n = int(((idx >= period.start_ts) & (idx < period.end_exclusive_ts)).sum())
    first, last = idx[0].date(), idx[-1].date()
    if n == 0 or period.start < first or period.end > last:
        src = bars.attrs.get("source", "bar file")
        what = "no bars from" if n == 0 else "the file does not cover all of"
        raise NeurofxError(
            f"{src}: {what} {period}; the file covers {first:%Y-%m-%d} to "
            f"{last:%Y-%m-%d}, pass --start/--end inside that range")


def check_settings(t: TestSettings) -> None:
    """The ``[test]`` values that do not fit together, as one line naming the flag."""
    if t.agent == "ma-cross" and t.passes:
        raise NeurofxError("--passes: the ma-cross agent is deterministic; drop --passes "
                           "(test.passes) or use --agent neural")
    if t.agent == "ma-cross" and (t.encoder or t.actor):
        flag = "--encoder" if t.encoder else "--actor"
        raise NeurofxError(f"{flag}: the ma-cross agent uses no models; drop {flag} "
                           f"(test.{flag[2:]}) or use --agent neural")


def pass_data(outcome: PassOutcome) -> PassData:
    """What the report of a finished pass is made of: its deals in ticket order, the account
    series at every bar's close and the excursions of its trades (at the broker's quotes)."""
    res = outcome.replay
    deals = sorted_deals(res.deals)
    rec = res.records
    series = BarSeries.from_arrays(res.time_s, rec["balance_usd"], rec["equity_usd"],
                                   rec["margin_level_pct"])
    excursions = trade_excursions(deals, outcome.bars, outcome.spreads(),
                                  res.config.contract_size_units)
    return PassData(label=outcome.label, deals=deals, series=series,
                    deposit_usd=float(res.config.initial_deposit_usd), excursions=excursions,
                    rejected_orders=int(res.rejected_orders), seed=outcome.seed)


def run_test(cfg: Config, run: str) -> BacktestResult:
    """Replay ``[test]``'s period with its agent on ``[data]``'s bars and ``[broker]``'s
    account, and write the report into ``<runs.root>/<run>/test/``."""
    t = cfg.test
    check_settings(t)
    period = parse_period(t.start, t.end)
    loaded = None
    if t.agent == "neural":  # models first: a missing model must not wait for the bars
        paths = model_paths(cfg.runs.root, run, t.encoder or None, t.actor or None)
        loaded = load_test_policy(paths, run, stochastic=t.passes > 0)
    bars = cfg.data.load_bars()
    check_period_in_bars(bars, period)
    with exclusive(run_dir(cfg, run), "run folder"):
        return _run_test(cfg, run, period, loaded, bars)


def _run_test(cfg: Config, run: str, period: Period, loaded: LoadedPolicy | None,
              bars: pd.DataFrame) -> BacktestResult:
    t = cfg.test
    clock = bars_clock(bars, cfg.data.tz)
    broker = cfg.broker
    folder = run_dir(cfg, run) / "test"
    extra = {"agent": t.agent, "period": f"{period} ({clock})",
             "bars file": cfg.data.file or "bundled EURUSD_H1.csv.gz",
             "deposit": f"{broker.initial_deposit_usd:,.2f} USD",
             "leverage": f"1:{broker.leverage:g}",
             "commission": f"{broker.commission_usd_per_lot_side:g} USD per lot and side",
             "min spread": f"{broker.min_spread_points:g} points"}
    if t.agent == "ma-cross":
        s = ma_cross_settings(**{k[len(MA_PREFIX):]: v for k, v in dataclasses.asdict(t).items()
                                 if k.startswith(MA_PREFIX)})
        outcomes = [run_ma_cross_pass(bars, period, broker, **s)]
        extra["strategy"] = (f"SMA({s['fast_bars']}) / SMA({s['slow_bars']}) crossover, "
                             f"{s['lots']} lots, TP {s['tp_frac']} and SL {s['sl_frac']} "
                             "x 1000 points")
        label = "SMA-crossover demo"
    else:
        outcomes = run_neural_passes(loaded, bars, cfg.data.features(bars), period, broker,
                                     t.passes, t.seed, t.stops)
        extra.update(loaded.describe())
        extra["mode"] = ("deterministic (VAE mean)" if not t.passes else
                         f"{t.passes} stochastic passes (VAE samples), seed {t.seed}")
        extra["stops rule"] = t.stops
        label = "neural agent"
    title = f"{run}: {label}, {broker.symbol} {cfg.data.timeframe}, {period}"
    data = [pass_data(o) for o in outcomes]
    # the folder is written whole under a temporary name and swapped in: a reader (or a
    # killed run) never leaves metrics of one test beside the report of another
    with atomic_folder(folder) as tmp:
        snapshot(cfg, tmp, "test")
        report = write_backtest_report(tmp, data, title, extra, clock, final_dir=folder)
    return BacktestResult(title, report.moved(tmp, folder), len(outcomes))
