"""The agent beside its baselines: key figures per baseline, the agent's percentile among the
random passes, the one-sentence verdict, ``baselines.csv`` / ``baselines.npz`` and their HTML.

The baselines themselves (flat, buy-and-hold, the SMA crossover, the random policy matched to
the agent's trade count) are replayed by ``strategies.baselines``; this module only sees their
metrics and equity curves. docs/testing-and-reports.md, "Baselines".
"""

from __future__ import annotations

import csv
import io
import math
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import astuple, dataclass, field, fields
from html import escape
from pathlib import Path

import numpy as np

from neurofx.atomic import atomic_path, write_text_atomic
from neurofx.errors import NeurofxError
from neurofx.reports.metrics import Metrics

BASELINES_CSV = "baselines.csv"
BASELINES_NPZ = "baselines.npz"
AGENT, RANDOM = "agent", "random"


@dataclass(frozen=True)
class BaselineRow:
    """One line of baselines.csv. With several passes (the random policy): medians over the
    passes, the min and max of net profit and trades, and the agent's percentile among the
    passes' net profits. A skipped baseline has ``passes`` 0, nan figures and a ``note``."""

    baseline: str
    passes: int
    net_profit_usd: float
    net_profit_min_usd: float
    net_profit_max_usd: float
    profit_factor: float
    trades: float
    trades_min: float
    trades_max: float
    equity_drawdown_maximal_pct: float
    sharpe_daily_annualised: float
    agent_percentile: float = math.nan
    note: str = ""


BASELINE_COLUMNS = tuple(f.name for f in fields(BaselineRow))
_NAN = math.nan


def percentile_of(value: float, sample: Sequence[float]) -> float:
    """Where ``value`` lies among ``sample``, in percent: the share of the sample below it,
    ties counted half (mid-rank), so the median of an odd sample is at 50 and a value above
    all of it at 100."""
    s = np.asarray(sample, dtype=np.float64)
    if s.size == 0 or math.isnan(value):
        return _NAN
    below = float(np.sum(s < value))
    equal = float(np.sum(s == value))
    return 100.0 * (below + 0.5 * equal) / s.size


def _median(values) -> float:
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    return float(np.median(v)) if v.size else _NAN


def row_of(name: str, metrics: Sequence[Metrics], agent_net_usd: float | None = None,
           note: str = "", shown: Metrics | None = None) -> BaselineRow:
    """The row of a baseline from the metrics of its passes: one pass's own figures, or the
    medians over several (min and max of net profit and trades), or the figures of ``shown``
    (the pass a report shows) with the min and max over all. ``agent_net_usd``: the agent's
    percentile among the passes' net profits."""
    if not metrics:
        return skipped_row(name, note or "no pass")
    net = [m.total_net_profit_usd for m in metrics]
    trades = [m.total_trades for m in metrics]
    pct = _NAN if agent_net_usd is None else percentile_of(agent_net_usd, net)
    ms = [shown] if shown is not None else metrics
    return BaselineRow(name, len(metrics), _median([m.total_net_profit_usd for m in ms]),
                       float(min(net)), float(max(net)),
                       _median([m.profit_factor for m in ms]),
                       _median([m.total_trades for m in ms]),
                       float(min(trades)), float(max(trades)),
                       _median([m.equity_drawdown_maximal_pct for m in ms]),
                       _median([m.sharpe_daily_annualised for m in ms]), pct, note)


def skipped_row(name: str, note: str) -> BaselineRow:
    """A baseline that was not run, and why."""
    return BaselineRow(name, 0, *([_NAN] * 9), note=note)


