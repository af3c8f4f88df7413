"""A forex account in the style of an MT5 hedging account, one symbol, bid bars.

Pure Python; backtrader only drives it (``strategies/replay.py``). The per-bar lifecycle is the
only way prices reach the account (``docs/broker.md``):

1. :meth:`ForexBroker.open_bar` sets the quote (bid = open, ask = open + spread), fills every
   TP/SL already crossed by that first tick at the open quote (a gap), then checks stop-out.
2. The strategy places market orders / modifications / closes at that quote.
3. :meth:`ForexBroker.close_bar` checks TP/SL of every position (also those opened in step 2)
   against the bar range, SL first when both are touched, then intrabar stop-out at the adverse
   extreme, then marks the account to the close quote and checks stop-out again.

Swap (MT5's rollover): every rollover instant (``rollover_hour`` o'clock on the bars' clock)
that passes between two bars charges each open position ``lots * swap_<side>_points * point *
contract_size`` USD for the trading day it ends (nothing for Saturday and Sunday, three times
on ``triple_swap_weekday``). It accrues on the position (in equity) and is booked to the
balance by the deal that closes it (pro rata for a partial close), as MT5 shows it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from neurofx.deals import Deal
from neurofx.errors import NeurofxError

BUY, SELL = "buy", "sell"
_EPS = 1e-9
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DAY_S = 86_400


@dataclass(frozen=True)
class BrokerConfig:
    """Account and symbol parameters; amounts in USD, distances in points (1 point = ``point``)."""

    symbol: str = "EURUSD"
    initial_deposit_usd: float = 10_000.0
    leverage: float = 100.0
    contract_size_units: float = 100_000.0
    min_lot: float = 0.01
    lot_step: float = 0.01
    max_lot: float = 100.0
    point: float = 0.00001
    digits: int = 5
    min_spread_points: float = 5.0
    commission_usd_per_lot_side: float = 3.5
    stop_out_level_pct: float = 50.0
    stops_level_points: int = 0
    # swap per lot and night in points (1 point on 1 lot = 1 USD for EURUSD); defaults: a
    # typical retail EURUSD quote of 2023-2024, when USD rates were above EUR rates
    swap_long_points: float = -7.0
    swap_short_points: float = 2.0
    triple_swap_weekday: str = "wednesday"  # the day whose rollover charges three nights
    rollover_hour: int = 0      # hour of the rollover on the bars' clock (MT5: 00:00 server)

    def __post_init__(self):
        positive = ("initial_deposit_usd", "leverage", "contract_size_units", "min_lot",
                    "lot_step", "max_lot", "point")
        for name in positive:
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise NeurofxError(
                    f"broker config: {name} must be a positive number, got {value!r}")
        for name in ("min_spread_points", "commission_usd_per_lot_side", "stop_out_level_pct",
                     "stops_level_points"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise NeurofxError(f"broker config: {name} must be >= 0, got {value!r}")
        if self.max_lot < self.min_lot:
            raise NeurofxError("broker config: max_lot must be >= min_lot")
        for name in ("swap_long_points", "swap_short_points"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value)):
                raise NeurofxError(f"broker config: {name} must be a number, got {value!r}")
        if self.triple_swap_weekday not in WEEKDAYS:
            raise NeurofxError(f"broker config: triple_swap_weekday must be one of "
                               f"{', '.join(WEEKDAYS)}, got {self.triple_swap_weekday!r}")
        if not (isinstance(self.rollover_hour, int) and 0 <= self.rollover_hour <= 23):
            raise NeurofxError(f"broker config: rollover_hour must be an hour 0..23, got "
                               f"{self.rollover_hour!r}")


def swap_nights(rollover_s: int, config: BrokerConfig) -> int:
    """Nights one rollover at ``rollover_s`` (Unix seconds, bars' clock) charges: 0 when it
    ends a Saturday or Sunday, 3 when it ends ``triple_swap_weekday``, else 1."""
    day = (int(rollover_s) - 1) // DAY_S  # the trading day that ends at the rollover
    weekday = (day + 3) % 7  # 1970-01-01 was a Thursday (Monday = 0)
    if weekday >= 5:
        return 0
    return 3 if WEEKDAYS[weekday] == config.triple_swap_weekday else 1


def rollovers(after_s: int, until_s: int, config: BrokerConfig) -> list[int]:
    """The rollover instants ``t`` with ``after_s < t <= until_s``."""
    hour = config.rollover_hour * 3600
    first = ((int(after_s) - hour) // DAY_S + 1) * DAY_S + hour
    return list(range(first, int(until_s) + 1, DAY_S))


def swap_usd(side: str, lots: float, nights: int, config: BrokerConfig) -> float:
    """The swap of ``lots`` of a ``side`` position over ``nights``, in USD, rounded to cents."""
    points = config.swap_long_points if side == BUY else config.swap_short_points
    return round(lots * points * config.point * config.contract_size_units * nights, 2)


def spread_price(spread_points: float, config: BrokerConfig) -> float:
    """A bar's spread in price units: its own spread, at least ``min_spread_points``."""
    return round(max(float(spread_points), config.min_spread_points) * config.point,
                 config.digits)


def quote(bid: float, spread: float, config: BrokerConfig) -> tuple[float, float]:
    """(bid, ask) of a bid price and a spread in price units (:func:`spread_price`): the one
    quote rule of the broker, ask = bid + spread, both on the symbol's digits."""
    bid = round(float(bid), config.digits)
    return bid, round(bid + spread, config.digits)


def discounted_profit(profit_usd: float, held_s: float) -> float:
    """Seed spec 2.2's discount of one position: profit - held seconds / 36000 * |profit|."""
    return profit_usd - held_s / 36000.0 * abs(profit_usd)


@dataclass
class Position:
    """An open position (MT5 hedging style). ``tp``/``sl`` are prices or ``None``."""

    id: int
    side: str
    lots: float
    entry_price: float
    entry_time: int
    tp: float | None = None
    sl: float | None = None
    swap_usd: float = 0.0  # accrued at the rollovers, booked when the position closes


ACCOUNT_FIELDS = ("balance_usd", "equity_usd", "margin_usd", "free_margin_usd",
                  "margin_level_pct", "buy_lots", "sell_lots", "buy_profit_usd",
                  "sell_profit_usd", "position_discount_usd")


@dataclass(frozen=True)
class AccountState:
    """The account at the current quote. ``margin_level_pct`` is NaN when no margin is used."""

    time_s: int
    balance_usd: float
    equity_usd: float
    margin_usd: float
    free_margin_usd: float
    margin_level_pct: float
    buy_lots: float
    sell_lots: float
    buy_profit_usd: float
    sell_profit_usd: float
    position_discount_usd: float


class ForexBroker:
    """Account state, fills and P/L for one symbol. See the module docstring for the bar cycle."""

    def __init__(self, config: BrokerConfig | None = None):
        self.config = config or BrokerConfig()
        self.balance = float(self.config.initial_deposit_usd)
        self.positions: list[Position] = []
        self.deals: list[Deal] = []
        self.rejected_orders = 0
        self.last_reject_reason = ""
        self.time_s: int | None = None
        self.bid = math.nan
        self.ask = math.nan
        self.spread = math.nan  # price units, this bar
        self._in_bar = False
        self._next_deal = 1
        self._next_position = 1

    # ----------------------------------------------------------------- bar lifecycle
    def open_bar(self, time_s: int, open_bid: float, spread_points: float) -> None:
        """Start bar ``time_s``: quote at the open, gap fills of crossed TP/SL, stop-out."""
        if self._in_bar:
            raise RuntimeError("open_bar called twice without close_bar")
        if self.time_s is not None and time_s <= self.time_s:
            raise RuntimeError(f"bar time {time_s} does not increase (last {self.time_s})")
        cfg = self.config
        if self.time_s is not None and self.positions:
            self._charge_swap(self.time_s, int(time_s))
        self.time_s = int(time_s)
        self.spread = spread_price(spread_points, cfg)
        self._set_quote(open_bid)
        self._in_bar = True
        for pos in list(self.positions):
            crossed = self._crossed_at_quote(pos)
            if crossed:
                self._close(pos, pos.lots, self._exit_quote(pos.side), crossed)
        self._stop_out_at_quote()

    def close_bar(self, high_bid: float, low_bid: float, close_bid: float) -> None:
        """Finish the bar: intrabar TP/SL (SL wins ties), intrabar stop-out, mark to close."""
        if not self._in_bar:
            raise RuntimeError("close_bar called without open_bar")
        for pos in list(self.positions):
            off = 0.0 if pos.side == BUY else self.spread  # sells trigger on ask = bid + spread
            hi, lo = high_bid + off, low_bid + off
            if pos.side == BUY:
                sl_hit = pos.sl is not None and lo <= pos.sl
                tp_hit = pos.tp is not None and hi >= pos.tp
            else:
                sl_hit = pos.sl is not None and hi >= pos.sl
                tp_hit = pos.tp is not None and lo <= pos.tp
            if sl_hit:
                self._close(pos, pos.lots, pos.sl, "sl")
            elif tp_hit:
                self._close(pos, pos.lots, pos.tp, "tp")
        self._stop_out_intrabar(high_bid, low_bid)
        self._set_quote(close_bid)
        self._stop_out_at_quote()
        self._in_bar = False

    # ----------------------------------------------------------------- orders
    def buy(self, lots: float, tp: float | None = None, sl: float | None = None,
            reason: str = "agent") -> Position | None:
        """Market buy at ask. Returns the position, or ``None`` when rejected."""
        return self._open(BUY, lots, tp, sl, reason)

    def sell(self, lots: float, tp: float | None = None, sl: float | None = None,
             reason: str = "agent") -> Position | None:
        """Market sell at bid. Returns the position, or ``None`` when rejected."""
        return self._open(SELL, lots, tp, sl, reason)

    def close(self, pos: Position, lots: float | None = None, reason: str = "agent") -> Deal:
        """Close all of ``pos`` or ``lots`` of it (partial) at the current quote."""
        self._need_quote()
        lots = pos.lots if lots is None else self._check_lots(lots)
        if lots > pos.lots + _EPS:
            raise NeurofxError(f"cannot close {lots} lots of position {pos.id} ({pos.lots} lots)")
        return self._close(pos, lots, self._exit_quote(pos.side), reason)

    def close_all(self, side: str | None = None, reason: str = "agent") -> list[Deal]:
        """Close every position (of ``side`` if given) at the current quote, oldest first."""
        return [self.close(p, reason=reason) for p in list(self.positions)
                if side is None or p.side == side]

    def modify(self, pos: Position, tp: float | None, sl: float | None) -> bool:
        """Set new TP/SL prices (``None`` = none). Rejected (False) if invalid at the quote."""
        self._need_quote()
        tp, sl = self._norm(tp), self._norm(sl)
        why = self._invalid_stops(pos.side, tp, sl)
        if why:
            self._reject(why)
            return False
        pos.tp, pos.sl = tp, sl
        return True

    # ----------------------------------------------------------------- account
    def position_profit(self, pos: Position) -> float:
        """Floating P/L in USD: buys valued at bid, sells at ask."""
        c = self.config.contract_size_units
        if pos.side == BUY:
            return (self.bid - pos.entry_price) * pos.lots * c
        return (pos.entry_price - self.ask) * pos.lots * c

    def position_margin(self, pos: Position) -> float:
        """Margin in USD at the position's entry price: lots * contract * price / leverage."""
        c = self.config
        return pos.lots * c.contract_size_units * pos.entry_price / c.leverage

    @property
    def equity(self) -> float:
        """Balance plus every open position's floating P/L and accrued swap."""
        return self.balance + sum(self.position_profit(p) + p.swap_usd for p in self.positions)

    @property
    def margin(self) -> float:
        return sum(self.position_margin(p) for p in self.positions)

    @property
    def margin_level(self) -> float:
        """equity / margin * 100 (percent); NaN with no open positions."""
        m = self.margin
        return self.equity / m * 100.0 if m > 0 else math.nan

    def lots(self, side: str) -> float:
        return round(sum(p.lots for p in self.positions if p.side == side), 8)

    def profit(self, side: str) -> float:
        return sum(self.position_profit(p) for p in self.positions if p.side == side)

    def position_discount(self, now_s: int | None = None) -> float:
        """Seed spec 2.2: sum over positions of profit - hold_seconds/36000 * |profit|."""
        now = self.time_s if now_s is None else now_s
        return sum(discounted_profit(self.position_profit(p), now - p.entry_time)
                   for p in self.positions)

    def account_values(self) -> tuple[float, ...]:
        """The figures of :data:`ACCOUNT_FIELDS`, in that order, at the current quote."""
        bal = self.balance
        if not self.positions:
            return (bal, bal, 0.0, 0.0, math.nan, 0.0, 0.0, 0.0, 0.0, 0.0)
        buy_lots = sell_lots = buy_pr = sell_pr = margin = disc = swap = 0.0
        for p in self.positions:
            swap += p.swap_usd
            pr = self.position_profit(p)
            margin += self.position_margin(p)
            disc += discounted_profit(pr, self.time_s - p.entry_time)
            if p.side == BUY:
                buy_lots += p.lots
                buy_pr += pr
            else:
                sell_lots += p.lots
                sell_pr += pr
        eq = bal + buy_pr + sell_pr + swap
        return (bal, eq, margin, eq - margin, eq / margin * 100.0, round(buy_lots, 8),
                round(sell_lots, 8), buy_pr, sell_pr, disc)

    def snapshot(self) -> AccountState:
        """Every account figure at the current quote."""
        return AccountState(int(self.time_s or 0), *self.account_values())

    # ----------------------------------------------------------------- internals
    def _charge_swap(self, after_s: int, until_s: int) -> None:
        """Accrue the swap of every rollover between the last bar and this one."""
        nights = sum(swap_nights(t, self.config) for t in rollovers(after_s, until_s,
                                                                    self.config))
        if nights:
            for pos in self.positions:
                pos.swap_usd = round(pos.swap_usd + swap_usd(pos.side, pos.lots, nights,
                                                             self.config), 2)

    def _set_quote(self, bid: float) -> None:
        self.bid, self.ask = quote(bid, self.spread, self.config)

    def _need_quote(self) -> None:
        if self.time_s is None:
            raise RuntimeError("no quote yet: call open_bar first")

    def _norm(self, price: float | None) -> float | None:
        return None if price is None else round(float(price), self.config.digits)

    def _exit_quote(self, side: str) -> float:
        return self.bid if side == BUY else self.ask

    def _check_lots(self, lots: float) -> float:
        cfg = self.config
        steps = round(lots / cfg.lot_step)
        if not math.isfinite(lots) or abs(steps * cfg.lot_step - lots) > 1e-7 \
                or lots < cfg.min_lot - _EPS or lots > cfg.max_lot + _EPS:
            raise NeurofxError(
                f"order volume {lots!r} lots is invalid: use a multiple of {cfg.lot_step} "
                f"between {cfg.min_lot} and {cfg.max_lot}")
        return round(steps * cfg.lot_step, 8)

    def _invalid_stops(self, side: str, tp: float | None, sl: float | None) -> str:
        """MT5's check: a buy's SL/TP must lie beyond bid (a sell's beyond ask) by at least the
        stops level, and never at or across the quote."""
        lvl = self.config.stops_level_points * self.config.point
        ref = self._exit_quote(side)
        sign = 1.0 if side == BUY else -1.0
        for name, dist in (("SL", None if sl is None else sign * (ref - sl)),
                           ("TP", None if tp is None else sign * (tp - ref))):
            if dist is not None and (dist <= _EPS or dist < lvl - _EPS):
                value = sl if name == "SL" else tp
                quote = "bid" if side == BUY else "ask"
                return f"invalid stops: {side} {name} {value} vs {quote} {ref}"
        return ""

    def _reject(self, why: str) -> None:
        self.rejected_orders += 1
        self.last_reject_reason = why
        return None

    def _open(self, side, lots, tp, sl, reason) -> Position | None:
        self._need_quote()
        cfg = self.config
        lots = self._check_lots(lots)
        tp, sl = self._norm(tp), self._norm(sl)
        why = self._invalid_stops(side, tp, sl)
        if why:
            return self._reject(why)
        price = self.ask if side == BUY else self.bid
        pos = Position(self._next_position, side, lots, price, self.time_s, tp, sl)
        commission = -round(cfg.commission_usd_per_lot_side * lots, 2)
        # MT5 "not enough money": free margin after the order must stay >= 0
        if self.equity + commission - self.margin - self.position_margin(pos) < 0:
            return self._reject(f"not enough money for {lots} lots {side}")
        self._next_position += 1
        self.positions.append(pos)
        self.balance = round(self.balance + commission, 2)
        self._deal(side, "in", lots, price, commission, 0.0, pos, reason)
        return pos

    def _close(self, pos: Position, lots: float, price: float, reason: str) -> Deal:
        cfg = self.config
        diff = price - pos.entry_price if pos.side == BUY else pos.entry_price - price
        profit = round(diff * lots * cfg.contract_size_units, 2)
        commission = -round(cfg.commission_usd_per_lot_side * lots, 2)
        left = round(pos.lots - lots, 8)
        swap = pos.swap_usd if left < _EPS else round(pos.swap_usd * lots / pos.lots, 2)
        pos.swap_usd = round(pos.swap_usd - swap, 2)
        self.balance = round(self.balance + profit + commission + swap, 2)
        pos.lots = left
        if pos.lots < _EPS:
            self.positions.remove(pos)
        out_side = SELL if pos.side == BUY else BUY
        return self._deal(out_side, "out", lots, price, commission, profit, pos, reason, swap)

    def _deal(self, side, entry, lots, price, commission, profit, pos, reason,
              swap: float = 0.0) -> Deal:
        deal = Deal(
            ticket=self._next_deal, time=int(self.time_s), symbol=self.config.symbol,
            side=side, entry=entry, volume=lots, price=price, commission=commission, swap=swap,
            profit=profit, position_id=pos.id, reason=reason,
            entry_time=pos.entry_time if entry == "out" else int(self.time_s),
            entry_price=pos.entry_price,
        )
        self._next_deal += 1
        self.deals.append(deal)
        return deal

    def _crossed_at_quote(self, pos: Position) -> str:
        ref = self._exit_quote(pos.side)
        if pos.side == BUY:
            if pos.sl is not None and ref <= pos.sl:
                return "sl"
            if pos.tp is not None and ref >= pos.tp:
                return "tp"
        else:
            if pos.sl is not None and ref >= pos.sl:
                return "sl"
            if pos.tp is not None and ref <= pos.tp:
                return "tp"
        return ""

    def _below_stop_out(self) -> bool:
        m = self.margin
        return m > 0 and self.equity / m * 100.0 < self.config.stop_out_level_pct

    def _stop_out_at_quote(self) -> None:
        while self.positions and self._below_stop_out():
            worst = min(self.positions, key=self.position_profit)
            self._close(worst, worst.lots, self._exit_quote(worst.side), "stop_out")

    def _stop_out_intrabar(self, high_bid: float, low_bid: float) -> None:
        """Stop-out at the bid where the margin level first falls to the stop-out level.

        Equity is linear in bid, ``A + B*bid`` with ``B = contract*(buy lots - sell lots)``, and
        margin is fixed (entry prices), so the crossing price is solved exactly; positions are
        closed worst first at that price (sells at bid + spread) while the level stays below.
        """
        c = self.config.contract_size_units
        saved = self.bid
        while self.positions:
            b = c * (self.lots(BUY) - self.lots(SELL))
            if abs(b) < _EPS:
                break
            self._set_quote(low_bid if b > 0 else high_bid)  # the adverse extreme
            if not self._below_stop_out():
                break
            a = self.equity - b * self.bid
            target = self.config.stop_out_level_pct / 100.0 * self.margin
            cross = (target - a) / b
            cross = min(max(cross, low_bid), high_bid)
            # round towards the adverse side so the level is really at or below the limit
            p = self.config.point
            cross = math.floor(cross / p + 1e-6) * p if b > 0 else math.ceil(cross / p - 1e-6) * p
            self._set_quote(cross)
            worst = min(self.positions, key=self.position_profit)
            self._close(worst, worst.lots, self._exit_quote(worst.side), "stop_out")
        self._set_quote(saved)
