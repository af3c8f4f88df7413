"""The seed's action-to-orders rule (spec 3.2): net the two directions, then trade each side.

A 6-value action ``[buy lots, buy TP, buy SL, sell lots, sell TP, sell SL]`` (TP/SL as fractions
of ``max_tp_points``/``max_sl_points``) is executed at the broker's current quote, buy side first:

* net: the larger lot value minus the smaller, the smaller becomes 0;
* a side with lots < min lot, or a TP/SL distance <= stops, closes all its positions;
* otherwise the lot is normalised, TP/SL priced from ask (buys) / bid (sells), existing positions
  are modified (SL only when it moves >= 1 point in the favourable direction, TP when it changes by
  >= 1 point), then the excess volume is closed (whole positions first, then a partial close) or
  the missing volume is opened.

Hence at most one direction stays open and a reversal closes the old side then opens the new one
on the same bar.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from neurofx.errors import NeurofxError

from .broker import BUY, SELL, ForexBroker, Position


@dataclass(frozen=True)
class SideExecution:
    """What happened to one direction. ``target_lots`` is 0 when the side was closed."""

    side: str
    target_lots: float
    tp: float | None
    sl: float | None
    closed_lots: float
    opened_lots: float
    modified: int
    rejected: int


@dataclass(frozen=True)
class NettingResult:
    """``action`` is the netted 6-vector (what the research step records)."""

    action: tuple[float, float, float, float, float, float]
    buy: SideExecution
    sell: SideExecution


def net_action(action: Sequence[float]) -> tuple[float, ...]:
    """Step 1 of spec 3.2: subtract the smaller lot value from the larger, zero the smaller."""
    if len(action) != 6:
        raise NeurofxError(f"action must have 6 values [buy lots, buy TP, buy SL, sell lots, "
                           f"sell TP, sell SL], got {len(action)}")
    a = [float(x) for x in action]
    if not all(math.isfinite(x) for x in a):
        raise NeurofxError(f"action must be finite numbers, got {a}")
    if a[0] >= a[3]:
        a[0] -= a[3]
        a[3] = 0.0
    else:
        a[3] -= a[0]
        a[0] = 0.0
    return tuple(a)


def apply_action(broker: ForexBroker, action: Sequence[float], *, zero_means_none: bool = False,
                 stops_mode: str = "research", max_tp_points: float = 1000.0,
                 max_sl_points: float = 1000.0) -> NettingResult:
    """Execute ``action`` on ``broker`` at its current quote (normally the bar open).

    ``zero_means_none`` (Real-ORL): a TP/SL component <= 0 means no TP/SL and skips its stops
    check. ``stops_mode="test"`` uses the later Test.mq5 rule: stops = (max(level, 1) + spread)
    points and a TP needs a distance > 2*stops.
    """
    if stops_mode not in ("research", "test"):
        raise NeurofxError(f"stops_mode must be 'research' or 'test', got {stops_mode!r}")
    a = net_action(action)
    cfg = broker.config
    stops_points = max(cfg.stops_level_points, 1)
    if stops_mode == "test":
        stops_points += round(broker.spread / cfg.point)
    stops = stops_points * cfg.point
    tp_stops = 2 * stops if stops_mode == "test" else stops
    plans = []
    for side, (lots, tp_frac, sl_frac) in ((BUY, a[0:3]), (SELL, a[3:6])):
        tp_dist = tp_frac * max_tp_points * cfg.point
        sl_dist = sl_frac * max_sl_points * cfg.point
        use_tp = tp_frac > 0 or not zero_means_none
        use_sl = sl_frac > 0 or not zero_means_none
        if (lots < cfg.min_lot - 1e-12 or (use_tp and tp_dist <= tp_stops + 1e-12)
                or (use_sl and sl_dist <= stops + 1e-12)):
            plans.append((side, None))
            continue
        sign = 1.0 if side == BUY else -1.0
        ref = broker.ask if side == BUY else broker.bid
        tp = round(ref + sign * tp_dist, cfg.digits) if use_tp else None
        sl = round(ref - sign * sl_dist, cfg.digits) if use_sl else None
        plans.append((side, (_normalise_lots(lots, cfg), tp, sl)))
    # the closing side goes first, so a reversal closes the old direction before it opens the
    # new one (the seed always handled buys first; see docs/broker.md)
    done = {}
    for side, plan in sorted(plans, key=lambda sp: sp[1] is not None):
        if plan is None:
            closed = sum(d.volume for d in broker.close_all(side))
            done[side] = SideExecution(side, 0.0, None, None, round(closed, 8), 0.0, 0, 0)
        else:
            done[side] = _trade_side(broker, side, *plan)
    sides = [done[BUY], done[SELL]]
    return NettingResult(a, sides[0], sides[1])


def _normalise_lots(lots: float, cfg) -> float:
    steps = round((lots - cfg.min_lot) / cfg.lot_step)
    return round(min(cfg.min_lot + steps * cfg.lot_step, cfg.max_lot), 8)


def _trade_side(broker: ForexBroker, side: str, lot: float, tp, sl) -> SideExecution:
    cfg = broker.config
    rejected0 = broker.rejected_orders
    mine = [p for p in broker.positions if p.side == side]
    modified = sum(_trail(broker, p, tp, sl) for p in mine)
    have_steps = round(sum(p.lots for p in mine) / cfg.lot_step)
    want_steps = round(lot / cfg.lot_step)
    closed = opened = 0.0
    if have_steps > want_steps:
        closed = _close_excess(broker, mine, (have_steps - want_steps) * cfg.lot_step)
    elif have_steps < want_steps:
        volume = round((want_steps - have_steps) * cfg.lot_step, 8)
        order = broker.buy if side == BUY else broker.sell
        if order(volume, tp=tp, sl=sl) is not None:
            opened = volume
    return SideExecution(side, lot, tp, sl, closed, opened, modified,
                         broker.rejected_orders - rejected0)


def _trail(broker: ForexBroker, pos: Position, tp, sl) -> int:
    """Seed TrailPosition: SL only in the favourable direction by >= 1 point, TP on any change.

    No SL counts as infinitely far, so adding one is favourable and removing one never is.
    """
    p = broker.config.point
    new_sl = pos.sl
    if sl is not None:
        if pos.sl is None:
            new_sl = sl
        else:
            moved = (sl - pos.sl) if pos.side == BUY else (pos.sl - sl)
            if round(moved / p) >= 1:
                new_sl = sl
    new_tp = pos.tp
    if (tp is None) != (pos.tp is None) or (tp is not None and round(abs(tp - pos.tp) / p) >= 1):
        new_tp = tp
    if new_sl == pos.sl and new_tp == pos.tp:
        return 0
    return int(broker.modify(pos, new_tp, new_sl))


def _close_excess(broker: ForexBroker, mine: list[Position], volume: float) -> float:
    """Seed ClosePartial: close whole positions that fit (oldest first), then one partial."""
    step = broker.config.lot_step
    left = round(volume / step)
    for pos in mine:
        n = round(pos.lots / step)
        if 0 < n <= left:
            broker.close(pos)
            left -= n
    for pos in mine:
        if left <= 0:
            break
        if any(q is pos for q in broker.positions) and round(pos.lots / step) > left:
            broker.close(pos, round(left * step, 8))
            left = 0
    return round(volume - left * step, 8)
