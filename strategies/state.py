"""What a research step stores and what the actor sees: pure functions (spec 2.2, 2.3, 3.3).

* :func:`account_record` - the stored 8-value account record of spec 2.2, read from the broker
  at a bar's open quote;
* :func:`actor_vector` - the actor's 12-value input of spec 2.3, from a record and the record of
  the previous step (the first step uses itself);
* :func:`step_rewards` - the 3 rewards of spec 3.3 for one action, with two fixes of the seed:
  r1 has the sign "drawdown is negative" and the flat-position penalty r2 does not accumulate.

See docs/research.md for the timing of each value.
"""

from __future__ import annotations

import math

import numpy as np

from .broker import ForexBroker

ACCOUNT_RECORD_FIELDS = (
    "balance_usd", "equity_usd", "buy_lots", "sell_lots", "buy_profit_usd", "sell_profit_usd",
    "position_discount_usd", "time_s",
)
ACTOR_VECTOR_FIELDS = (
    "balance_change", "equity_to_prev_balance", "equity_change", "buy_lots", "sell_lots",
    "buy_profit_to_prev_balance", "sell_profit_to_prev_balance", "discount_to_prev_balance",
    "sin_year", "cos_month", "sin_week", "sin_day",
)
REWARD_FIELDS = ("balance_change", "equity_vs_prev_balance", "flat_atr_penalty")

# periods of the time harmonics, seconds (spec 2.3): 365 days (2024.01.01 - 2023.01.01),
# MT5's PeriodSeconds(PERIOD_MN1) = 30 days, one week, one day
YEAR_S = 31_536_000
MONTH_S = 2_592_000
WEEK_S = 604_800
DAY_S = 86_400

# indices into ForexBroker.account_values() (broker.ACCOUNT_FIELDS)
_BALANCE, _EQUITY, _BUY_LOTS, _SELL_LOTS, _BUY_PR, _SELL_PR, _DISC = 0, 1, 5, 6, 7, 8, 9


def account_record(broker: ForexBroker) -> np.ndarray:
    """The stored account record (8 float64) at the broker's current quote (spec 2.2).

    ``[balance, equity, buy lots, sell lots, buy profit, sell profit, position discount,
    bar open time (Unix s)]``; money in USD. The time harmonics are not stored.
    """
    v = broker.account_values()
    return np.array([v[_BALANCE], v[_EQUITY], v[_BUY_LOTS], v[_SELL_LOTS], v[_BUY_PR],
                     v[_SELL_PR], v[_DISC], float(broker.time_s)], dtype=np.float64)


def _ratio(num: float, den: float) -> float:
    # a balance at or below zero only happens on a blown account; 0 keeps the vector finite
    return num / den if den > 0 else 0.0


def _harmonic(fn, t: float, period: float) -> float:
    # the seed writes 0 when its argument x = t / period is 0 (so also cos gives 0 there)
    x = t / period
    return fn(2.0 * math.pi * x) if x != 0 else 0.0


def time_harmonics(time_s: float) -> tuple[float, float, float, float]:
    """``sin(2 pi t/year), cos(2 pi t/month), sin(2 pi t/week), sin(2 pi t/day)`` (spec 2.3)."""
    t = float(time_s)
    return (_harmonic(math.sin, t, YEAR_S), _harmonic(math.cos, t, MONTH_S),
            _harmonic(math.sin, t, WEEK_S), _harmonic(math.sin, t, DAY_S))


def actor_vector(record: np.ndarray, prev_record: np.ndarray | None = None) -> np.ndarray:
    """The actor's 12-value account input (float32) of spec 2.3.

    ``prev_record`` is the record of the previous step (None: the first step, which uses
    ``record`` itself, as the seed's Study does for i = 0). Ratios whose denominator (previous
    balance or equity) is <= 0 are 0.
    """
    rec = np.asarray(record, dtype=np.float64)
    prev = rec if prev_record is None else np.asarray(prev_record, dtype=np.float64)
    bal, eq, buy_lots, sell_lots, buy_pr, sell_pr, disc, time_s = rec
    pbal, peq = prev[0], prev[1]
    out = (
        _ratio(bal - pbal, pbal), _ratio(eq, pbal), _ratio(eq - peq, peq),
        buy_lots, sell_lots,
        _ratio(buy_pr, pbal), _ratio(sell_pr, pbal), _ratio(disc, pbal),
        *time_harmonics(time_s),
    )
    return np.array(out, dtype=np.float32)


def step_rewards(prev_balance: float, balance: float, equity: float, atr: float,
                 flat: bool) -> tuple[float, float, float]:
    """The rewards of one action (spec 3.3 with our fixes), float64.

    ``prev_balance``: balance in the record of the step that took the action (before it);
    ``balance``/``equity``: the account where the action's consequence is measured (the next
    bar's open, or the final close); ``atr``: ATR(14) of the bar the action was held through;
    ``flat``: no position was open during that bar.

    r0 = (balance - prev_balance) / prev_balance; r1 = (equity - prev_balance) / prev_balance
    (the seed's ``1 - equity/prev_balance`` had the opposite sign); r2 = -atr / balance when
    flat, else 0 (the seed's accumulated over consecutive flat bars).
    """
    r0 = _ratio(balance - prev_balance, prev_balance)
    r1 = _ratio(equity - prev_balance, prev_balance)
    r2 = -_ratio(atr, balance) if flat else 0.0
    return r0, r1, r2
