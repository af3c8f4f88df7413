"""Deals -> round-trip trades table, and the balance curve the deals imply.

A *trade* is one ``out`` deal: it closes (all or part of) a position opened by ``in`` deals.
Its net result is the out deal's ``profit + commission + swap`` plus the pro-rata share (by
closed volume) of the commission and swap charged on the ``in`` deals of its position. So a
trade that beats the spread but not its round-trip commission counts as a loss, and the sum of
all trade results equals the cash flow of all deals once every position is closed (see
docs/metrics.md, "Trades").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields

import numpy as np

from neurofx.deals import Deal
from neurofx.errors import NeurofxError

# Columns of trades.csv in order; mfe_usd/mae_usd only when excursions were recorded.
TRADE_COLUMNS = (
    "ticket", "position_id", "direction", "volume_lots", "entry_time_s", "exit_time_s",
    "entry_price", "exit_price", "profit_usd", "commission_usd", "swap_usd", "net_usd",
    "balance_usd", "holding_hours", "reason",
)
EXCURSION_COLUMNS = ("mfe_usd", "mae_usd")
_VOLUME_EPS = 1e-9


@dataclass(frozen=True, eq=False)
class TradeTable:
    """Columnar round-trip trades in exit order (one row per ``out`` deal).

    ``direction`` is +1 for a long position (closed by a sell), -1 for a short one.
    ``balance_usd`` is the *trade balance* after the trade: deposit + cumulative ``net_usd``.
    ``mfe_usd``/``mae_usd`` (maximum favourable/adverse excursion, money) are ``None`` unless
    the caller recorded them.
    """

    ticket: np.ndarray
    position_id: np.ndarray
    direction: np.ndarray
    volume_lots: np.ndarray
    entry_time_s: np.ndarray
    exit_time_s: np.ndarray
    entry_price: np.ndarray
    exit_price: np.ndarray
    profit_usd: np.ndarray
    commission_usd: np.ndarray
    swap_usd: np.ndarray
    net_usd: np.ndarray
    balance_usd: np.ndarray
    holding_hours: np.ndarray
    reason: np.ndarray
    mfe_usd: np.ndarray | None = None
    mae_usd: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.net_usd)

    @property
    def has_excursions(self) -> bool:
        return self.mfe_usd is not None and self.mae_usd is not None

    def excursions(self) -> dict[int, tuple[float, float]] | None:
        """Out-deal ticket -> (MFE, MAE), the input ``trades_from_deals`` takes; None if absent."""
        if not self.has_excursions:
            return None
        return {int(t): (float(a), float(b))
                for t, a, b in zip(self.ticket, self.mfe_usd, self.mae_usd, strict=True)}

    def columns(self) -> dict[str, np.ndarray]:
        """Column name -> array, in trades.csv order (excursions only when present)."""
        names = TRADE_COLUMNS + (EXCURSION_COLUMNS if self.has_excursions else ())
        return {name: getattr(self, name) for name in names}


@dataclass(frozen=True)
class DealLedger:
    """What the deals do to the account: the balance after each deal and the leftovers."""

    balance_usd: np.ndarray  # deposit followed by the balance after each deal (len = deals + 1)
    unallocated_commission_usd: float  # entry commission + swap of volume never closed


_INT_FIELDS = ("ticket", "position_id", "entry_time_s", "exit_time_s")


def empty_trades() -> TradeTable:
    kw = {f.name: np.zeros(0, dtype=np.int64 if f.name in _INT_FIELDS else np.float64)
          for f in fields(TradeTable) if f.name not in ("reason", "mfe_usd", "mae_usd")}
    kw["direction"] = np.zeros(0, dtype=np.int8)
    return TradeTable(reason=np.zeros(0, dtype=object), **kw)


def deal_cash_usd(deal: Deal) -> float:
    """The balance change a deal causes: profit + commission + swap."""
    return deal.profit + deal.commission + deal.swap


def sorted_deals(deals: Iterable[Deal]) -> list[Deal]:
    """Validate the fields the reports rely on and return the deals in ticket order."""
    out = sorted(deals, key=lambda d: d.ticket)
    for d in out:
        if d.entry not in ("in", "out"):
            raise NeurofxError(f"deal {d.ticket}: field 'entry' is {d.entry!r}; use 'in' or 'out'")
        if d.side not in ("buy", "sell"):
            raise NeurofxError(f"deal {d.ticket}: field 'side' is {d.side!r}; use 'buy' or 'sell'")
        if not d.volume > 0:
            raise NeurofxError(f"deal {d.ticket}: field 'volume' is {d.volume!r}; it must be > 0")
        for name in ("price", "commission", "swap", "profit"):
            if not np.isfinite(getattr(d, name)):
                raise NeurofxError(f"deal {d.ticket}: field '{name}' is not a finite number")
    for a, b in zip(out, out[1:], strict=False):
        if a.ticket == b.ticket:
            raise NeurofxError(
                f"deal {a.ticket}: field 'ticket' is repeated; tickets must be unique")
    return out


def deal_ledger(deals: Sequence[Deal], deposit_usd: float) -> DealLedger:
    """Balance curve over deals and the commission of positions still open at the end."""
    ds = sorted_deals(deals)
    cash = np.array([deal_cash_usd(d) for d in ds], dtype=np.float64)
    balance = np.concatenate([[float(deposit_usd)], float(deposit_usd) + np.cumsum(cash)])
    _, left = _allocate(ds)
    return DealLedger(balance, float(sum(left.values())))


def _allocate(ds: Sequence[Deal]) -> tuple[list[tuple[Deal, float, float]], dict[int, float]]:
    """Pair each out deal with its share of entry commission and swap.

    Returns [(out deal, commission share, swap share)] and position -> unallocated money.
    """
    open_volume: dict[int, float] = {}
    entry_comm: dict[int, float] = {}
    entry_swap: dict[int, float] = {}
    pairs = []
    for d in ds:
        pid = d.position_id
        if d.entry == "in":
            open_volume[pid] = open_volume.get(pid, 0.0) + d.volume
            # an in deal's profit is 0 by definition; any nonzero value is treated as a cost
            # of entry so that the trades still add up to the balance
            entry_comm[pid] = entry_comm.get(pid, 0.0) + d.commission + d.profit
            entry_swap[pid] = entry_swap.get(pid, 0.0) + d.swap
            continue
        vol = open_volume.get(pid, 0.0)
        frac = 1.0 if d.volume >= vol - _VOLUME_EPS else d.volume / vol
        c_share = entry_comm.get(pid, 0.0) * frac
        s_share = entry_swap.get(pid, 0.0) * frac
        if pid in open_volume:
            open_volume[pid] = max(vol - d.volume, 0.0)
            entry_comm[pid] -= c_share
            entry_swap[pid] -= s_share
        pairs.append((d, c_share, s_share))
    left = {pid: entry_comm[pid] + entry_swap[pid] for pid in entry_comm}
    return pairs, left


def trades_from_deals(
    deals: Iterable[Deal],
    deposit_usd: float,
    excursions: Mapping[int, tuple[float, float]] | None = None,
) -> TradeTable:
    """Build the round-trip trades table from MT5-style deals.

    ``excursions`` maps an out deal's ticket to its (MFE, MAE) in money; when given, every
    out deal must have an entry.
    """
    pairs, _ = _allocate(sorted_deals(deals))
    if not pairs:
        return empty_trades()
    outs = [p[0] for p in pairs]
    comm = np.array([d.commission + c for d, c, _ in pairs], dtype=np.float64)
    swap = np.array([d.swap + s for d, _, s in pairs], dtype=np.float64)
    profit = np.array([d.profit for d in outs], dtype=np.float64)
    net = profit + comm + swap
    entry_t = np.array([d.entry_time for d in outs], dtype=np.int64)
    exit_t = np.array([d.time for d in outs], dtype=np.int64)
    mfe = mae = None
    if excursions is not None:
        missing = [d.ticket for d in outs if d.ticket not in excursions]
        if missing:
            raise NeurofxError(
                f"excursions: no (mfe, mae) for out deal ticket {missing[0]}; "
                "record one pair per closing deal or pass excursions=None")
        mfe = np.array([excursions[d.ticket][0] for d in outs], dtype=np.float64)
        mae = np.array([excursions[d.ticket][1] for d in outs], dtype=np.float64)
    return TradeTable(
        ticket=np.array([d.ticket for d in outs], dtype=np.int64),
        position_id=np.array([d.position_id for d in outs], dtype=np.int64),
        direction=np.array([1 if d.side == "sell" else -1 for d in outs], dtype=np.int8),
        volume_lots=np.array([d.volume for d in outs], dtype=np.float64),
        entry_time_s=entry_t,
        exit_time_s=exit_t,
        entry_price=np.array([d.entry_price for d in outs], dtype=np.float64),
        exit_price=np.array([d.price for d in outs], dtype=np.float64),
        profit_usd=profit,
        commission_usd=comm,
        swap_usd=swap,
        net_usd=net,
        balance_usd=float(deposit_usd) + np.cumsum(net),
        holding_hours=(exit_t - entry_t).astype(np.float64) / 3600.0,
        reason=np.array([d.reason for d in outs], dtype=object),
        mfe_usd=mfe,
        mae_usd=mae,
    )
