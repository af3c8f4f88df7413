"""Real-ORL (spec 4.2): import real deal histories and turn them into per-bar actions.

The importers return the same normalised :class:`HistDeal` list (one closed position each):

* :func:`import_signals_csv` - MQL5 Signals history CSV: the real 13-field export (BOM, newest
  first, balance and pending rows) or the seed's 11-field layout,
* :func:`import_mt5_deals` - a CSV of the MT5 terminal's deals (in/out deals, paired FIFO),
* :func:`neurofx.collectors.mt5_report.import_mt5_report` - the MT5 Trade History Report
  (``.xlsx``/``.html``),
* :func:`import_neurofx_deals` - our own ``deals.csv`` (read by :mod:`neurofx.deals`).

:mod:`neurofx.collectors.deal_files` picks the importer for a file.

Times are Unix seconds of the naive timestamps read as UTC, i.e. the broker clock of the feed.
:func:`realorl_actions` reconstructs the seed's action vector at every bar open.
"""

from __future__ import annotations

import calendar
import csv
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

import numpy as np

from neurofx.deals import iter_deals_csv
from neurofx.errors import NeurofxError

TIME_FORMATS = ("%Y.%m.%d %H:%M:%S", "%Y.%m.%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M")
# MT5 deal types that are not trades (balance operations)
NON_TRADE_TYPES = {
    "balance", "credit", "charge", "correction", "bonus", "commission", "commission daily",
    "commission monthly", "agent commission", "interest", "dividend", "dividend franked", "tax",
}
# pending orders listed in a Signals history that never filled
PENDING_TYPES = {"buy limit", "sell limit", "buy stop", "sell stop", "buy stop limit",
                 "sell stop limit"}


@dataclass(frozen=True)
class HistDeal:
    """One historical position: opened at ``open_time``/``open_price``, closed at ``close_*``."""

    open_time: int
    side: str  # "buy" or "sell"
    volume: float
    symbol: str
    open_price: float
    close_time: int
    close_price: float
    profit: float

    @property
    def in_profit(self) -> bool:
        """Closed on the winning side of its open price (the seed compares prices)."""
        if self.side == "buy":
            return self.close_price > self.open_price
        return self.close_price < self.open_price

    @property
    def take_profit(self) -> float:
        """Seed rule: TP := close price if the deal closed in profit, else 0 (none)."""
        return self.close_price if self.in_profit else 0.0

    @property
    def stop_loss(self) -> float:
        """Seed rule: SL := close price if the deal closed at a loss, else 0 (none)."""
        return 0.0 if self.in_profit else self.close_price


class DealImport(NamedTuple):
    deals: list[HistDeal]
    skipped_symbols: int  # trade rows of other symbols
    unmatched: int = 0  # closes without an open, or positions still open at the end of the file
    not_trades: int = 0  # balance rows and pending orders that never filled


class _Row:
    """Field access for one CSV line with one-line errors naming file, line and field."""

    def __init__(self, path, line: int, fields: list[str]):
        self.path, self.line, self.fields = path, line, fields

    def fail(self, field: str, msg: str):
        raise NeurofxError(f"{self.path}, line {self.line}, field '{field}': {msg}")

    def text(self, i: int, field: str) -> str:
        return self.fields[i].strip()

    def number(self, i: int, field: str, blank: float | None = None) -> float:
        raw = self.text(i, field)
        if not raw and blank is not None:
            return blank
        try:
            value = float(raw.replace(" ", "").replace("\u00a0", ""))
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            self.fail(field, f"{raw!r} is not a number")
        return value

    def positive(self, i: int, field: str) -> float:
        value = self.number(i, field)
        if value <= 0:
            self.fail(field, f"{value} must be > 0")
        return value

    def integer(self, i: int, field: str) -> int:
        raw = self.text(i, field)
        try:
            return int(raw)
        except ValueError:
            self.fail(field, f"{raw!r} is not an integer")

    def time(self, i: int, field: str) -> int:
        raw = self.text(i, field)
        for fmt in TIME_FORMATS:
            try:
                return calendar.timegm(datetime.strptime(raw, fmt).timetuple())
            except ValueError:
                continue
        self.fail(field, f"{raw!r} is not a date like 2023.01.05 10:15:00")

    def side(self, i: int, field: str) -> str:
        raw = self.text(i, field)
        if raw.lower() not in ("buy", "sell"):
            self.fail(field, f"{raw!r} is not a known type; expected Buy or Sell")
        return raw.lower()


