"""The deal record shared by the broker, the Real-ORL importers and the reports.

A *deal* is one fill, as in MetaTrader 5's deal history: opening a position is an ``in`` deal,
closing (all or part of) it an ``out`` deal carrying the realised profit. A round-trip *trade*
in the reports is one ``out`` deal together with the entry price of its position.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

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
