"""Deal-history files for Real-ORL: pick the importer from the file, move the deal times onto
the bars' clock, keep the deals inside the bar file, and check that their prices fit the bars.

A deal history is written in the broker's server time, whose offset to the bar file's clock
is unknown; ``shift_hours`` is added to every deal time. A wrong offset shows as deal prices
outside the bars' high-low range at the stated times (:func:`price_misfits`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from neurofx.collectors.mt5_report import import_mt5_report
from neurofx.collectors.realorl import (
    DealImport,
    HistDeal,
    import_mt5_deals,
    import_neurofx_deals,
    import_signals_csv,
    read_lines,
)
from neurofx.errors import NeurofxError

IMPORTERS: dict[str, Callable[..., DealImport]] = {
    "neurofx": import_neurofx_deals, "mt5": import_mt5_deals, "signals": import_signals_csv,
    "mt5-report": import_mt5_report,
}
FIT_TOLERANCE_POINTS = 10  # feeds of two brokers differ by about a pip


def detect_deal_format(path) -> str:
    """``mt5-report`` for an ``.xlsx`` workbook or an HTML file; else from the first line of a
    CSV: a header naming ``ticket`` and ``position_id`` is ``neurofx``, one naming ``Deal``
    and ``Direction`` ``mt5``, anything else ``signals`` (either Signals layout)."""
    path = Path(path)
    if not path.is_file():
        raise NeurofxError(f"{path}: deal file not found (fix: check the --deals path)")
    with path.open("rb") as fh:
        head = fh.read(512)
    if head.startswith(b"PK\x03\x04"):
        return "mt5-report"
    lines = [ln for ln in read_lines(path) if ln.strip()]
    if not lines:
        raise NeurofxError(f"{path}: empty file; expected a Signals, MT5 or neurofx deal history")
    low = lines[0].lower()
    if low.lstrip().startswith("<"):
        return "mt5-report"
    if "position_id" in low and "ticket" in low:
        return "neurofx"
    if "direction" in low and "deal" in low:
        return "mt5"
    return "signals"


def import_deal_file(path, symbol: str = "EURUSD") -> tuple[str, DealImport]:
    """Detect the format of ``path`` and import its deals of ``symbol``."""
    fmt = detect_deal_format(path)
    imp = IMPORTERS[fmt](path, symbol=symbol)
    if not imp.deals:
        raise NeurofxError(
            f"{path}: no closed {symbol} deals ({imp.skipped_symbols} rows of other symbols, "
            f"{imp.unmatched} unmatched); a Real-ORL pass needs at least one")
    return fmt, imp


def shift_deals(deals: list[HistDeal], hours: float) -> list[HistDeal]:
    """The deals with ``hours`` added to their open and close times."""
    s = int(round(hours * 3600))
    return [replace(d, open_time=d.open_time + s, close_time=d.close_time + s) for d in deals]


def bar_seconds(bar_times: np.ndarray) -> int:
    """The bar length: the smallest step between bar times (3600 for one bar)."""
    steps = np.diff(np.asarray(bar_times, dtype=np.int64))
    steps = steps[steps > 0]
    return int(steps.min()) if len(steps) else 3600


def inside_bars(deals: list[HistDeal], bar_times: np.ndarray) -> list[HistDeal]:
    """The deals opened and closed within the bar file (first bar open to last bar end)."""
    t = np.asarray(bar_times, dtype=np.int64)
    if len(t) == 0:
        return []
    end = int(t[-1]) + bar_seconds(t)
    return [d for d in deals if d.open_time >= int(t[0]) and d.close_time <= end]


def price_misfits(deals: list[HistDeal], bars, point: float = 1e-5,
                  min_spread_points: float = 0.0,
                  tolerance_points: float = FIT_TOLERANCE_POINTS) -> int:
    """How many deals have an open or close price that does not fit the bar at its time.

    ``bars`` has ``time_s``, ``high``, ``low`` and ``spread_points`` (bid bars). A price fits
    when ``low - tol <= price <= high + spread + tol`` (buys open and sells close at the ask),
    ``spread = max(spread_points, min_spread_points) * point``, ``tol = tolerance_points *
    point``. A time with no bar (a weekend, a gap) does not fit.
    """
    if not deals:
        return 0
    t = np.asarray(bars.time_s, dtype=np.int64)
    times = np.array([[d.open_time, d.close_time] for d in deals], dtype=np.int64)
    prices = np.array([[d.open_price, d.close_price] for d in deals], dtype=np.float64)
    i = np.searchsorted(t, times, side="right") - 1
    j = np.clip(i, 0, len(t) - 1)
    in_bar = (i >= 0) & (times < t[j] + bar_seconds(t))
    spread = np.maximum(np.asarray(bars.spread_points, dtype=np.float64)[j],
                        min_spread_points) * point
    tol = tolerance_points * point
    fits = (in_bar & (prices >= np.asarray(bars.low)[j] - tol)
            & (prices <= np.asarray(bars.high)[j] + spread + tol))
    return int((~fits.all(axis=1)).sum())


@dataclass(frozen=True)
class LoadedDeals:
    """A deal file ready for a Real-ORL pass: its format, the import, the deals on the bars'
    clock inside the bar file, and one-line notes for the user."""

    fmt: str
    imported: DealImport
    deals: list[HistDeal]
    notes: list[str]


def _day(t: int) -> str:
    return datetime.fromtimestamp(int(t), UTC).strftime("%Y-%m-%d %H:%M")


def load_deal_file(path, symbol: str = "EURUSD", bars=None, shift_hours: float = 0.0,
                   point: float = 1e-5, min_spread_points: float = 0.0) -> LoadedDeals:
    """Import ``path``, shift its times by ``shift_hours`` and, given the bar file's ``bars``,
    drop the deals outside it and count those whose prices do not fit (a note each)."""
    fmt, imp = import_deal_file(path, symbol)
    name = Path(path).name
    skipped = [f"{n} {what}" for n, what in (
        (imp.skipped_symbols, f"of other symbols than {symbol}"),
        (imp.not_trades, "balance or never-filled pending rows"),
        (imp.unmatched, "unmatched or still open")) if n]
    notes = [f"{name}: {len(imp.deals)} {symbol} trades ({fmt} layout)"
             + (f"; skipped {', '.join(skipped)}" if skipped else "")]
    deals = shift_deals(imp.deals, shift_hours) if shift_hours else list(imp.deals)
    if bars is None:
        return LoadedDeals(fmt, imp, deals, notes)
    t = np.asarray(bars.time_s, dtype=np.int64)
    kept = inside_bars(deals, t)
    span = f"{_day(t[0])} to {_day(t[-1])}" if len(t) else "no bars"
    if not kept:
        raise NeurofxError(
            f"{path}: none of its {len(deals)} {symbol} trades lies inside the bar file "
            f"({span}, bars' clock, deal times shifted {shift_hours:+g} h); fix: a bar file "
            "covering the deals or --deals-shift-hours")
    if len(kept) < len(deals):
        notes.append(f"{name}: dropped {len(deals) - len(kept)} of {len(deals)} trades outside "
                     f"the bar file ({span}); kept {len(kept)}")
    bad = price_misfits(kept, bars, point, min_spread_points)
    if bad:
        notes.append(
            f"{name}: {bad} of {len(kept)} trades have prices outside the bars' high-low range "
            f"at their times (deal times shifted {shift_hours:+g} h); the deals may be in "
            "another clock than the bars (fix: --deals-shift-hours H, "
            "research.deals_shift_hours)")
    return LoadedDeals(fmt, imp, kept, notes)
