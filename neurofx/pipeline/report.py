"""Report: regenerate one run's report from its saved files, compare several runs, or compare
neurofx's statistics of an MT5 Trade History Report with the report's own Results
(docs/testing-and-reports.md).

A RUN is a run name (its report is ``<runs.root>/NAME/test/``) or a folder holding a
metrics.json. One RUN: the report is rebuilt from the saved deals.csv, series.npz and trades.csv
(metrics.json comes out identical). Several: a comparison (equity curves overlaid, metrics side
by side with differences to the first run, and the training logs of ``neurofx study`` when the
runs have them).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from neurofx.collectors.mt5_report import deals_of_report, read_trade_history_report
from neurofx.config import Config
from neurofx.errors import NeurofxError
from neurofx.reports.baselines import baselines_comparison_html, read_baselines
from neurofx.reports.html import write_comparison, write_report
from neurofx.reports.io import METRICS_JSON, load_run
from neurofx.reports.key_figures import comparison_lines
from neurofx.reports.metrics import Metrics, summary_lines
from neurofx.reports.mt5_results import Mt5Comparison, compare_deals, default_out
from neurofx.reports.mt5_results import write_comparison as write_mt5_comparison
from neurofx.reports.training import training_section
from neurofx.reports.walk_forward import read_walk_forward


@dataclass(frozen=True)
class ReportResult:
    """What :func:`run_report` wrote: the report (one run) or the comparison (several), with
    the runs' titles or labels and metrics, and the training chart of a comparison."""

    path: Path
    names: tuple[str, ...]  # one run: its report's title; several: the runs' short labels
    metrics: tuple[Metrics, ...]
    training_chart: Path | None = None

    def lines(self) -> list[str]:
        """The terminal summary: key figures (one run) or their table (several), the paths."""
        if len(self.metrics) == 1:
            out = [self.names[0], *summary_lines(self.metrics[0])]
        else:
            out = comparison_lines(self.names, self.metrics)
            if self.training_chart is not None:
                out.append(f"training logs compared: {self.training_chart}")
        return [*out, f"report: {self.path}"]


@dataclass(frozen=True)
class Mt5Result:
    """What :func:`run_mt5_comparison` wrote: the comparison table and its files."""

    comparison: Mt5Comparison
    text_path: Path
    json_path: Path

    def lines(self) -> list[str]:
        return [f"report: {self.text_path}", *self.comparison.lines()]


def resolve_report_dir(runs_root: str | Path, run: str) -> Path:
    """The folder holding RUN's metrics.json: a folder as given (or its ``test/``), else
    ``<runs_root>/RUN/test`` or ``<runs_root>/RUN``."""
    p = Path(run)
    root = Path(runs_root)
    for cand in (p, p / "test", root / run / "test", root / run):
        if (cand / METRICS_JSON).is_file():
            return cand
    raise NeurofxError(f"{run}: no report found (looked for metrics.json in {root / run / 'test'}"
                       f" and {p}); run 'neurofx test --run {p.name or run}' first")


def run_label(report_dir: Path) -> str:
    """Short name of a run: its run folder's name (the parent of a ``test`` folder)."""
    d = report_dir.resolve()
    return d.parent.name if d.name == "test" else d.name


def run_report(cfg: Config, runs: Sequence[str], out: str | Path | None = None) -> ReportResult:
    """Regenerate the report of one run (into ``out``, default in place) or compare several
    (into ``out``, default ``<runs.root>/compare/<A>_vs_<B>...``)."""
    if not runs:
        raise NeurofxError("report: name a RUN (or several), or pass --mt5 REPORT.xlsx|.html")
    root = cfg.runs.root
    folders = [resolve_report_dir(root, r) for r in runs]
    data = [load_run(f) for f in folders]
    if len(data) == 1:
        d = data[0]
        path = write_report(Path(out) if out else folders[0], d.deals, d.series,
                            d.metrics.initial_deposit_usd, d.title, d.extra,
                            excursions=d.trades.excursions(), clock=d.clock,
                            baselines=read_baselines(folders[0]),
                            walk_forward=read_walk_forward(folders[0]))
        return ReportResult(path, (d.title,), (d.metrics,))
    labels = _unique([run_label(f) for f in folders])
    folder = Path(out) if out else Path(root) / "compare" / _safe("_vs_".join(labels))
    short = [dataclasses.replace(r, title=lb) for r, lb in zip(data, labels, strict=True)]
    section = training_section([r.run_dir for r in data], labels, folder)
    sections = []
    yardstick = baselines_comparison_html(labels, [read_baselines(f) for f in folders])
    if yardstick:
        sections.append(("Baselines", yardstick))
    if section:
        sections.append(("Training", section))
    path = write_comparison(folder, short, sections=sections)
    return ReportResult(path, tuple(labels), tuple(r.metrics for r in data),
                        folder / "training.png" if section else None)


def run_mt5_comparison(cfg: Config, report_path: str | Path,
                       out: str | Path | None = None) -> Mt5Result:
    """Compare neurofx's statistics of an MT5 Trade History Report's deals with its Results;
    saved into ``out`` (default ``<runs.root>/mt5/<report name>``)."""
    comparison = compare_mt5_report(report_path)
    folder = Path(out) if out else default_out(cfg.runs.root, report_path)
    txt, js = write_mt5_comparison(comparison, folder)
    return Mt5Result(comparison, txt, js)


def compare_mt5_report(path: str | Path) -> Mt5Comparison:
    """Read an MT5 Trade History Report (``collectors.mt5_report``) and compare neurofx's
    statistics of its deals with its Results section (``reports.mt5_results``)."""
    report = read_trade_history_report(path)
    rd = deals_of_report(report)
    return compare_deals(str(path), rd.deals, rd.deposit_usd, report.results,
                         rd.later_balance_ops)


def _unique(labels: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for lb in labels:
        seen[lb] = seen.get(lb, 0) + 1
        out.append(lb if seen[lb] == 1 else f"{lb}-{seen[lb]}")
    return out


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name)[:120] or "comparison"
