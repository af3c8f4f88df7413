"""What a research step stores and what the actor sees: pure functions (spec 2.2, 2.3, 3.3).

* :func:`account_record` - the stored 8-value account record of spec 2.2, read from the broker
  at a bar's open quote;
* the actor's 12-value input of spec 2.3 is :func:`neurofx.schema.actor_vector` of a record;
* :func:`step_rewards` - the 3 rewards of spec 3.3 for one action, with two fixes of the seed:
  r1 has the sign "drawdown is negative" and the flat-position penalty r2 does not accumulate.

See docs/research.md for the timing of each value.
"""

from __future__ import annotations

import numpy as np

from neurofx.schema import ratio

from .broker import ForexBroker

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
    r0 = ratio(balance - prev_balance, prev_balance)
    r1 = ratio(equity - prev_balance, prev_balance)
    r2 = -ratio(atr, balance) if flat else 0.0
    return r0, r1, r2
