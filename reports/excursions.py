"""Maximum favourable and adverse excursion (MFE/MAE) of each closed trade.

A function of the deals and the bid bars they were traded on; the per-bar spread in price
units comes from the caller (the broker's ``spread_price``, so longs are valued at bid and
shorts at ask exactly as the broker quoted them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from neurofx.deals import Deal
from neurofx.errors import NeurofxError


class BidBars(Protocol):
    """Bid bars as aligned arrays (``strategies.feeds.BarArrays`` is one)."""

    time_s: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray


def trade_excursions(deals: Sequence[Deal], bars: BidBars, spread: np.ndarray,
                     contract_size_units: float) -> dict[int, tuple[float, float]]:
    """(MFE, MAE) in USD of every ``out`` deal, from the bars its position was held through.

    MFE = max(0, best floating P/L), MAE = min(0, worst floating P/L) of the closed volume,
    before commission; longs are valued at bid, shorts at ask = bid + ``spread[bar]`` (price
    units per bar). A position opened at the open of bar i and closed during bar k saw the full
    ranges of bars i .. k-1, the open of bar k and its exit price; what bar k did after the exit
    is unknown and left out (so an exit at the open, or a TP/SL hit in the entry bar, adds only
    prices known to have been traded). The end-of-test close at bar k's close also counts bar k.
    """
    spread = np.asarray(spread, dtype=np.float64)
    n = len(bars.time_s)
    out: dict[int, tuple[float, float]] = {}
    for d in deals:
        if d.entry != "out":
            continue
        i = int(np.searchsorted(bars.time_s, d.entry_time, side="left"))
        k = int(np.searchsorted(bars.time_s, d.time, side="left"))
        if k >= n or bars.time_s[k] != d.time or i > k:
            raise NeurofxError(f"deal {d.ticket}: time {d.time} is not a bar of the replay; "
                               "pass the bars the replay ran on")
        long = d.side == "sell"  # an out sell closes a long position
        off = 0.0 if long else spread
        # the end-of-test close comes after bar k's whole range
        full = k + 1 if d.reason == "end_of_test" else k
        known = [bars.open[k] + (0.0 if long else spread[k]), d.price]
        hi = np.append((bars.high + off)[i:full], known)
        lo = np.append((bars.low + off)[i:full], known)
        scale = d.volume * contract_size_units
        if long:
            best, worst = (hi.max() - d.entry_price) * scale, (lo.min() - d.entry_price) * scale
        else:
            best, worst = (d.entry_price - lo.min()) * scale, (d.entry_price - hi.max()) * scale
        out[d.ticket] = (round(max(0.0, best), 2), round(min(0.0, worst), 2))
    return out
