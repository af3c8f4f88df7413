"""The agent's shapes: what one decision sees, forecasts, holds, does and earns (spec 2, 10).

Every size of the trading agent is defined here once and read by the data, the strategies, the
collectors, the study and the agent models; the engine (``neurofx.nn``) knows none of them.

==============================  =====  ==================================================
name                            value  what it counts
==============================  =====  ==================================================
:data:`HISTORY_BARS`            120    closed bars in one state window (HistoryBars)
:data:`BAR_FEATURES`            9      features per bar (BarDescr, ``FEATURE_NAMES``)
:data:`STATE_SIZE`              1080   values of a state window (bars x features)
:data:`FORECAST_BARS`           24     bars the encoder forecasts (NForecast)
:data:`FORECAST_SIZE`           216    values of a forecast (bars x features)
:data:`ACCOUNT_RECORD_SIZE`     8      the stored account record of a step (spec 2.2)
:data:`ACTOR_ACCOUNT_SIZE`      12     the actor's account input (spec 2.3)
:data:`N_ACTIONS`               6      action values (buy lots, TP, SL, sell lots, TP, SL)
:data:`N_REWARDS`               3      reward components (spec 3.3)
==============================  =====  ==================================================

:func:`actor_vector` turns a stored account record (and the previous step's) into the actor's
account input; research and study both read it from here, so training sees what trading sees.
"""

from __future__ import annotations

import math

import numpy as np

FEATURE_NAMES = (
    "close_open", "high_open", "low_open", "tick_volume",
    "rsi14", "cci14", "atr14", "macd_main", "macd_signal",
)
ACCOUNT_RECORD_FIELDS = (
    "balance_usd", "equity_usd", "buy_lots", "sell_lots", "buy_profit_usd", "sell_profit_usd",
    "position_discount_usd", "time_s",
)
ACTOR_ACCOUNT_FIELDS = (
    "balance_change", "equity_to_prev_balance", "equity_change", "buy_lots", "sell_lots",
    "buy_profit_to_prev_balance", "sell_profit_to_prev_balance", "discount_to_prev_balance",
    "sin_year", "cos_month", "sin_week", "sin_day",
)
ACTION_FIELDS = ("buy_lots", "buy_tp", "buy_sl", "sell_lots", "sell_tp", "sell_sl")
REWARD_FIELDS = ("balance_change", "equity_vs_prev_balance", "flat_atr_penalty")

HISTORY_BARS = 120
BAR_FEATURES = len(FEATURE_NAMES)
STATE_SIZE = HISTORY_BARS * BAR_FEATURES
FORECAST_BARS = 24
FORECAST_SIZE = FORECAST_BARS * BAR_FEATURES
ACCOUNT_RECORD_SIZE = len(ACCOUNT_RECORD_FIELDS)
ACTOR_ACCOUNT_SIZE = len(ACTOR_ACCOUNT_FIELDS)
N_ACTIONS = len(ACTION_FIELDS)
N_REWARDS = len(REWARD_FIELDS)

# periods of the time harmonics, seconds (spec 2.3): 365 days (2024.01.01 - 2023.01.01),
# MT5's PeriodSeconds(PERIOD_MN1) = 30 days, one week, one day
YEAR_S = 31_536_000
MONTH_S = 2_592_000
WEEK_S = 604_800
DAY_S = 86_400


def ratio(num: float, den: float) -> float:
    """``num / den``, or 0 when ``den <= 0``: a balance at or below zero only happens on a blown
    account, and 0 keeps the agent's inputs and rewards finite."""
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
        ratio(bal - pbal, pbal), ratio(eq, pbal), ratio(eq - peq, peq),
        buy_lots, sell_lots,
        ratio(buy_pr, pbal), ratio(sell_pr, pbal), ratio(disc, pbal),
        *time_harmonics(time_s),
    )
    return np.array(out, dtype=np.float32)
