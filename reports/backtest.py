"""The files of a test run (``runs/<name>/test/``), from one pass or several.

One pass: report.html, metrics.json, trades.csv, deals.csv (``neurofx.deals``; Real-ORL research
imports it), series.npz and the chart PNGs. Several passes: the same for the median pass (by net
profit) with the spread of all passes in its run table, plus ``passes.csv`` and
``passes/pass-NN/`` (each pass's data files) and ``passes/comparison.html``.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from neurofx.deals import write_deals_csv
from neurofx.errors import NeurofxError
from neurofx.reports.baselines import BASELINES_CSV, BASELINES_NPZ, Baselines, write_baselines
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
from neurofx.reports.metrics import Metrics
from neurofx.reports.passes import PassData, PassSpread, pass_spread, write_passes_csv
from neurofx.reports.walk_forward import (
    WALK_FORWARD_CSV,
    WALK_FORWARD_PNG,
    MonthResult,
    write_walk_forward,
)

PASSES_CSV = "passes.csv"
PASSES_DIR = "passes"


def bars_clock(bars: pd.DataFrame, tz: str = "") -> str:
    """The report's name for the clock of ``bars`` (``load_bars`` keeps it in
    ``attrs["clock"]``): ``tz`` itself when ``data.tz`` converted the bars to it, else
    ``broker time, <zone>``, or ``broker time`` when the file's zone is unknown."""
    clock = bars.attrs.get("clock")
    if not clock:
        return DEFAULT_CLOCK
    return clock if tz and clock == tz else f"{DEFAULT_CLOCK}, {clock}"


def write_pass_files(folder: Path, p: PassData, metrics: Metrics, title: str,
                     clock: str = DEFAULT_CLOCK) -> Path:
    """The data files of one pass (no charts, no HTML: ``neurofx report FOLDER`` makes them)."""
    write_deals_csv(folder / DEALS_CSV, p.deals)
    write_trades_csv(folder / TRADES_CSV, p.trades())
    write_series(folder / SERIES_NPZ, p.series)
    write_metrics(folder / METRICS_JSON, metrics, title,
                  {"seed": p.seed, "rejected orders": p.rejected_orders}, clock)
    return folder


@dataclass(frozen=True)
class BacktestReport:
    """What :func:`write_backtest_report` wrote: the main report, its metrics, the pass spread
    and the comparison of the passes (None with one pass)."""

    report_path: Path
    metrics: Metrics
    spread: PassSpread | None
    comparison_path: Path | None
    baselines: Baselines | None = None
    walk_forward: tuple[MonthResult, ...] = ()

    def moved(self, old: Path, new: Path) -> BacktestReport:
        """The same report after its folder ``old`` was renamed to ``new``."""
        def at(p: Path | None) -> Path | None:
            return None if p is None else Path(new) / Path(p).relative_to(old)
        return dataclasses.replace(self, report_path=at(self.report_path),
                                   comparison_path=at(self.comparison_path))


def write_backtest_report(out_dir: str | Path, passes: Sequence[PassData], title: str,
                          extra: Mapping | None = None, clock: str = DEFAULT_CLOCK,
                          final_dir: str | Path | None = None,
                          baselines: Baselines | None = None,
                          walk_forward: Sequence[MonthResult] = ()) -> BacktestReport:
    """Write the test report of one pass, or of several passes (median pass + spread).

    With one pass its report goes to ``out_dir``. With several, each pass's data files go
    to ``passes/pass-NN/``, their comparison to ``passes/comparison.html``, the spread to
    ``passes.csv``, and ``out_dir`` holds the report of the median pass (by net profit).
    ``clock`` names the clock of the bar times (see :func:`bars_clock`). ``final_dir``: the
    name ``out_dir`` will have when the caller moves it into place (the pass folders are named
    by it in the comparison); default ``out_dir``. ``baselines`` go to baselines.csv/.npz and
    the report, ``walk_forward`` months to walk_forward.csv and the report.
    """
    if not passes:
        raise NeurofxError("test: no passes to report; run at least one pass")
    out = Path(out_dir)
    extra = dict(extra or {})
    # outputs of an earlier run with passes would no longer match this report
    shutil.rmtree(out / PASSES_DIR, ignore_errors=True)
    for name in (PASSES_CSV, BASELINES_CSV, BASELINES_NPZ, WALK_FORWARD_CSV, WALK_FORWARD_PNG):
        (out / name).unlink(missing_ok=True)
    if baselines is not None:
        write_baselines(out, baselines)
    if walk_forward:
        write_walk_forward(out, walk_forward)
    more = {"baselines": baselines, "walk_forward": walk_forward or None}
    if len(passes) == 1:
        p = passes[0]
        extra["rejected orders"] = p.rejected_orders
        path = write_report(out, p.deals, p.series, p.deposit_usd, title, extra,
                            excursions=p.excursions, clock=clock, **more)
        return BacktestReport(path, p.metrics(), None, None, baselines, tuple(walk_forward))
    metrics = [p.metrics() for p in passes]
    spread = pass_spread(passes, metrics)
    folders = [write_pass_files(out / PASSES_DIR / f"pass-{i:02d}", p, m,
                                f"{title}, pass {i} (seed {p.seed})", clock)
               for i, (p, m) in enumerate(zip(passes, metrics, strict=True), start=1)]
    shown = Path(final_dir) if final_dir is not None else out
    comparison = write_comparison(out / PASSES_DIR, [
        dataclasses.replace(load_run(f), title=f"pass {i}", run_dir=shown / f.relative_to(out))
        for i, f in enumerate(folders, 1)], clock=clock)
    write_passes_csv(out / PASSES_CSV, spread)
    m = passes[spread.median_pass]
    extra.update({"report of pass": f"{spread.median_pass + 1} of {len(passes)} "
                                    f"(median net profit, seed {m.seed})",
                  "rejected orders": m.rejected_orders, **spread.as_extra()})
    path = write_report(out, m.deals, m.series, m.deposit_usd, title, extra,
                        excursions=m.excursions, clock=clock, **more)
    return BacktestReport(path, metrics[spread.median_pass], spread, comparison, baselines,
                          tuple(walk_forward))
