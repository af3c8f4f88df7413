"""Read the MT5 terminal's Trade History Report (History tab -> Report) saved as ``.xlsx`` or
``.html``: its Positions, Orders, Deals and Open Positions tables and the Summary and Results
label/value sections.

Both files are one grid of rows: a section starts at a row holding only its title, a table's
next row names its columns, and its rows run to the next title. Cells are read as text (an
HTML ``colspan`` or a merged spreadsheet cell fills its extra columns with blanks; cells with
class ``hidden`` are left out), so one parser serves both. Numbers may have spaces as
thousands separators (``1 480.59``) or be text (``'0.01'``; Orders: ``'0.01 / 0.01'``); rows
holding spreadsheet formulas (``=SUM(...)``) and totals rows without a time are skipped.
Times are the report's server time, read as naive timestamps (Unix seconds, UTC).
"""

from __future__ import annotations

import calendar
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path

from neurofx.collectors.realorl import (
    NON_TRADE_TYPES,
    TIME_FORMATS,
    DealImport,
    HistDeal,
    decode_text,
    pair_in_out,
    symbol_matches,
)
from neurofx.deals import Deal
from neurofx.errors import NeurofxError

TABLE_SECTIONS = ("positions", "orders", "deals", "open positions", "working orders")
VALUE_SECTIONS = ("summary", "results")
# first words of Results rows that MT5 may write in a cell of their own ("Largest" | "profit
# trade:" ...); they are joined to the labels that follow
_LABEL_PREFIXES = ("largest", "average", "maximum", "maximal")


@dataclass(frozen=True)
class ReportDeal:
    """One row of the Deals table; ``type`` and ``direction`` in lower case."""

    row: int
    time: int
    deal: int
    symbol: str
    type: str  # buy, sell, balance, credit, ...
    direction: str  # in, out, in/out, out by; "" for balance operations
    volume: float
    price: float
    commission: float
    fee: float
    swap: float
    profit: float
    balance: float
    comment: str

    @property
    def is_trade(self) -> bool:
        return self.type in ("buy", "sell")


@dataclass(frozen=True)
class ReportPosition:
    """One row of the Positions table: a closed position."""

    row: int
    open_time: int
    position: int
    symbol: str
    type: str  # buy or sell
    volume: float
    open_price: float
    close_time: int
    close_price: float
    commission: float
    swap: float
    profit: float


@dataclass(frozen=True)
class ReportOrder:
    row: int
    time: int
    order: int
    symbol: str
    type: str  # buy, sell limit, ...
    volume: float  # requested
    filled: float  # the part that filled
    state: str  # filled, canceled, ...


@dataclass(frozen=True)
class OpenPosition:
    row: int
    time: int
    position: int
    symbol: str
    type: str
    volume: float


@dataclass(frozen=True)
class TradeHistoryReport:
    """The parts of a Trade History Report neurofx uses. ``positions`` is None when the
    report has no Positions table (then trades come from pairing the deals)."""

    path: str
    deals: list[ReportDeal]
    positions: list[ReportPosition] | None
    orders: list[ReportOrder] = field(default_factory=list)
    open_positions: list[OpenPosition] = field(default_factory=list)
    summary: dict[str, str] = field(default_factory=dict)
    results: dict[str, str] = field(default_factory=dict)  # normalised label -> value text


# ---- the grid -------------------------------------------------------------------------------
class _GridParser(HTMLParser):
    """Rows of cell texts from HTML tables; colspans expanded, hidden cells dropped."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._span = 1
        self._skip = 0  # inside <style>/<script>

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("style", "script"):
            self._skip += 1
        elif tag == "tr":
            self._end_row()
            self._row = []
        elif tag in ("td", "th"):
            self._end_cell()
            if self._row is None:
                self._row = []
            hidden = "hidden" in (a.get("class") or "").split()
            self._cell = None if hidden else []
            try:
                self._span = max(1, int(a.get("colspan") or 1))
            except ValueError:
                self._span = 1
        elif tag == "br" and self._cell is not None:
            self._cell.append(" ")

    def handle_endtag(self, tag):
        if tag in ("style", "script"):
            self._skip = max(0, self._skip - 1)
        elif tag in ("td", "th"):
            self._end_cell()
        elif tag in ("tr", "table"):
            self._end_row()

    def handle_data(self, data):
        if self._cell is not None and not self._skip:
            self._cell.append(data)

    def _end_cell(self):
        if self._cell is not None and self._row is not None:
            self._row.extend([_clean("".join(self._cell))] + [""] * (self._span - 1))
        self._cell = None
        self._span = 1

    def _end_row(self):
        self._end_cell()
        if self._row is not None:
            self.rows.append(self._row)
        self._row = None


def _clean(text: str) -> str:
    return " ".join(text.replace("\u00a0", " ").split())


def _cell_text(value, number_format: str = "General") -> str:
    """A spreadsheet cell as MT5 shows it: numbers with the decimals of their format."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y.%m.%d %H:%M:%S")
    if isinstance(value, int | float) and not isinstance(value, bool):
        decimals = re.search(r"\.(0+)", number_format or "")
        if decimals:
            return f"{value:.{len(decimals.group(1))}f}"
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    return _clean(str(value))