@dataclass(frozen=True, eq=False)
class Baselines:
    """The agent's row first, then one row per baseline; ``curves``: baseline -> (time_s,
    equity_usd) for the equity chart (the random policy's median pass)."""

    rows: tuple[BaselineRow, ...]
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def row(self, name: str) -> BaselineRow | None:
        return next((r for r in self.rows if r.baseline == name), None)

    def verdict(self) -> str:
        """One sentence: did the agent beat the random policy's median, at which percentile."""
        agent, rnd = self.row(AGENT), self.row(RANDOM)
        if agent is None or rnd is None:
            return "No verdict: the random baseline was not run (--no-baselines)."
        if rnd.passes == 0:
            return f"No verdict against the random policy: {rnd.note}."
        beat = agent.net_profit_usd > rnd.net_profit_usd
        return (f"The agent's net profit of {agent.net_profit_usd:+,.2f} USD "
                f"{'beat' if beat else 'did not beat'} the random policy's median of "
                f"{rnd.net_profit_usd:+,.2f} USD ({rnd.passes} passes of "
                f"{rnd.trades:.0f} trades): it lies at percentile {rnd.agent_percentile:.0f} "
                "of the random passes.")

    def lines(self) -> list[str]:
        """The terminal table and the verdict."""
        out = [f"{'baseline':<14}{'net profit USD':>16}{'trades':>8}{'PF':>7}{'DD %':>8}"
               f"{'sharpe':>8}"]
        for r in self.rows:
            if r.passes == 0:
                out.append(f"{r.baseline:<14}  skipped: {r.note}")
                continue
            span = ""
            if r.passes > 1:
                span = (f"  ({r.passes} passes: {_fmt(r.net_profit_min_usd, '+,.2f')} .. "
                        f"{_fmt(r.net_profit_max_usd, '+,.2f')})")
            out.append(f"{r.baseline:<14}{_fmt(r.net_profit_usd, '+,.2f'):>16}"
                       f"{_fmt(r.trades, '.0f'):>8}{_fmt(r.profit_factor, '.2f'):>7}"
                       f"{_fmt(r.equity_drawdown_maximal_pct, '.2f'):>8}"
                       f"{_fmt(r.sharpe_daily_annualised, '.2f'):>8}{span}")
        return [*out, self.verdict()]


def _fmt(x: float, spec: str) -> str:
    if isinstance(x, float) and math.isnan(x):
        return "n/a"
    if isinstance(x, float) and math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return format(x, spec)


def csv_number(x: float) -> str:
    """A figure in a CSV file: 4 decimals are enough for money, ratios and percentages."""
    return repr(round(float(x), 4))


# ---- files ------------------------------------------------------------------------------------
def write_baselines(folder: str | Path, b: Baselines) -> Path:
    """``baselines.csv`` (one row per baseline, the agent's first) and ``baselines.npz`` (the
    equity curves), atomically; returns the CSV's path."""
    folder = Path(folder)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(BASELINE_COLUMNS)
    for r in b.rows:
        w.writerow([v if isinstance(v, str | int) else csv_number(v) for v in astuple(r)])
    path = write_text_atomic(folder / BASELINES_CSV, buf.getvalue())
    arrays = {}
    for i, (t, e) in enumerate(b.curves.values()):
        arrays[f"time_s_{i}"] = np.asarray(t, dtype=np.int64)
        arrays[f"equity_usd_{i}"] = np.asarray(e, dtype=np.float64)
    arrays["names"] = np.array(list(b.curves), dtype=str)
    with atomic_path(folder / BASELINES_NPZ) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def read_csv_rows(path: Path, columns: Sequence[str], command: str) -> list[list[str]] | None:
    """The rows of a CSV file whose header must be ``columns`` (header included), or None when
    there is no such file; a wrong header is one line naming the file and ``command``."""
    if not path.is_file():
        return None
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    if not rows or tuple(rows[0]) != tuple(columns):
        raise NeurofxError(f"{path}:1: header is not {','.join(columns)}; rerun {command}")
    return rows


def read_baselines(folder: str | Path) -> Baselines | None:
    """The baselines of a test folder, or None when it has none (``--no-baselines`` or a run
    made before them)."""
    folder = Path(folder)
    path = folder / BASELINES_CSV
    rows = read_csv_rows(path, BASELINE_COLUMNS, "'neurofx test'")
    if rows is None:
        return None
    out = []
    for n, row in enumerate(rows[1:], start=2):
        if len(row) != len(BASELINE_COLUMNS):
            raise NeurofxError(f"{path}:{n}: {len(row)} fields, expected {len(BASELINE_COLUMNS)}")
        try:
            out.append(BaselineRow(row[0], int(row[1]), *(float(x) for x in row[2:-1]),
                                   note=row[-1]))
        except ValueError as exc:
            raise NeurofxError(f"{path}:{n}: not a number ({exc}); rerun 'neurofx test'"
                               ) from None
    curves = {}
    npz = folder / BASELINES_NPZ
    if npz.is_file():
        try:
            with np.load(npz, allow_pickle=False) as z:
                for i, name in enumerate(z["names"].tolist()):
                    curves[str(name)] = (z[f"time_s_{i}"], z[f"equity_usd_{i}"])
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise NeurofxError(f"{npz}: not a readable baselines file ({exc}); rerun "
                               "'neurofx test'") from None
    return Baselines(tuple(out), curves)


