"""Test: replay a period the agent never saw and write the run's report (seed Test.mq5;
docs/testing-and-reports.md).

:func:`run_test` loads the trained models (neural agent) or sets up the SMA-crossover demo,
replays the configured bars through the broker (``strategies.backtest``), replays the
baselines on the same bars and broker (``strategies.baselines``: flat, buy-and-hold, the SMA
crossover, the random policy matched to the agent's trades), optionally tests each month of a
range on its own (walk-forward, months on the agent's training bars marked in-sample), turns
each pass into the data of its report (:func:`pass_data`: excursions and series,
``reports.excursions``) and writes ``<runs.root>/<run>/test/`` (``reports.backtest``).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from neurofx.atomic import atomic_folder
from neurofx.collectors.store import TrajectoryStore
from neurofx.config import Config, TestSettings, run_dir, snapshot
from neurofx.errors import NeurofxError
from neurofx.locks import exclusive
from neurofx.reports.backtest import BacktestReport, bars_clock, write_backtest_report
from neurofx.reports.baselines import AGENT, RANDOM, Baselines, row_of, skipped_row
from neurofx.reports.excursions import trade_excursions
from neurofx.reports.metrics import BarSeries, Metrics, summary_lines
from neurofx.reports.passes import PassData, pass_spread
from neurofx.reports.trades import sorted_deals
from neurofx.reports.walk_forward import MonthResult
from neurofx.strategies.backtest import (
    PassOutcome,
    Period,
    ma_cross_settings,
    run_ma_cross_pass,
    run_neural_passes,
)
from neurofx.strategies.baselines import (
    agent_entries,
    run_fixed_baselines,
    run_random_baseline,
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
        if self.report.baselines is not None:
            out += self.report.baselines.lines()
        for m in self.report.walk_forward:
            v = m.values
            sample = {True: "in-sample", False: "out-of-sample", None: "sample unknown"}
            rnd = v["random_net_profit_usd"]
            out.append(f"{m.month}  agent {v['agent_net_profit_usd']:+10,.2f} USD, "
                       f"{v['agent_trades']:3.0f} trades; random median "
                       + ("n/a" if np.isnan(rnd) else f"{rnd:+,.2f}")
                       + f" USD ({sample[m.in_sample]})")
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


def parse_months(text: str) -> list[Period]:
    """The months of ``--walk-forward START..END`` (``YYYY-MM``, both included), each a
    :class:`Period` of whole days."""
    start, _, end = text.partition("..")
    try:
        first = datetime.strptime(start, "%Y-%m").date()
        last = datetime.strptime(end, "%Y-%m").date()
    except ValueError:
        raise NeurofxError(f"--walk-forward {text!r}: write the months as YYYY-MM..YYYY-MM, "
                           "e.g. 2023-07..2024-01") from None
    if last < first:
        raise NeurofxError(f"--walk-forward {text}: {end} is before {start}; give the first "
                           "month first")
    out = []
    month = first
    while month <= last:
        following = (month.replace(day=28) + timedelta(days=4)).replace(day=1)
        out.append(Period(month, following - timedelta(days=1)))
        month = following
    return out


def training_period(folder: Path) -> tuple[pd.Timestamp, pd.Timestamp, str] | None:
    """First and last bar of the trajectories the run's models were trained on, and the
    store: read from ``study_<stage>_config.json`` (store and train/validation files) and the
    store's manifest (each trajectory's period); None when unknown (no study record, or the
    store is gone)."""
    spans, stores = [], []
    for stage in ("encoder", "actor"):
        path = folder / f"study_{stage}_config.json"
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        store = doc.get("store") if isinstance(doc, dict) else None
        if not isinstance(store, str) or not store:
            continue
        files = set(doc.get("train_files") or []) | set(doc.get("val_files") or [])
        try:
            entries = TrajectoryStore.open(Path(store)).entries
        except NeurofxError:
            continue
        for e in entries:
            if files and e["file"] not in files:
                continue
            first, _, last = str(e.get("period", "")).partition("..")
            try:
                spans.append((pd.Timestamp(first), pd.Timestamp(last)))
            except ValueError:
                continue
        stores.append(store)
    if not spans:
        return None
    return (min(a for a, _ in spans), max(b for _, b in spans),
            ", ".join(dict.fromkeys(stores)))


def in_sample(period: Period, trained: tuple[pd.Timestamp, pd.Timestamp, str] | None
              ) -> bool | None:
    """Whether ``period`` overlaps the training bars (None: they are unknown)."""
    if trained is None:
        return None
    return bool(period.start_ts <= trained[1] and period.end_exclusive_ts > trained[0])


def check_settings(t: TestSettings) -> None:
    """The ``[test]`` values that do not fit together, as one line naming the flag."""
    if t.agent == "ma-cross" and t.passes:
        raise NeurofxError("--passes: the ma-cross agent is deterministic; drop --passes "
                           "(test.passes) or use --agent neural")
    if t.agent == "ma-cross" and (t.encoder or t.actor):
        flag = "--encoder" if t.encoder else "--actor"
        raise NeurofxError(f"{flag}: the ma-cross agent uses no models; drop {flag} "
                           f"(test.{flag[2:]}) or use --agent neural")


def pass_data(outcome: PassOutcome, excursions: bool = True) -> PassData:
    """What the report of a finished pass is made of: its deals in ticket order, the account
    series at every bar's close and the excursions of its trades (at the broker's quotes;
    ``excursions=False``: none, for passes that only need their metrics)."""
    res = outcome.replay
    deals = sorted_deals(res.deals)
    rec = res.records
    series = BarSeries.from_arrays(res.time_s, rec["balance_usd"], rec["equity_usd"],
                                   rec["margin_level_pct"])
    excursions = trade_excursions(deals, outcome.bars, outcome.spreads(),
                                  res.config.contract_size_units) if excursions else None
    return PassData(label=outcome.label, deals=deals, series=series,
                    deposit_usd=float(res.config.initial_deposit_usd), excursions=excursions,
                    rejected_orders=int(res.rejected_orders), seed=outcome.seed)


def run_test(cfg: Config, run: str) -> BacktestResult:
    """Replay ``[test]``'s period with its agent on ``[data]``'s bars and ``[broker]``'s
    account, and write the report into ``<runs.root>/<run>/test/``."""
    t = cfg.test
    check_settings(t)
    if t.walk_forward:
        months = parse_months(t.walk_forward)
        period = Period(months[0].start, months[-1].end)
    else:
        period = parse_period(t.start, t.end)
    loaded = None
    if t.agent == "neural":  # models first: a missing model must not wait for the bars
        paths = model_paths(cfg.runs.root, run, t.encoder or None, t.actor or None)
        loaded = load_test_policy(paths, run, stochastic=t.passes > 0)
    bars = cfg.data.load_bars()
    check_period_in_bars(bars, period)
    with exclusive(run_dir(cfg, run), "run folder"):
        return _run_test(cfg, run, period, loaded, bars)


def _ma_settings(t: TestSettings) -> dict:
    return ma_cross_settings(**{k[len(MA_PREFIX):]: v for k, v in dataclasses.asdict(t).items()
                                if k.startswith(MA_PREFIX)})


def _agent_passes(cfg: Config, loaded: LoadedPolicy | None, bars: pd.DataFrame,
                  features: np.ndarray | None, period: Period) -> list[PassOutcome]:
    t = cfg.test
    if t.agent == "ma-cross":
        return [run_ma_cross_pass(bars, period, cfg.broker, **_ma_settings(t))]
    return run_neural_passes(loaded, bars, features, period, cfg.broker, t.passes, t.seed,
                             t.stops, t.group)


def baselines_of(cfg: Config, bars: pd.DataFrame, period: Period,
                 agent: list[PassOutcome], agent_metrics: list[Metrics], shown: int,
                 curves: bool = True) -> Baselines:
    """The agent's row (figures of pass ``shown``, the one the report shows) and the
    baselines' rows over ``period``; with ``curves`` the equity of buy-and-hold, the SMA
    crossover and the random policy's median pass for the chart."""
    t, broker = cfg.test, cfg.broker
    agent_row = row_of(AGENT, agent_metrics, shown=agent_metrics[shown])
    rows, lines = [agent_row], {}
    fixed = run_fixed_baselines(bars, period, broker, _ma_settings(t))
    for name, outcome in fixed.items():
        d = pass_data(outcome, excursions=False)
        rows.append(row_of(name, [d.metrics()]))
        if name != "flat":
            lines[name] = (d.series.time_s, d.series.equity_usd)
    trades = int(round(float(np.median([m.total_trades for m in agent_metrics]))))
    if trades == 0:
        rows.append(skipped_row(RANDOM, "the agent made no trade, so there is no trade count, "
                                        "volume, TP or SL to match"))
    else:
        entries = [e for o in agent for e in agent_entries(o)]
        passes = run_random_baseline(bars, period, broker, entries, trades, t.random_passes,
                                     t.seed)
        data = [pass_data(o, excursions=False) for o in passes]
        metrics = [d.metrics() for d in data]
        rows.append(row_of(RANDOM, metrics, agent_row.net_profit_usd,
                           note=f"{len(passes)} seeded passes matched to the agent's "
                                f"{trades} trades"))
        k = pass_spread(data, metrics).median_pass
        lines["random (median pass)"] = (data[k].series.time_s, data[k].series.equity_usd)
    return Baselines(tuple(rows), lines if curves else {})


