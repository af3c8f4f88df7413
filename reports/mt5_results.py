"""neurofx's statistics of an MT5 Trade History Report's deals, side by side with the
report's own Results section (``neurofx report --mt5 REPORT``; docs/testing-and-reports.md).

The report's deals become neurofx deals (:func:`deals_of_report`), the usual statistics are
computed from them (:func:`neurofx_results`; the balance after each deal stands in for the
equity, since a trade history has no equity curve), and each Results field is compared with
the value MT5 printed (:func:`compare_results`): a field agrees when every number MT5 shows
equals ours rounded to the decimals MT5 shows.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neurofx.atomic import write_json_atomic, write_text_atomic
from neurofx.deals import Deal
from neurofx.errors import NeurofxError
from neurofx.reports.metrics import BarSeries, Metrics, compute_metrics
from neurofx.reports.trades import deal_ledger

# (MT5 label, text pattern, Metrics fields filling the pattern's {} in order)
FIELDS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("Total Net Profit", "{:m}", ("total_net_profit_usd",)),
    ("Gross Profit", "{:m}", ("gross_profit_usd",)),
    ("Gross Loss", "{:m}", ("gross_loss_usd",)),
    ("Profit Factor", "{:r}", ("profit_factor",)),
    ("Expected Payoff", "{:m}", ("expected_payoff_usd",)),
    ("Recovery Factor", "{:r}", ("recovery_factor",)),
    ("Sharpe Ratio", "{:r}", ("sharpe_mt5_per_trade",)),
    ("Balance Drawdown Absolute", "{:m}", ("balance_drawdown_absolute_usd",)),
    ("Balance Drawdown Maximal", "{:m} ({:r}%)",
     ("balance_drawdown_maximal_usd", "balance_drawdown_maximal_pct")),
    ("Balance Drawdown Relative", "{:r}% ({:m})",
     ("balance_drawdown_relative_pct", "balance_drawdown_relative_usd")),
    ("Total Trades", "{:d}", ("total_trades",)),
    ("Short Trades (won %)", "{:d} ({:r}%)", ("short_trades", "short_trades_won_pct")),
    ("Long Trades (won %)", "{:d} ({:r}%)", ("long_trades", "long_trades_won_pct")),
    ("Profit Trades (% of total)", "{:d} ({:r}%)", ("profit_trades", "profit_trades_pct")),
    ("Loss Trades (% of total)", "{:d} ({:r}%)", ("loss_trades", "loss_trades_pct")),
    ("Largest profit trade", "{:m}", ("largest_profit_trade_usd",)),
    ("Largest loss trade", "{:m}", ("largest_loss_trade_usd",)),
    ("Average profit trade", "{:m}", ("average_profit_trade_usd",)),
    ("Average loss trade", "{:m}", ("average_loss_trade_usd",)),
    ("Maximum consecutive wins ($)", "{:d} ({:m})",
     ("max_consecutive_wins_count", "max_consecutive_wins_usd")),
    ("Maximum consecutive losses ($)", "{:d} ({:m})",
     ("max_consecutive_losses_count", "max_consecutive_losses_usd")),
    ("Maximal consecutive profit (count)", "{:m} ({:d})",
     ("maximal_consecutive_profit_usd", "maximal_consecutive_profit_count")),
    ("Maximal consecutive loss (count)", "{:m} ({:d})",
     ("maximal_consecutive_loss_usd", "maximal_consecutive_loss_count")),
    ("Average consecutive wins", "{:d}", ("average_consecutive_wins",)),
    ("Average consecutive losses", "{:d}", ("average_consecutive_losses",)),
)
_SPEC = re.compile(r"\{:([mrd])\}")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def _text(spec: str, x: float) -> str:
    if isinstance(x, float) and math.isnan(x):
        return "n/a"
    if isinstance(x, float) and math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if spec == "d":
        return str(int(x))
    return f"{x:,.2f}".replace(",", " ")  # money and ratios: 2 decimals, MT5's spaces


def mt5_text(pattern: str, values) -> str:
    """``pattern`` of :data:`FIELDS` filled the way MT5 prints it: ``28.40 (2.67%)``."""
    it = iter(values)
    return _SPEC.sub(lambda m: _text(m.group(1), next(it)), pattern)


def numbers_in(text: str) -> list[tuple[float, int]]:
    """The numbers of a Results value with their decimals: ``'1 028.40 (2.67%)'`` ->
    ``[(1028.4, 2), (2.67, 2)]`` (a space between digits is a thousands separator)."""
    joined = re.sub(r"(?<=\d)[ \u00a0](?=\d)", "", text)
    return [(float(m), len(m.partition(".")[2])) for m in _NUMBER.findall(joined)]


def agrees(ours: float, shown: float, decimals: int) -> bool:
    """MT5 shows ``ours`` rounded to ``decimals``: within half a unit of the last digit."""
    if not math.isfinite(ours):
        return False
    return abs(ours - shown) <= 0.5 * 10.0 ** -decimals + 1e-9


def neurofx_results(deals: list[Deal], deposit_usd: float) -> Metrics:
    """neurofx's statistics of ``deals``; the balance after each deal serves as the equity."""
    ledger = deal_ledger(deals, deposit_usd).balance_usd
    times = np.array([deals[0].time if deals else 0] + [d.time for d in deals], dtype=np.int64)
    return compute_metrics(deals, BarSeries.from_arrays(times, ledger, ledger), deposit_usd)


