"""The terminal table of a run comparison: the key figures of each run, then each run minus
the first (``neurofx report A B ...``)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from neurofx.reports.metrics import Metrics

# (label, metrics field, format) of the terminal comparison
KEY_FIGURES = (
    ("net profit (USD)", "total_net_profit_usd", "+,.2f"),
    ("final balance (USD)", "final_balance_usd", ",.2f"),
    ("trades", "total_trades", "d"),
    ("profit trades (%)", "profit_trades_pct", ".1f"),
    ("profit factor", "profit_factor", ".2f"),
    ("recovery factor", "recovery_factor", ".2f"),
    ("sharpe (daily, annualised)", "sharpe_daily_annualised", ".2f"),
    ("equity drawdown max (USD)", "equity_drawdown_maximal_usd", ",.2f"),
    ("equity drawdown max (%)", "equity_drawdown_maximal_pct", ".2f"),
)


def format_figure(value, fmt: str) -> str:
    """``value`` in format ``fmt``; nan is 'n/a', infinities 'inf' / '-inf'."""
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return format(value, fmt)


def comparison_lines(labels: Sequence[str], metrics: Sequence[Metrics]) -> list[str]:
    """A terminal table of the key figures: one column per run, then each run minus the first."""
    head = list(labels) + [f"{lb} - {labels[0]}" for lb in labels[1:]]
    rows = []
    for name, field, fmt in KEY_FIGURES:
        vals = [getattr(m, field) for m in metrics]
        diff_fmt = fmt if fmt.startswith("+") else "+" + fmt
        diffs = [format_figure(v - vals[0], diff_fmt) for v in vals[1:]]
        rows.append([name] + [format_figure(v, fmt) for v in vals] + diffs)
    width0 = max(len(r[0]) for r in rows)
    widths = [max(len(h), *(len(r[i + 1]) for r in rows)) for i, h in enumerate(head)]
    lines = [" " * width0 + "".join(f"  {h:>{w}}" for h, w in zip(head, widths, strict=True))]
    for r in rows:
        lines.append(f"{r[0]:<{width0}}" + "".join(f"  {c:>{w}}" for c, w
                                                   in zip(r[1:], widths, strict=True)))
    return lines