def _month_results(cfg: Config, loaded: LoadedPolicy | None, bars: pd.DataFrame,
                   features: np.ndarray | None, trained) -> list[MonthResult]:
    """Each month of ``--walk-forward`` tested on its own: the agent (its state warmed up on
    the bars before the month) and, unless ``--no-baselines``, the baselines."""
    t = cfg.test
    out = []
    for month in parse_months(t.walk_forward):
        agent = _agent_passes(cfg, loaded, bars, features, month)
        data = [pass_data(o, excursions=False) for o in agent]
        metrics = [d.metrics() for d in data]
        shown = pass_spread(data, metrics).median_pass if len(data) > 1 else 0
        b = (baselines_of(cfg, bars, month, agent, metrics, shown, curves=False)
             if t.baselines else Baselines((row_of(AGENT, metrics, shown=metrics[shown]),)))
        flag = False if t.agent == "ma-cross" else in_sample(month, trained)
        out.append(MonthResult.of(f"{month.start:%Y-%m}", flag, b))
    return out


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
             "min spread": f"{broker.min_spread_points:g} points",
             "swap": f"long {broker.swap_long_points:+g}, short {broker.swap_short_points:+g} "
                     f"points per lot and night, triple on {broker.triple_swap_weekday}, "
                     f"rollover {broker.rollover_hour:02d}:00"}
    features = None
    if t.agent == "ma-cross":
        s = _ma_settings(t)
        extra["strategy"] = (f"SMA({s['fast_bars']}) / SMA({s['slow_bars']}) crossover, "
                             f"{s['lots']} lots, TP {s['tp_frac']} and SL {s['sl_frac']} "
                             "x 1000 points")
        label = "SMA-crossover demo"
        trained = None
    else:
        features = cfg.data.features(bars)
        extra.update(loaded.describe())
        extra["mode"] = ("deterministic (VAE mean)" if not t.passes else
                         f"{t.passes} stochastic passes (VAE samples), seed {t.seed}")
        extra["stops rule"] = t.stops
        label = "neural agent"
        trained = training_period(run_dir(cfg, run))
        extra["training bars"] = ("unknown (no study record with a readable store)"
                                  if trained is None else
                                  f"{trained[0]:%Y-%m-%d %H:%M} to {trained[1]:%Y-%m-%d %H:%M} "
                                  f"(store {trained[2]})")
        if in_sample(period, trained):
            extra["in-sample"] = ("yes: the test period overlaps the bars the agent was "
                                  "trained on, which flatters it")
    outcomes = _agent_passes(cfg, loaded, bars, features, period)
    title = f"{run}: {label}, {broker.symbol} {cfg.data.timeframe}, {period}"
    if t.walk_forward:
        title += f", walk-forward {t.walk_forward}"
    data = [pass_data(o) for o in outcomes]
    metrics = [p.metrics() for p in data]
    shown = pass_spread(data, metrics).median_pass if len(data) > 1 else 0
    extra["swap charged"] = f"{sum(d.swap for d in data[shown].deals):+,.2f} USD"
    baselines = None
    if t.baselines:
        baselines = baselines_of(cfg, bars, period, outcomes, metrics, shown)
        extra["random baseline"] = (f"{t.random_passes} passes, seed {t.seed}"
                                    if baselines.row(RANDOM).passes else "skipped")
    months = _month_results(cfg, loaded, bars, features, trained) if t.walk_forward else []
    # the folder is written whole under a temporary name and swapped in: a reader (or a
    # killed run) never leaves metrics of one test beside the report of another
    with atomic_folder(folder) as tmp:
        snapshot(cfg, tmp, "test")
        report = write_backtest_report(tmp, data, title, extra, clock, final_dir=folder,
                                       baselines=baselines, walk_forward=months)
    return BacktestResult(title, report.moved(tmp, folder), len(outcomes))