# ---- the comparison -------------------------------------------------------------------------
@dataclass(frozen=True)
class FieldComparison:
    label: str
    neurofx: str  # our values as MT5 prints them
    mt5: str  # the report's text; "" when the report lacks the field
    values: tuple[float, ...]  # ours, unrounded
    differs: bool


@dataclass(frozen=True)
class Mt5Comparison:
    report: str
    deposit_usd: float
    fields: tuple[FieldComparison, ...]
    notes: tuple[str, ...]

    @property
    def compared(self) -> int:
        return sum(1 for f in self.fields if f.mt5)

    @property
    def differing(self) -> int:
        return sum(1 for f in self.fields if f.differs)

    def lines(self) -> list[str]:
        """The side-by-side table, differences marked, ending ``N of M fields differ``."""
        w0 = max(len(f.label) for f in self.fields)
        w1 = max(len("neurofx"), *(len(f.neurofx) for f in self.fields))
        out = [f"neurofx vs MT5 Results of {self.report} (deposit {self.deposit_usd:.2f})",
               f"{'field':<{w0}}  {'neurofx':>{w1}}  {'MT5':>{w1}}"]
        for f in self.fields:
            mark = "  <- differs" if f.differs else ""
            out.append(f"{f.label:<{w0}}  {f.neurofx:>{w1}}  {f.mt5 or '(absent)':>{w1}}{mark}")
        out += [f"note: {n}" for n in self.notes]
        out.append(f"{self.differing} of {self.compared} fields differ")
        return out

    def to_json(self) -> dict:
        return {"format": "neurofx-mt5-comparison", "version": 1, "report": self.report,
                "deposit_usd": self.deposit_usd, "compared": self.compared,
                "differ": self.differing, "notes": list(self.notes),
                "fields": [{"label": f.label, "neurofx": f.neurofx, "mt5": f.mt5,
                            "neurofx_values": [v if math.isfinite(v) else None
                                               for v in f.values],
                            "differs": f.differs} for f in self.fields]}


def _label_key(label: str) -> str:
    return " ".join(label.lower().split())


def compare_results(metrics: Metrics, results: dict[str, str]) -> list[FieldComparison]:
    """Each of :data:`FIELDS`: our values, MT5's text (``results``: normalised label ->
    text, as :func:`~neurofx.collectors.mt5_report.label_values` reads it) and whether they
    differ. A field the report lacks is shown, not compared."""
    out = []
    for label, pattern, names in FIELDS:
        values = tuple(float(getattr(metrics, n)) for n in names)
        theirs = results.get(_label_key(label), "")
        shown = numbers_in(theirs)
        differs = bool(theirs) and (len(shown) != len(values) or not all(
            agrees(v, s, k) for v, (s, k) in zip(values, shown, strict=False)))
        out.append(FieldComparison(label, mt5_text(pattern, values), theirs, values, differs))
    return out


def compare_deals(source: str, deals: list[Deal], deposit_usd: float, results: dict[str, str],
                  later_balance_ops: int = 0) -> Mt5Comparison:
    """Compare neurofx's statistics of a report's ``deals`` with its ``results`` section
    (normalised label -> value text); ``source`` names the report."""
    if not results:
        raise NeurofxError(f"{source}: no Results section; save the whole Trade History Report "
                           "from MT5 (History tab -> right click -> Report)")
    metrics = neurofx_results(deals, deposit_usd)
    notes = []
    if later_balance_ops:
        notes.append(f"{later_balance_ops} balance operations after the first trade are "
                     "left out (MT5 may count them in drawdowns)")
    notes.append(f"average consecutive wins/losses unrounded: "
                 f"{metrics.average_consecutive_wins_exact:.2f} / "
                 f"{metrics.average_consecutive_losses_exact:.2f}")
    return Mt5Comparison(source, deposit_usd, tuple(compare_results(metrics, results)),
                         tuple(notes))


def write_comparison(comparison: Mt5Comparison, out: Path) -> tuple[Path, Path]:
    """``out/mt5_comparison.txt`` (the table) and ``.json``, written atomically."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    txt = write_text_atomic(out / "mt5_comparison.txt", "\n".join(comparison.lines()) + "\n")
    js = write_json_atomic(out / "mt5_comparison.json", comparison.to_json())
    return txt, js


def default_out(runs_root: str | Path, report_path) -> Path:
    """``<runs.root>/mt5/<report file name without extension>``."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(report_path).stem) or "report"
    return Path(runs_root) / "mt5" / stem
