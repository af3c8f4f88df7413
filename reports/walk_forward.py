"""Month by month: the agent's and the baselines' figures of each month of a walk-forward test
(``walk_forward.csv``), its table and its chart, with months on the agent's training bars
marked in-sample. docs/testing-and-reports.md, "Walk-forward".
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path

from neurofx.atomic import write_text_atomic
from neurofx.errors import NeurofxError
from neurofx.reports import charts
from neurofx.reports.baselines import AGENT, RANDOM, Baselines, csv_number, read_csv_rows

WALK_FORWARD_CSV = "walk_forward.csv"
WALK_FORWARD_PNG = "walk_forward.png"
ROWS = (AGENT, "flat", "buy-and-hold", "ma-cross", RANDOM)
FIGURES = ("net_profit_usd", "trades", "profit_factor", "equity_drawdown_maximal_pct",
           "sharpe_daily_annualised")
EXTRA = ("random_net_profit_min_usd", "random_net_profit_max_usd", "agent_percentile")
COLUMNS = ("month", "in_sample", *(f"{r.replace('-', '_')}_{f}" for r in ROWS for f in FIGURES),
           *EXTRA)
_SAMPLE = {True: "yes", False: "no", None: "unknown"}


@dataclass(frozen=True)
class MonthResult:
    """One month: ``YYYY-MM``, whether it overlaps the agent's training bars (None: unknown)
    and the figures of :data:`COLUMNS` (nan where a baseline was not run)."""

    month: str
    in_sample: bool | None
    values: dict[str, float]

    @classmethod
    def of(cls, month: str, in_sample: bool | None, b: Baselines) -> MonthResult:
        values = {}
        for name in ROWS:
            r = b.row(name)
            for f in FIGURES:
                values[f"{name.replace('-', '_')}_{f}"] = (
                    math.nan if r is None or r.passes == 0 else float(getattr(r, f)))
        rnd = b.row(RANDOM)
        ok = rnd is not None and rnd.passes > 0
        values["random_net_profit_min_usd"] = rnd.net_profit_min_usd if ok else math.nan
        values["random_net_profit_max_usd"] = rnd.net_profit_max_usd if ok else math.nan
        values["agent_percentile"] = rnd.agent_percentile if ok else math.nan
        return cls(month, in_sample, values)


def write_walk_forward(folder: str | Path, months: Sequence[MonthResult]) -> Path:
    """``walk_forward.csv``: one row per month (:data:`COLUMNS`), written atomically."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for m in months:
        w.writerow([m.month, _SAMPLE[m.in_sample], *(csv_number(m.values[c])
                                                     for c in COLUMNS[2:])])
    return write_text_atomic(Path(folder) / WALK_FORWARD_CSV, buf.getvalue())


def read_walk_forward(folder: str | Path) -> list[MonthResult] | None:
    """The months of a walk-forward test folder, or None when it is not one."""
    path = Path(folder) / WALK_FORWARD_CSV
    rows = read_csv_rows(path, COLUMNS, "'neurofx test --walk-forward'")
    if rows is None:
        return None
    back = {v: k for k, v in _SAMPLE.items()}
    out = []
    for n, row in enumerate(rows[1:], start=2):
        if len(row) != len(COLUMNS) or row[1] not in back:
            raise NeurofxError(f"{path}:{n}: expected {len(COLUMNS)} fields with in_sample "
                               "yes, no or unknown; rerun 'neurofx test --walk-forward'")
        try:
            values = {c: float(x) for c, x in zip(COLUMNS[2:], row[2:], strict=True)}
        except ValueError as exc:
            raise NeurofxError(f"{path}:{n}: not a number ({exc})") from None
        out.append(MonthResult(row[0], back[row[1]], values))
    return out


def walk_forward_chart(months: Sequence[MonthResult], path: str | Path) -> Path:
    """The agent's net profit against the random policy's median, per month."""
    return charts.monthly_bars_chart(
        [m.month for m in months], [m.values["agent_net_profit_usd"] for m in months],
        [m.values["random_net_profit_usd"] for m in months],
        [m.in_sample for m in months], path)


def _money(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:+,.2f}"


def walk_forward_html(months: Sequence[MonthResult], chart_png: bytes | None = None,
                      image=None) -> str:
    """The report's per-month table (and chart: ``image(png, alt)`` makes its tag)."""
    head = ("<tr><th class=\"l\">month</th><th class=\"l\">sample</th><th>agent net (USD)</th>"
            "<th>agent trades</th><th>random median (USD)</th><th>random min .. max (USD)</th>"
            "<th>agent's percentile</th><th>buy-and-hold (USD)</th><th>ma-cross (USD)</th>"
            "<th>flat (USD)</th></tr>")
    rows = []
    for m in months:
        v = m.values
        sample = {True: "in-sample", False: "out-of-sample", None: "unknown"}[m.in_sample]
        span = ("n/a" if math.isnan(v["random_net_profit_min_usd"]) else
                f"{_money(v['random_net_profit_min_usd'])} .. "
                f"{_money(v['random_net_profit_max_usd'])}")
        pct = v["agent_percentile"]
        trades = v["agent_trades"]
        rows.append(
            f'<tr id="wf-{escape(m.month)}"><td class="l">{escape(m.month)}</td>'
            f'<td class="l{" muted" if m.in_sample else ""}">{sample}</td>'
            f"<td>{_money(v['agent_net_profit_usd'])}</td>"
            f"<td>{'n/a' if math.isnan(trades) else f'{trades:.0f}'}</td>"
            f"<td>{_money(v['random_net_profit_usd'])}</td><td>{span}</td>"
            f"<td>{'n/a' if math.isnan(pct) else f'{pct:.0f}'}</td>"
            f"<td>{_money(v['buy_and_hold_net_profit_usd'])}</td>"
            f"<td>{_money(v['ma_cross_net_profit_usd'])}</td>"
            f"<td>{_money(v['flat_net_profit_usd'])}</td></tr>")
    out = [f'<div class="wide"><table>{head}{"".join(rows)}</table></div>']
    n_in = sum(1 for m in months if m.in_sample)
    out.append(f'<p class="muted">Each month tested on its own (the agent\'s state warmed up on '
               f"the bars before it). {n_in} of {len(months)} months overlap the bars the "
               "agent's trajectory store was collected on (in-sample): they flatter it. "
               f"{WALK_FORWARD_CSV} holds every figure.</p>")
    if chart_png is not None and image is not None:
        out.append(image(chart_png, "Agent vs random median per month"))
    return "\n".join(out)