def read_lines(path) -> list[str]:
    """The file's text lines (UTF-8, UTF-16 or Latin-1); ``#`` comment lines read as blank,
    so line numbers in error messages stay those of the file."""
    text = decode_text(Path(path).read_bytes())
    return ["" if ln.lstrip().startswith("#") else ln for ln in text.splitlines()]


def decode_text(data: bytes) -> str:
    """Text of a file MT5 or MQL5 wrote: UTF-16 (with a BOM, or HTML without one), UTF-8 with
    or without a BOM, else Latin-1."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):  # MT5 writes UTF-16 text files
        return data.decode("utf-16")
    if data[:2] == b"<\x00":
        return data.decode("utf-16-le")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def symbol_matches(symbol: str, wanted: str) -> bool:
    # seed: rows whose symbol does not contain "EURUSD" are skipped (EURUSD.m, EURUSDpro match)
    return wanted.upper() in symbol.upper()


SEED_FIELDS = ("open time", "type", "volume", "symbol", "open price", "field6", "close time",
               "close price", "commission", "swap", "profit")
HISTORY_FIELDS = ("open time", "type", "volume", "symbol", "open price", "s/l", "t/p",
                  "close time", "close price", "commission", "swap", "profit", "comment")


def import_signals_csv(path, symbol: str = "EURUSD") -> DealImport:
    """Read an MQL5 Signals history CSV (``;``-separated, header optional) in either layout.

    * The real export, 13 fields: open time; type; volume; symbol; open price; S/L; T/P; close
      time; close price; commission; swap; profit; comment. UTF-8 with a BOM, rows newest
      first, numbers with spaces as thousands separators (``1 480.59``), empty S/L, T/P,
      commission or swap fields. ``Balance`` rows (only time and profit set) and pending
      orders that never filled (``Sell Limit``, ...) are counted in ``not_trades``.
    * The seed's 11 fields: open time; type (Buy/Sell); volume; symbol; open price; a 6th
      number (the volume used is ``min(volume, field6)``, as the seed); close time; close
      price; commission; swap; profit. A trailing ``;`` is tolerated.

    The layout follows the header's field count (else the first row's). Deals come out in
    order of their open time.
    """
    deals: list[HistDeal] = []
    skipped = not_trades = 0
    layout = None
    for n, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        fields = line.split(";")
        if layout is None:
            layout = HISTORY_FIELDS if len(fields) >= len(HISTORY_FIELDS) else SEED_FIELDS
            if not any(c.isdigit() for c in fields[0]):
                continue  # header line: its first field holds a name, not a date
        row = _Row(path, n, _fit_fields(fields, layout))
        if len(row.fields) != len(layout):
            row.fail("field count", f"{len(fields)} fields, expected {len(layout)} separated "
                                    "by ';'")
        typ = row.text(1, "type").lower()
        if layout is HISTORY_FIELDS and (typ in NON_TRADE_TYPES or typ in PENDING_TYPES):
            row.time(0, "open time")
            not_trades += 1
            continue
        deal = _signals_deal(row, layout)
        if not symbol_matches(deal.symbol, symbol):
            skipped += 1
            continue
        deals.append(deal)
    deals.sort(key=lambda d: (d.open_time, d.close_time))
    return DealImport(deals, skipped, 0, not_trades)


def _fit_fields(fields: list[str], layout: tuple[str, ...]) -> list[str]:
    """A trailing empty field dropped (seed); in the 13-field layout a missing comment added
    and a comment holding ``;`` joined back."""
    if layout is SEED_FIELDS:
        return fields[:-1] if len(fields) == 12 and not fields[-1].strip() else fields
    if len(fields) == len(layout) - 1:
        return [*fields, ""]
    if len(fields) > len(layout):
        return [*fields[:len(layout) - 1], ";".join(fields[len(layout) - 1:])]
    return fields


def _signals_deal(row: _Row, layout: tuple[str, ...]) -> HistDeal:
    seed = layout is SEED_FIELDS
    c = {name: i for i, name in enumerate(layout)}
    open_time = row.time(c["open time"], "open time")
    side = row.side(c["type"], "type")
    volume = row.positive(c["volume"], "volume")
    if seed:
        volume = min(volume, row.positive(c["field6"], "field6"))
    open_price = row.positive(c["open price"], "open price")
    close_time = row.time(c["close time"], "close time")
    close_price = row.positive(c["close price"], "close price")
    blank = None if seed else 0.0
    for name in ("commission", "swap"):
        row.number(c[name], name, blank)
    profit = row.number(c["profit"], "profit", blank)
    if close_time < open_time:
        row.fail("close time", "is before the open time")
    return HistDeal(open_time, side, volume, row.text(c["symbol"], "symbol"), open_price,
                    close_time, close_price, profit)


def _csv_rows(path, required: tuple[str, ...], what: str):
    """Yield (_Row, column index) for a CSV with a header naming ``required`` columns."""
    lines = read_lines(path)
    header_at = next((i for i, ln in enumerate(lines) if ln.strip()), None)
    if header_at is None:
        raise NeurofxError(f"{path}: empty file; expected a {what} with a header line")
    head_line = lines[header_at]
    delim = max(("\t", ";", ","), key=head_line.count)
    reader = csv.reader(lines[header_at:], delimiter=delim)
    header = [h.strip().lower() for h in next(reader)]
    col = {name: i for i, name in enumerate(header)}
    missing = [c for c in required if c not in col]
    if missing:
        raise NeurofxError(
            f"{path}, line {header_at + 1}, field '{missing[0]}': column missing; "
            f"not a {what} (expected columns {', '.join(required)})"
        )
    for n, fields in enumerate(reader, start=header_at + 2):
        if not fields or not "".join(fields).strip():
            continue
        if len(fields) == len(header) + 1 and not fields[-1].strip():
            fields = fields[:-1]
        row = _Row(path, n, fields)
        if len(fields) != len(header):
            row.fail("field count", f"{len(fields)} fields, the header has {len(header)}")
        yield row, col


def import_mt5_deals(path, symbol: str = "EURUSD") -> DealImport:
    """Read a CSV of the MT5 terminal's account-history deals and pair in/out deals.

    Columns (header required, delimiter tab, ``;`` or ``,``): Time, Deal, Symbol, Type,
    Direction, Volume, Price, Order, Commission, Swap, Profit, Balance, Comment. The deals
    have no position ids, so they are paired by :func:`pair_in_out`. Balance rows count in
    ``not_trades``.
    """
    required = ("time", "deal", "symbol", "type", "direction", "volume", "price", "profit")
    rows = []
    skipped = not_trades = 0
    for row, col in _csv_rows(path, required, "MT5 deals export"):
        typ = row.text(col["type"], "Type").lower()
        if typ in NON_TRADE_TYPES:
            not_trades += 1
            continue
        side = row.side(col["type"], "Type")
        direction = row.text(col["direction"], "Direction").lower().replace(" ", "")
        if direction not in ("in", "out", "in/out", "inout", "outby"):
            row.fail("Direction", f"{direction!r} is not in, out or in/out")
        rec = (row.time(col["time"], "Time"), row.integer(col["deal"], "Deal"),
               row.text(col["symbol"], "Symbol"), side, direction,
               row.positive(col["volume"], "Volume"), row.positive(col["price"], "Price"),
               row.number(col["profit"], "Profit"))
        if not symbol_matches(rec[2], symbol):
            skipped += 1
            continue
        rows.append(rec)
    deals, unmatched = pair_in_out(rows)
    return DealImport(deals, skipped, unmatched, not_trades)


def pair_in_out(rows) -> tuple[list[HistDeal], int]:
    """Positions from deals ``(time, deal, symbol, side, direction, volume, price, profit)``
    (direction ``in``, ``out``, ``in/out`` or ``outby``), paired first in, first out per
    symbol and side; an ``in/out`` deal (netting reversal) closes the opposite side and its
    remainder opens a new position. Returns (positions, closes without an open + positions
    still open)."""
    open_lots: dict[tuple[str, str], list[list]] = {}
    deals: list[HistDeal] = []
    unmatched = 0
    for time, _, sym, side, direction, volume, price, profit in sorted(
            rows, key=lambda r: (r[0], r[1])):
        left = volume
        if direction != "in":
            closed_side = "sell" if side == "buy" else "buy"
            queue = open_lots.setdefault((sym, closed_side), [])
            # an in/out deal's profit belongs to the part that closes the opposite side
            reversal = direction in ("in/out", "inout")
            denom = min(volume, sum(lot[0] for lot in queue)) if reversal else volume
            while queue and left > 1e-9:
                lot = queue[0]
                chunk = min(lot[0], left)
                deals.append(HistDeal(lot[1], closed_side, round(chunk, 8), sym, lot[2], time,
                                      price, profit * chunk / denom))
                lot[0] -= chunk
                left -= chunk
                if lot[0] <= 1e-9:
                    queue.pop(0)
            if direction in ("out", "outby"):
                if left > 1e-9:
                    unmatched += 1
                continue
        if left > 1e-9:
            open_lots.setdefault((sym, side), []).append([left, time, price])
    unmatched += sum(len(q) for q in open_lots.values())
    return deals, unmatched


def import_neurofx_deals(path, symbol: str = "EURUSD") -> DealImport:
    """Read a neurofx ``deals.csv`` (:func:`neurofx.deals.read_deals_csv` checks the lines).

    Every ``out`` deal becomes one position: opened at its ``entry_time``/``entry_price`` in
    the direction of the ``in`` deal with the same ``position_id``.
    """
    opened: dict[int, str] = {}
    closed: set[int] = set()
    deals: list[HistDeal] = []
    skipped = 0
    unmatched = 0
    for line, d in iter_deals_csv(path):
        if not symbol_matches(d.symbol, symbol):
            skipped += 1
            continue
        pid = d.position_id
        if d.entry == "in":
            if pid in opened and opened[pid] != d.side:
                raise NeurofxError(f"{path}, line {line}, field 'side': '{d.side}' adds to "
                                   f"position {pid} opened as '{opened[pid]}'")
            opened[pid] = d.side
            continue
        if pid not in opened:
            unmatched += 1
            continue
        if d.side == opened[pid]:
            raise NeurofxError(f"{path}, line {line}, field 'side': out deal '{d.side}' cannot "
                               f"close position {pid} opened '{d.side}'")
        closed.add(pid)
        deals.append(HistDeal(d.entry_time, opened[pid], d.volume, d.symbol, d.entry_price,
                              d.time, d.price, d.profit))
    unmatched += len(set(opened) - closed)
    return DealImport(deals, skipped, unmatched)


def realorl_actions(
    deals, bar_times, bid_open, ask_open, point: float = 1e-5, max_points: float = 1000,
    bar_seconds: int = 3600,
) -> np.ndarray:
    """Seed action vectors (n_bars, 6) reconstructed from historical deals (float64).

    At each bar open time T every deal with ``open_time - bar_seconds <= T < close_time``
    contributes: a buy adds its volume to a0 and sets a1 = max(a1, (TP - Ask) / scale),
    a2 = max(a2, (Ask - SL) / scale); a sell adds to a3 and sets a4 = max(a4, (Bid - TP) /
    scale), a5 = max(a5, (SL - Bid) / scale), ``scale = max_points * point``. TP/SL come from
    the close price (:attr:`HistDeal.take_profit`, :attr:`HistDeal.stop_loss`); a zero TP/SL
    contributes nothing, so its component stays 0 ("none" for the Real-ORL broker).
    """
    t = np.asarray(bar_times, dtype=np.int64)
    bid = np.asarray(bid_open, dtype=np.float64)
    ask = np.asarray(ask_open, dtype=np.float64)
    if t.ndim != 1 or bid.shape != t.shape or ask.shape != t.shape:
        raise ValueError("bar_times, bid_open and ask_open must be 1-D arrays of equal length")
    if t.size > 1 and (np.diff(t) <= 0).any():
        raise ValueError("bar_times must be strictly increasing")
    scale = max_points * point
    out = np.zeros((t.size, 6), dtype=np.float64)
    for d in deals:
        lo = int(np.searchsorted(t, d.open_time - bar_seconds, side="left"))
        hi = int(np.searchsorted(t, d.close_time, side="left"))
        if lo >= hi:
            continue
        tp, sl = d.take_profit, d.stop_loss
        if d.side == "buy":
            base, price, sign = 0, ask[lo:hi], 1.0
        else:
            base, price, sign = 3, bid[lo:hi], -1.0
        out[lo:hi, base] += d.volume
        if tp > 0:
            np.maximum(out[lo:hi, base + 1], sign * (tp - price) / scale, out=out[lo:hi, base + 1])
        if sl > 0:
            np.maximum(out[lo:hi, base + 2], sign * (price - sl) / scale, out=out[lo:hi, base + 2])
    return out