def read_grid(path) -> list[list[str]]:
    """The report's rows of cell texts, from an ``.xlsx`` (first sheet) or an HTML file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise NeurofxError(f"{path}: report file not found; check the path") from None
    if data.startswith(b"PK\x03\x04"):
        return _xlsx_grid(path)
    parser = _GridParser()
    parser.feed(decode_text(data))
    parser.close()
    parser._end_row()
    return parser.rows


def _xlsx_grid(path: Path) -> list[list[str]]:
    import openpyxl

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=False)
    except Exception as exc:  # zip/XML errors of a damaged file
        raise NeurofxError(f"{path}: not a readable .xlsx workbook ({exc}); save the report "
                           "again from MT5 (History -> Report -> Excel)") from None
    try:
        sheet = book.worksheets[0]
        return [[_cell_text(c.value, getattr(c, "number_format", "General")) for c in row]
                for row in sheet.iter_rows()]
    finally:
        book.close()


# ---- sections ---------------------------------------------------------------------------
def _sections(rows: list[list[str]]) -> dict[str, list[tuple[int, list[str]]]]:
    """Section title -> its rows as (1-based row number, cells); blank rows dropped."""
    out: dict[str, list[tuple[int, list[str]]]] = {}
    current = None
    for n, cells in enumerate(rows, start=1):
        filled = [c for c in cells if c]
        if not filled:
            continue
        if len(filled) == 1 and filled[0].lower() in TABLE_SECTIONS + VALUE_SECTIONS:
            current = filled[0].lower()
            out[current] = []
        elif current is not None:
            out[current].append((n, cells))
    return out


def _label(text: str) -> str:
    return " ".join(text.rstrip(":").lower().split())


def label_values(rows: list[tuple[int, list[str]]]) -> dict[str, str]:
    """``Label:`` cells followed by their value cell, e.g. ``{"total net profit": "19.45"}``."""
    out: dict[str, str] = {}
    for _, cells in rows:
        filled = [c for c in cells if c]
        prefix = ""
        i = 0
        while i < len(filled):
            text = filled[i]
            if not text.endswith(":"):
                if text.lower() in _LABEL_PREFIXES:
                    prefix = text + " "
                i += 1
                continue
            nxt = filled[i + 1] if i + 1 < len(filled) else ""
            if nxt and not nxt.endswith(":"):
                out[_label(prefix + text)] = nxt
                i += 2
            else:
                i += 1  # a heading such as "Balance Drawdown:" without a value
    return out


class _Table:
    """Typed access to one table row by column name, errors naming file, row and column."""

    def __init__(self, path, section: str, rows: list[tuple[int, list[str]]]):
        self.path, self.section = path, section
        self.header_row, header = rows[0]
        self.columns: dict[str, list[int]] = {}
        for i, name in enumerate(header):
            if name:
                self.columns.setdefault(_label(name), []).append(i)
        self.rows = rows[1:]

    def require(self, *names: str) -> None:
        for name in names:
            if name not in self.columns:
                raise NeurofxError(
                    f"{self.path}, row {self.header_row}, field '{name}': column missing from "
                    f"the {self.section.title()} table; save the report again from MT5")

    def text(self, cells, name: str, k: int = 0) -> str:
        idx = self.columns.get(name, [])
        return cells[idx[k]] if k < len(idx) and idx[k] < len(cells) else ""

    def fail(self, n: int, name: str, msg: str):
        raise NeurofxError(f"{self.path}, row {n}, field '{name}': {msg}")

    def number(self, n: int, cells, name: str, k: int = 0, blank: float | None = 0.0) -> float:
        raw = self.text(cells, name, k)
        if not raw and blank is not None:
            return blank
        value = parse_number(raw)
        if math.isnan(value):
            self.fail(n, name, f"{raw!r} is not a number")
        return value

    def positive(self, n: int, cells, name: str, k: int = 0) -> float:
        value = self.number(n, cells, name, k, blank=None)
        if value <= 0:
            self.fail(n, name, f"{value} must be > 0")
        return value

    def integer(self, n: int, cells, name: str) -> int:
        raw = self.text(cells, name)
        if not raw.isdigit():
            self.fail(n, name, f"{raw!r} is not a ticket number")
        return int(raw)

    def time(self, n: int, cells, name: str, k: int = 0) -> int:
        raw = self.text(cells, name, k)
        for fmt in TIME_FORMATS:
            try:
                return calendar.timegm(datetime.strptime(raw, fmt).timetuple())
            except ValueError:
                continue
        self.fail(n, name, f"{raw!r} is not a time like 2023.01.05 10:15:00")


def parse_number(text: str) -> float:
    """``'1 480.59'`` -> 1480.59; text quotes and spaces dropped; nan if not a number."""
    raw = text.strip().strip("'\"").replace(" ", "").replace("\u00a0", "")
    try:
        value = float(raw)
    except ValueError:
        return math.nan
    return value if math.isfinite(value) else math.nan


def _data_rows(table: _Table, key: str):
    """Rows of a table that hold a record: formula and totals rows (no ``key`` cell) skipped."""
    for n, cells in table.rows:
        if any(c.startswith("=") for c in cells) or not table.text(cells, key):
            continue
        yield n, cells


def _read_deals(table: _Table) -> list[ReportDeal]:
    table.require("time", "deal", "symbol", "type", "direction", "volume", "price", "profit")
    out = []
    for n, cells in _data_rows(table, "deal"):
        typ = table.text(cells, "type").lower()
        trade = typ in ("buy", "sell")
        if not trade and typ not in NON_TRADE_TYPES:
            table.fail(n, "type", f"{typ!r} is not a deal type (buy, sell, balance, ...)")
        direction = table.text(cells, "direction").lower()
        if trade and direction.replace(" ", "") not in ("in", "out", "in/out", "outby"):
            table.fail(n, "direction", f"{direction!r} is not in, out, in/out or out by")
        out.append(ReportDeal(
            row=n, time=table.time(n, cells, "time"), deal=table.integer(n, cells, "deal"),
            symbol=table.text(cells, "symbol"), type=typ, direction=direction,
            volume=table.positive(n, cells, "volume") if trade else 0.0,
            price=table.positive(n, cells, "price") if trade else 0.0,
            commission=table.number(n, cells, "commission"), fee=table.number(n, cells, "fee"),
            swap=table.number(n, cells, "swap"), profit=table.number(n, cells, "profit"),
            balance=table.number(n, cells, "balance", blank=math.nan),
            comment=table.text(cells, "comment")))
    return out


def _side(table: _Table, n: int, cells) -> str:
    typ = table.text(cells, "type").lower()
    if typ not in ("buy", "sell"):
        table.fail(n, "type", f"{typ!r} is not buy or sell")
    return typ


def _read_positions(table: _Table) -> list[ReportPosition]:
    table.require("time", "position", "symbol", "type", "volume", "price", "profit")
    if len(table.columns["time"]) < 2 or len(table.columns["price"]) < 2:
        table.fail(table.header_row, "time", "expected open and close Time and Price columns")
    out = []
    for n, cells in _data_rows(table, "position"):
        out.append(ReportPosition(
            row=n, open_time=table.time(n, cells, "time"),
            position=table.integer(n, cells, "position"), symbol=table.text(cells, "symbol"),
            type=_side(table, n, cells), volume=table.positive(n, cells, "volume"),
            open_price=table.positive(n, cells, "price"),
            close_time=table.time(n, cells, "time", 1),
            close_price=table.positive(n, cells, "price", 1),
            commission=table.number(n, cells, "commission"),
            swap=table.number(n, cells, "swap"), profit=table.number(n, cells, "profit")))
    return out


def _read_orders(table: _Table) -> list[ReportOrder]:
    table.require("order", "symbol", "type", "volume")
    time_col = "open time" if "open time" in table.columns else "time"
    out = []
    for n, cells in _data_rows(table, "order"):
        parts = table.text(cells, "volume").split("/")
        nums = [parse_number(p) for p in parts]
        if not parts or any(math.isnan(x) for x in nums):
            table.fail(n, "volume", f"{table.text(cells, 'volume')!r} is not a volume like "
                                    "'0.01 / 0.01'")
        out.append(ReportOrder(n, table.time(n, cells, time_col), table.integer(n, cells, "order"),
                               table.text(cells, "symbol"), table.text(cells, "type").lower(),
                               nums[0], nums[-1], table.text(cells, "state").lower()))
    return out


def _read_open_positions(table: _Table) -> list[OpenPosition]:
    table.require("time", "position", "symbol", "type", "volume")
    return [OpenPosition(n, table.time(n, cells, "time"), table.integer(n, cells, "position"),
                         table.text(cells, "symbol"), _side(table, n, cells),
                         table.positive(n, cells, "volume"))
            for n, cells in _data_rows(table, "position")]


def read_trade_history_report(path) -> TradeHistoryReport:
    """Parse an MT5 Trade History Report (``.xlsx`` or ``.html``, UTF-8 or UTF-16)."""
    sections = _sections(read_grid(path))
    if "deals" not in sections and "positions" not in sections:
        raise NeurofxError(f"{path}: no Deals or Positions table; not an MT5 Trade History "
                           "Report (save one from the History tab: right click -> Report)")

    def table(name):
        rows = sections.get(name)
        return _Table(path, name, rows) if rows else None

    deals, positions = table("deals"), table("positions")
    orders, open_pos = table("orders"), table("open positions")
    return TradeHistoryReport(
        path=str(path),
        deals=_read_deals(deals) if deals else [],
        positions=_read_positions(positions) if positions else None,
        orders=_read_orders(orders) if orders else [],
        open_positions=_read_open_positions(open_pos) if open_pos else [],
        summary=label_values(sections.get("summary", [])),
        results=label_values(sections.get("results", [])))


# ---- Real-ORL -------------------------------------------------------------------------------
def import_mt5_report(path, symbol: str = "EURUSD") -> DealImport:
    """Closed positions of ``symbol`` from a Trade History Report.

    Hedging accounts can hold several positions of a symbol at once, so pairing in and out
    deals first in, first out can mis-pair them: the Positions table is used where the report
    has one; otherwise the in/out deals are paired FIFO (as :func:`import_mt5_deals`). Positions
    still open (Open Positions) count as unmatched.
    """
    rep = read_trade_history_report(path)
    trades = [d for d in rep.deals if d.is_trade]
    balance_rows = len(rep.deals) - len(trades)
    if rep.positions is not None:
        mine = [p for p in rep.positions if symbol_matches(p.symbol, symbol)]
        deals = [HistDeal(p.open_time, p.type, p.volume, p.symbol, p.open_price, p.close_time,
                          p.close_price, p.profit) for p in mine]
        open_left = sum(symbol_matches(p.symbol, symbol) for p in rep.open_positions)
        return DealImport(sorted(deals, key=lambda d: (d.open_time, d.close_time)),
                          len(rep.positions) - len(mine), open_left, balance_rows)
    mine = [d for d in trades if symbol_matches(d.symbol, symbol)]
    rows = [(d.time, d.deal, d.symbol, d.type, d.direction.replace(" ", ""), d.volume, d.price,
             d.profit) for d in mine]
    paired, unmatched = pair_in_out(rows)
    return DealImport(paired, len(trades) - len(mine), unmatched, balance_rows)


# ---- the report's deals as neurofx deals ----------------------------------------------------
@dataclass(frozen=True)
class ReportDeals:
    deals: list[Deal]  # trade deals in time order, tickets 1, 2, ...
    deposit_usd: float  # balance operations before the first trade
    later_balance_ops: int  # deposits/withdrawals after it (not in neurofx's statistics)


def deals_of_report(report: TradeHistoryReport) -> ReportDeals:
    """neurofx deals of every symbol of the report, in time order.

    Positions are numbered per (symbol, side) while volume is open, so an out deal closes the
    position of its symbol on the other side; an ``in/out`` deal becomes an out deal for the
    volume it closes and an in deal for the rest. Fee counts as commission.
    """
    rows = sorted(report.deals, key=lambda d: (d.time, d.deal))
    first_trade = next((i for i, d in enumerate(rows) if d.is_trade), len(rows))
    deposit = sum(d.profit for d in rows[:first_trade] if not d.is_trade)
    if not deposit > 0:
        raise NeurofxError(f"{report.path}: no deposit (balance row) before the first trade; "
                           "a report needs its first balance operation to compute returns")
    later = sum(1 for d in rows[first_trade:] if not d.is_trade)
    out: list[Deal] = []
    open_vol: dict[tuple[str, str], float] = {}
    pid_of: dict[tuple[str, str], int] = {}

    def add(d, side, entry, volume, profit, commission, swap, pid):
        out.append(Deal(len(out) + 1, d.time, d.symbol, side, entry, volume, d.price,
                        commission, swap, profit, pid, "", d.time, d.price))

    for d in rows[first_trade:]:
        if not d.is_trade:
            continue
        money = d.commission + d.fee
        direction = d.direction.replace(" ", "")
        left = d.volume
        if direction != "in":
            key = (d.symbol, "sell" if d.type == "buy" else "buy")
            held = open_vol.get(key, 0.0)
            closed = min(held, d.volume) if direction in ("in/out", "inout") else d.volume
            if closed > 1e-9:
                add(d, d.type, "out", closed, d.profit, money, d.swap, pid_of.get(key, 0))
                money = 0.0
            open_vol[key] = max(held - closed, 0.0)
            left = d.volume - closed
        if direction in ("in", "in/out", "inout") and left > 1e-9:
            key = (d.symbol, d.type)
            if open_vol.get(key, 0.0) <= 1e-9:
                pid_of[key] = d.deal
            open_vol[key] = open_vol.get(key, 0.0) + left
            add(d, d.type, "in", left, 0.0, money, 0.0, pid_of[key])
    return ReportDeals(out, float(deposit), later)
