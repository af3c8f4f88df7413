"""The deal record shared by the broker, the Real-ORL importers and the reports, and its file
format ``deals.csv`` (:func:`write_deals_csv`, :func:`read_deals_csv`).

A *deal* is one fill, as in MetaTrader 5's deal history: opening a position is an ``in`` deal,
closing (all or part of) it an ``out`` deal carrying the realised profit. A round-trip *trade*
in the reports is one ``out`` deal together with the entry price of its position.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path

from neurofx.atomic import write_text_atomic
from neurofx.errors import NeurofxError

DEAL_COLUMNS = (
    "ticket",       # deal number, 1, 2, ... in order of execution
    "time",         # fill time, Unix seconds (bar time in the feed's clock)
    "symbol",       # e.g. "EURUSD"
    "side",         # "buy" or "sell": the direction of this fill
    "entry",        # "in" (opens/increases a position) or "out" (closes/reduces it)
    "volume",       # lots
    "price",        # fill price
    "commission",   # account currency, <= 0
    "swap",         # account currency
    "profit",       # realised P/L of an "out" deal in account currency, 0 for "in"
    "position_id",  # the position this deal opens or closes
    "reason",       # "agent", "tp", "sl", "stop_out", "end_of_test"
    "entry_time",   # for "out" deals: open time of the position (Unix s), else = time
    "entry_price",  # for "out" deals: open price of the position, else = price
)


@dataclass(frozen=True)
class Deal:
    ticket: int
    time: int
    symbol: str
    side: str
    entry: str
    volume: float
    price: float
    commission: float
    swap: float
    profit: float
    position_id: int
    reason: str
    entry_time: int
    entry_price: float

    def as_row(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


assert tuple(f.name for f in fields(Deal)) == DEAL_COLUMNS


# ---- the deals.csv format --------------------------------------------------------------------
# Money with 2 decimals, prices with 5, lots with 2: fixed widths diff well. A value these
# decimals would change (a finer lot step, a sub-cent amount) is written in full instead, so
# reading a file back always gives the deals that were written.
_DECIMALS = {"volume": 2, "price": 5, "commission": 2, "swap": 2, "profit": 2,
             "entry_price": 5}
_INTS = ("ticket", "time", "position_id", "entry_time")
_POSITIVE = ("volume", "price", "entry_price")
_CHOICES = {"side": ("buy", "sell"), "entry": ("in", "out")}


def _number_text(ticket: int, name: str, value: float) -> str:
    x = float(value)
    if not math.isfinite(x):
        raise NeurofxError(f"deal {ticket}: field '{name}' is {x!r}, not a finite number")
    text = f"{x:.{_DECIMALS[name]}f}"
    return text if float(text) == x else repr(x)


def write_deals_csv(path: str | os.PathLike, deals: Iterable[Deal]) -> Path:
    """Write ``deals`` in ticket order as a neurofx ``deals.csv`` (header
    :data:`DEAL_COLUMNS`), atomically; :func:`read_deals_csv` reads back the same deals."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(DEAL_COLUMNS)
    for d in sorted(deals, key=lambda d: d.ticket):
        w.writerow([_number_text(d.ticket, c, getattr(d, c)) if c in _DECIMALS
                    else getattr(d, c) for c in DEAL_COLUMNS])
    return write_text_atomic(path, buf.getvalue())


def _field(path, line: int, name: str, text: str):
    def bad(problem: str) -> NeurofxError:
        return NeurofxError(f"{path}, line {line}, field '{name}': {problem}")

    if name in _INTS:
        try:
            return int(text)
        except ValueError:
            raise bad(f"{text!r} is not an integer (Unix seconds for times)") from None
    if name in _DECIMALS:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise bad(f"{text!r} is not a number")
        if name in _POSITIVE and value <= 0:
            raise bad(f"{text} must be > 0")
        return value
    if name in _CHOICES and text not in _CHOICES[name]:
        raise bad(f"{text!r} is not " + " or ".join(repr(c) for c in _CHOICES[name]))
    if name == "symbol" and not text:
        raise bad("is empty; name the instrument, e.g. EURUSD")
    return text


def read_deals_csv(path: str | os.PathLike) -> list[Deal]:
    """Read a neurofx ``deals.csv``: a header naming :data:`DEAL_COLUMNS` in order, then one
    deal a line. Blank lines and ``#`` comment lines are skipped. A malformed line is a
    one-line :class:`NeurofxError` naming the file, the line and the field."""
    return [deal for _, deal in iter_deals_csv(path)]


def iter_deals_csv(path: str | os.PathLike) -> Iterator[tuple[int, Deal]]:
    """(line number, deal) for each deal of a ``deals.csv``, checked as :func:`read_deals_csv`
    says; for readers that report their own findings by line."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise NeurofxError(f"{path}: deal file not found; check the path") from None
    except UnicodeDecodeError as exc:
        raise NeurofxError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); "
                           "save the deals as UTF-8 CSV") from None
    header_seen = False
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        row = next(csv.reader([line]))
        if not header_seen:
            names = [c.strip() for c in row]
            for i, want in enumerate(DEAL_COLUMNS):
                if i >= len(names) or names[i] != want:
                    raise NeurofxError(
                        f"{path}, line {n}, field '{want}': column missing or out of place; a "
                        f"neurofx deals.csv starts with the header {','.join(DEAL_COLUMNS)}")
            if len(names) > len(DEAL_COLUMNS):
                raise NeurofxError(f"{path}, line {n}, field '{names[len(DEAL_COLUMNS)]}': "
                                   "unknown column; remove it")
            header_seen = True
            continue
        if len(row) != len(DEAL_COLUMNS):
            raise NeurofxError(f"{path}, line {n}, field 'field count': {len(row)} fields, "
                               f"expected {len(DEAL_COLUMNS)} separated by ','")
        yield n, Deal(*(_field(path, n, name, value.strip())
                        for name, value in zip(DEAL_COLUMNS, row, strict=True)))
    if not header_seen:
        raise NeurofxError(f"{path}, line 1, field 'header': empty file; expected the header "
                           f"{','.join(DEAL_COLUMNS)}")
