"""Self-contained HTML reports: one run, or several runs side by side.

The page has no external references: CSS is inline and every chart is an embedded
``data:image/png;base64`` image, so report.html opens from disk anywhere. Each metric cell has
``id="m-<name>"`` and ``data-value`` (the exact JSON value) for scripts and tests.

Times print as the wall clock of the bar file (``clock``, default broker time): bar times are
the file's naive timestamps stored as Unix seconds, so they are formatted back without a zone
shift. Wide tables scroll sideways in their own box instead of widening the page.
"""

from __future__ import annotations

import base64
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from pathlib import Path

from neurofx.atomic import json_safe, write_text_atomic
from neurofx.deals import Deal, write_deals_csv
from neurofx.errors import NeurofxError
from neurofx.reports import charts
from neurofx.reports.baselines import Baselines, baselines_html
from neurofx.reports.io import (
    DEALS_CSV,
    DEFAULT_CLOCK,
    METRICS_JSON,
    REPORT_HTML,
    SERIES_NPZ,
    TRADES_CSV,
    RunData,
    load_run,
    write_metrics,
    write_series,
    write_trades_csv,
)
from neurofx.reports.metrics import (
    METRIC_DIGITS,
    METRIC_FIELDS,
    METRIC_KINDS,
    METRIC_LABELS,
    BarSeries,
    Metrics,
    as_series,
    compute_metrics,
)
from neurofx.reports.rounds import rounds_section
from neurofx.reports.trades import TradeTable, sorted_deals, trades_from_deals
from neurofx.reports.walk_forward import (
    WALK_FORWARD_PNG,
    MonthResult,
    walk_forward_chart,
    walk_forward_html,
)

COMPARISON_HTML = "comparison.html"
COMPARISON_JSON = "comparison.json"
_UNITS = {"usd": "USD", "pct": "%", "hours": "h"}

SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Results", (
        "initial_deposit_usd", "final_balance_usd", "final_equity_usd", "total_net_profit_usd",
        "gross_profit_usd", "gross_loss_usd", "unallocated_commission_usd", "profit_factor",
        "expected_payoff_usd", "recovery_factor", "sharpe_daily_annualised",
        "sharpe_daily_returns", "sharpe_mt5_per_trade")),
    ("Drawdown", (
        "balance_drawdown_absolute_usd", "balance_drawdown_maximal_usd",
        "balance_drawdown_maximal_pct", "balance_drawdown_relative_pct",
        "balance_drawdown_relative_usd", "equity_drawdown_absolute_usd",
        "equity_drawdown_maximal_usd", "equity_drawdown_maximal_pct",
        "equity_drawdown_relative_pct", "equity_drawdown_relative_usd",
        "equity_drawdown_longest_bars", "min_margin_level_pct")),
    ("Statistics", (
        "z_score", "z_score_probability_pct", "ahpr", "ahpr_pct", "ghpr", "ghpr_pct",
        "lr_correlation", "lr_standard_error_usd")),
    ("Trades", (
        "total_trades", "total_deals", "short_trades", "short_trades_won_pct", "long_trades",
        "long_trades_won_pct", "profit_trades", "profit_trades_pct", "loss_trades",
        "loss_trades_pct", "largest_profit_trade_usd", "largest_loss_trade_usd",
        "average_profit_trade_usd", "average_loss_trade_usd")),
    ("Streaks", (
        "max_consecutive_wins_count", "max_consecutive_wins_usd", "max_consecutive_losses_count",
        "max_consecutive_losses_usd", "maximal_consecutive_profit_usd",
        "maximal_consecutive_profit_count", "maximal_consecutive_loss_usd",
        "maximal_consecutive_loss_count", "average_consecutive_wins",
        "average_consecutive_losses", "average_consecutive_wins_exact",
        "average_consecutive_losses_exact")),
    ("Holding times and period", (
        "holding_time_min_hours", "holding_time_max_hours", "holding_time_avg_hours", "bars",
        "first_bar_time_s", "last_bar_time_s")),
)

_CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#222}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ccc}
h3{font-size:14px;margin:16px 0 4px;color:#555}
table{border-collapse:collapse;margin:4px 0 12px}
td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:right;white-space:nowrap}
th{background:#f3f5f8}td.l,th.l{text-align:left}
td.wrap{white-space:normal;overflow-wrap:anywhere;min-width:12em;max-width:56em}
.wide{overflow-x:auto;max-width:100%}
.pos{color:#2e7d32}.neg{color:#c62828}.muted{color:#888}
img{max-width:100%;height:auto;display:block;margin:8px 0}
.grid{display:flex;flex-wrap:wrap;gap:0 40px}
"""


def format_time(t: int) -> str:
    """``YYYY-MM-DD HH:MM`` of a bar time, on the bars' own clock (no zone conversion)."""
    return datetime.fromtimestamp(int(t), tz=UTC).strftime("%Y-%m-%d %H:%M")


def format_value(kind: str, value, digits: int = 2) -> str:
    """How the report prints a value: nan -> 'n/a', inf -> 'inf', money with a thousands comma."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if kind == "count":
        return f"{int(value):d}"
    if kind == "time":
        return format_time(value)
    if kind == "usd":
        return f"{value:,.{digits}f}"
    return f"{value:.{digits}f}"


def format_metric(name: str, value) -> str:
    return format_value(METRIC_KINDS[name], value, METRIC_DIGITS[name])


def metric_label(name: str) -> str:
    unit = _UNITS.get(METRIC_KINDS[name])
    return f"{METRIC_LABELS[name]} ({unit})" if unit else METRIC_LABELS[name]


# money results coloured green/red by sign (not balances or drawdowns, which are always > 0)
_PNL_FIELDS = frozenset((
    "total_net_profit_usd", "gross_profit_usd", "gross_loss_usd", "expected_payoff_usd",
    "largest_profit_trade_usd", "largest_loss_trade_usd", "average_profit_trade_usd",
    "average_loss_trade_usd", "max_consecutive_wins_usd", "max_consecutive_losses_usd",
    "maximal_consecutive_profit_usd", "maximal_consecutive_loss_usd", "profit_usd", "net_usd"))


def _sign_class(name: str, value) -> str:
    if name in _PNL_FIELDS and isinstance(value, int | float) and not math.isnan(value):
        return "pos" if value > 0 else ("neg" if value < 0 else "")
    return ""


def _cell(name: str, value, id_prefix: str = "m-", colour: bool = True) -> str:
    cls = _sign_class(name, value) if colour else ""
    data = escape(json.dumps(json_safe(value)), quote=True)
    cls_attr = f' class="{cls}"' if cls else ""
    return (f'<td id="{id_prefix}{name}" data-value="{data}"{cls_attr}>'
            f"{escape(format_metric(name, value))}</td>")


def image_tag(png: bytes, alt: str) -> str:
    """An inline PNG (base64 data URI): the page needs no other file."""
    b64 = base64.b64encode(png).decode("ascii")
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{b64}">'


def wide_table(table_html: str) -> str:
    """A table that scrolls sideways in its own box when it is wider than the page."""
    return f'<div class="wide">{table_html}</div>'


def _sections_html(sections: Sequence[tuple[str, str]]) -> str:
    """Extra page sections: ``<h2>title</h2>`` then the caller's HTML (trusted, not escaped)."""
    return "\n".join(f"<h2>{escape(title)}</h2>\n{html}" for title, html in sections)


def _settings_text(value) -> str:
    """A settings value as text: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(json_safe(value))


def _page(title: str, body: str) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{_CSS}</style></head>\n"
            f"<body>\n{body}\n</body></html>\n")


def _extra_table(extra: Mapping) -> str:
    if not extra:
        return ""
    rows = "".join(
        f'<tr><td class="l">{escape(str(k))}</td><td class="l wrap">'
        f"{escape(_settings_text(v))}</td></tr>"
        for k, v in extra.items())
    return f"<h2>Run</h2>{wide_table(f'<table>{rows}</table>')}"


def metrics_tables(m: Metrics) -> str:
    parts = ['<div class="grid">']
    for section, names in SECTIONS:
        rows = "".join(f'<tr><td class="l">{escape(metric_label(n))}</td>'
                       f"{_cell(n, getattr(m, n))}</tr>" for n in names)
        parts.append(f"<div><h3>{escape(section)}</h3><table>{rows}</table></div>")
    parts.append("</div>")
    return "".join(parts)


_TRADE_KINDS = {"volume_lots": ("plain", 2), "entry_price": ("plain", 5),
                "exit_price": ("plain", 5), "holding_hours": ("plain", 2),
                "entry_time_s": ("time", 0), "exit_time_s": ("time", 0)}


def trades_table(trades: TradeTable, max_rows: int = 2000) -> str:
    if len(trades) == 0:
        return '<p class="muted">No trades.</p>'
    cols = trades.columns()
    head = "".join(f"<th>{escape(c)}</th>" for c in cols)
    rows = []
    for i in range(min(len(trades), max_rows)):
        cells = []
        for c, arr in cols.items():
            v = arr[i]
            if c == "direction":
                text, cls = ("long" if v > 0 else "short"), ""
            elif c == "reason":
                text, cls = str(v), "l"
            elif c in ("ticket", "position_id"):
                text, cls = str(int(v)), ""
            else:
                kind, digits = _TRADE_KINDS.get(c, ("usd", 2))
                text, cls = format_value(kind, float(v), digits), _sign_class(c, float(v))
            cells.append(f'<td class="{cls}">{escape(text)}</td>' if cls
                         else f"<td>{escape(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    more = (f'<p class="muted">{len(trades) - max_rows} more trades in {TRADES_CSV}.</p>'
            if len(trades) > max_rows else "")
    return wide_table(f"<table><tr>{head}</tr>{''.join(rows)}</table>") + more


def render_report(title: str, metrics: Metrics, trades: TradeTable,
                  images: Sequence[tuple[str, bytes]], extra: Mapping | None = None,
                  clock: str = DEFAULT_CLOCK, sections: Sequence[tuple[str, str]] = (),
                  baselines: Baselines | None = None, months: str = "") -> str:
    """The single-run report page; ``images`` are (caption, PNG bytes), ``sections``
    (title, HTML) page parts added after the trades; ``baselines`` adds their table and
    verdict after the run table, ``months`` (HTML) the walk-forward section after the
    charts."""
    first, last = format_time(metrics.first_bar_time_s), format_time(metrics.last_bar_time_s)
    period = f"{first} to {last} ({clock})"
    body = [f"<h1>{escape(title)}</h1>",
            f'<p class="muted">{escape(period)}, {metrics.bars} bars, '
            f"{metrics.total_trades} trades. Formulas: docs/metrics.md.</p>",
            _extra_table(extra or {})]
    if baselines is not None:
        body += ["<h2>Baselines</h2>", baselines_html(baselines)]
    body += ["<h2>Summary</h2>", metrics_tables(metrics), "<h2>Charts</h2>"]
    body += [image_tag(png, caption) for caption, png in images]
    if months:
        body += ["<h2>Month by month</h2>", months]
    body += ["<h2>Trades</h2>", trades_table(trades), _sections_html(sections)]
    return _page(title, "\n".join(body))


def write_report(
    run_dir: str | os.PathLike, deals: Iterable[Deal], series: BarSeries | Mapping,
    deposit: float, title: str, extra: Mapping | None = None, *,
    excursions: Mapping[int, tuple[float, float]] | None = None,
    clock: str = DEFAULT_CLOCK, sections: Sequence[tuple[str, str]] = (),
    baselines: Baselines | None = None, walk_forward: Sequence[MonthResult] | None = None,
) -> Path:
    """Write report.html, metrics.json, trades.csv, deals.csv, series.npz and the PNGs.

    ``excursions`` (out-deal ticket -> (MFE, MAE) in USD) adds the MFE/MAE columns and chart.
    ``clock`` names the clock of the bar times in the header and axis labels (it is saved in
    metrics.json); ``sections`` are extra (title, HTML) parts at the end of the page.
    ``baselines`` (``reports.baselines``) puts their table and verdict on the page and their
    equity in the chart; ``walk_forward`` adds the per-month table and walk_forward.png (the
    caller writes their CSV files). When the run folder (the parent of ``run_dir``) holds the
    ``rounds.csv`` of ``neurofx train``, its table and rounds.png end the page. Returns the
    path of report.html.
    """
    out = Path(run_dir)
    ds = sorted_deals(deals)
    bars = as_series(series)
    trades = trades_from_deals(ds, deposit, excursions)
    metrics = compute_metrics(ds, bars, deposit, trades)
    write_deals_csv(out / DEALS_CSV, ds)
    write_trades_csv(out / TRADES_CSV, trades)
    write_series(out / SERIES_NPZ, bars)
    write_metrics(out / METRICS_JSON, metrics, title, extra, clock)
    ins = [d for d in ds if d.entry == "in"]
    pngs = [("Balance and equity", charts.equity_chart(
        bars.time_s, bars.balance_usd, bars.equity_usd, float(deposit), out / "equity.png",
        entry_time_s=[d.time for d in ins],
        entry_direction=[1 if d.side == "buy" else -1 for d in ins],
        exit_time_s=trades.exit_time_s, exit_net_usd=trades.net_usd, title=title,
        clock=clock, baselines=[(name, t, e) for name, (t, e) in
                                (baselines.curves.items() if baselines else ())]))]
    if len(trades):
        pngs.append(("P/L by hour and weekday", charts.pnl_by_time_chart(
            trades.exit_time_s, trades.net_usd, out / "pnl_by_time.png", clock)))
    if trades.has_excursions and len(trades):
        pngs.append(("MFE and MAE", charts.mfe_mae_chart(
            trades.mfe_usd, trades.mae_usd, trades.net_usd, out / "mfe_mae.png")))
    images = [(caption, p.read_bytes()) for caption, p in pngs]
    months = ""
    if walk_forward:
        png = walk_forward_chart(walk_forward, out / WALK_FORWARD_PNG).read_bytes()
        months = walk_forward_html(walk_forward, png, image_tag)
    sections = [*sections, *rounds_section(out, image_tag)]
    html = render_report(title, metrics, trades, images, extra, clock, sections, baselines,
                         months)
    return write_text_atomic(out / REPORT_HTML, html)


def _unique_labels(runs: Sequence[RunData]) -> list[str]:
    labels, seen = [], {}
    for r in runs:
        base = r.title or r.run_dir.name
        seen[base] = seen.get(base, 0) + 1
        labels.append(base if seen[base] == 1 else f"{base} ({seen[base]})")
    return labels


def metric_difference(name: str, a, b) -> float | int | None:
    """b - a for numeric metrics (nan where undefined); None for times."""
    if METRIC_KINDS[name] == "time":
        return None
    if METRIC_KINDS[name] == "count":
        return int(b) - int(a)
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b) or (math.isinf(a) and math.isinf(b) and a == b):
        return float("nan")
    return b - a


def common_clock(runs: Sequence[RunData]) -> str:
    """The runs' clock, or ``clocks differ: A / B`` when they were not on the same one."""
    clocks = list(dict.fromkeys(r.clock for r in runs))
    return clocks[0] if len(clocks) == 1 else "clocks differ: " + " / ".join(clocks)


def render_comparison(labels: Sequence[str], runs: Sequence[RunData], overlay_png: bytes,
                      clock: str = DEFAULT_CLOCK, sections: Sequence[tuple[str, str]] = ()
                      ) -> str:
    head = ('<tr><th class="l">metric</th>'
            + "".join(f"<th>{escape(lb)}</th>" for lb in labels)
            + "".join(f"<th>&Delta; {escape(lb)} &minus; {escape(labels[0])}</th>"
                      for lb in labels[1:]) + "</tr>")
    rows = []
    for section, names in SECTIONS:
        rows.append(f'<tr><th class="l" colspan="{2 * len(runs)}">{escape(section)}</th></tr>')
        for n in names:
            vals = [getattr(r.metrics, n) for r in runs]
            cells = [_cell(n, v, f"r{i}-") for i, v in enumerate(vals)]
            for i, v in enumerate(vals[1:], start=1):
                d = metric_difference(n, vals[0], v)
                cells.append(_cell(n, d, f"d{i}-", colour=False) if d is not None
                             else "<td></td>")
            rows.append(f'<tr><td class="l">{escape(metric_label(n))}</td>{"".join(cells)}</tr>')
    info = "".join(
        f'<tr><td class="l">{escape(lb)}</td><td class="l">{escape(str(r.run_dir))}</td>'
        f'<td class="l wrap">{escape(_settings_text(r.extra) if r.extra else "")}</td></tr>'
        for lb, r in zip(labels, runs, strict=True))
    body = ["<h1>Run comparison</h1>",
            f'<p class="muted">{len(runs)} runs, times in {escape(clock)}. Differences are each '
            f"run minus {escape(labels[0])}. Formulas: docs/metrics.md.</p>",
            "<h2>Runs</h2>" + wide_table(
                '<table><tr><th class="l">run</th><th class="l">folder</th>'
                f'<th class="l">settings</th></tr>{info}</table>'),
            "<h2>Equity</h2>", image_tag(overlay_png, "Equity of the compared runs"),
            "<h2>Metrics</h2>" + wide_table(f"<table>{head}{''.join(rows)}</table>"),
            _sections_html(sections)]
    return _page("Run comparison: " + " vs ".join(labels), "\n".join(body))


def write_comparison(out_dir: str | os.PathLike, runs: Sequence[str | os.PathLike | RunData],
                     *, clock: str | None = None, sections: Sequence[tuple[str, str]] = ()
                     ) -> Path:
    """Compare runs (run folders or loaded ``RunData``) side by side; returns comparison.html.

    Also writes equity_overlay.png and comparison.json (metrics per run and differences to
    the first run). ``clock`` labels the times (default: the runs' own, see
    :func:`common_clock`); ``sections`` are extra (title, HTML) parts at the end of the page.
    """
    loaded = [r if isinstance(r, RunData) else load_run(r) for r in runs]
    if not loaded:
        raise NeurofxError("comparison: no runs given; pass at least one run folder")
    out = Path(out_dir)
    labels = _unique_labels(loaded)
    clock = common_clock(loaded) if clock is None else clock
    png = charts.equity_overlay_chart(
        labels, [r.series.time_s for r in loaded], [r.series.equity_usd for r in loaded],
        [r.metrics.initial_deposit_usd for r in loaded], out / "equity_overlay.png", clock)
    doc = {"clock": clock,
           "runs": [{"label": lb, "run_dir": str(r.run_dir), "title": r.title,
                     "metrics": r.metrics.as_dict()} for lb, r in zip(labels, loaded, strict=True)],
           "differences": [{"label": lb, "minus": labels[0],
                            "metrics": {n: metric_difference(n, getattr(loaded[0].metrics, n),
                                                             getattr(r.metrics, n))
                                        for n in METRIC_FIELDS}}
                           for lb, r in zip(labels[1:], loaded[1:], strict=True)]}
    write_text_atomic(out / COMPARISON_JSON,
                      json.dumps(json_safe(doc), indent=2, allow_nan=False) + "\n")
    html = render_comparison(labels, loaded, png.read_bytes(), clock, sections)
    return write_text_atomic(out / COMPARISON_HTML, html)