# ---- HTML -------------------------------------------------------------------------------------
_HEAD = ("baseline", "passes", "net profit (USD)", "min .. max (USD)", "profit factor",
         "trades", "equity drawdown max (%)", "Sharpe (daily)", "agent's percentile", "note")


def _cls(x: float) -> str:
    return "" if math.isnan(x) or x == 0 else ("pos" if x > 0 else "neg")


def _row_cells(r: BaselineRow) -> str:
    if r.passes == 0:
        return (f'<td class="l">{escape(r.baseline)}</td><td>0</td>'
                f'<td class="l muted" colspan="8">skipped: {escape(r.note)}</td>')
    span = (f"{_fmt(r.net_profit_min_usd, '+,.2f')} .. {_fmt(r.net_profit_max_usd, '+,.2f')}"
            if r.passes > 1 else "")
    cells = [f'<td class="l">{escape(r.baseline)}</td>', f"<td>{r.passes}</td>",
             f'<td class="{_cls(r.net_profit_usd)}" data-value="{r.net_profit_usd!r}">'
             f"{_fmt(r.net_profit_usd, '+,.2f')}</td>", f"<td>{escape(span)}</td>",
             f"<td>{_fmt(r.profit_factor, '.2f')}</td>", f"<td>{_fmt(r.trades, '.0f')}</td>",
             f"<td>{_fmt(r.equity_drawdown_maximal_pct, '.2f')}</td>",
             f"<td>{_fmt(r.sharpe_daily_annualised, '.2f')}</td>",
             f"<td>{_fmt(r.agent_percentile, '.0f')}</td>",
             f'<td class="l">{escape(r.note)}</td>']
    return "".join(cells)


def baselines_table(b: Baselines, label: str = "", prefix: str = "b-") -> str:
    """The agent's row and the baselines' rows (``label``: a first column, for comparisons;
    ``prefix``: of the rows' ids)."""
    first = '<th class="l">run</th>' if label else ""
    head = first + "".join(f'<th class="l">{h}</th>' if h in ("baseline", "note")
                           else f"<th>{h}</th>" for h in _HEAD)
    lead = f'<td class="l">{escape(label)}</td>' if label else ""
    rows = "".join(f'<tr id="{prefix}{escape(r.baseline)}">{lead}{_row_cells(r)}</tr>'
                   for r in b.rows)
    return f'<div class="wide"><table><tr>{head}</tr>{rows}</table></div>'


def baselines_html(b: Baselines) -> str:
    """The report's Baselines section: the verdict, then the table."""
    return (f'<p id="verdict"><b>{escape(b.verdict(), quote=False)}</b></p>' + baselines_table(b)
            + '<p class="muted">Same bars and broker as the agent. Random: as many trades as '
              "the agent, at uniformly drawn bars, long or short with equal odds, volume/TP/SL "
              "drawn from the agent's entries; its figures are medians over the passes. "
              "Percentile: the share of random passes with a lower net profit (ties half). "
              "docs/testing-and-reports.md.</p>")


def baselines_comparison_html(labels: Sequence[str], found: Sequence[Baselines | None]) -> str:
    """The comparison page's Baselines section: each run's agent and baseline rows, and its
    verdict; '' when no run has baselines."""
    if all(b is None for b in found):
        return ""
    parts = []
    for i, (label, b) in enumerate(zip(labels, found, strict=True)):
        if b is None:
            parts.append(f'<p class="muted">{escape(label)}: no baselines (tested with '
                         "--no-baselines or before baselines existed).</p>")
            continue
        parts.append(f"<h3>{escape(label)}</h3><p>{escape(b.verdict(), quote=False)}</p>"
                     + baselines_table(b, label, f"r{i}-b-"))
    return "\n".join(parts)
