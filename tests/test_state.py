"""The stored account record, the actor's 12-vector and the rewards, against hand computation."""

import math

import numpy as np
import pytest

from neurofx.schema import actor_vector, time_harmonics
from neurofx.strategies.broker import BrokerConfig, ForexBroker
from neurofx.strategies.state import account_record, step_rewards

T0 = 1_678_075_200  # 2023-03-06 04:00 (Unix s)


def test_account_record_from_broker_at_open_quote():
    fx = ForexBroker(BrokerConfig(commission_usd_per_lot_side=3.5, min_spread_points=5))
    fx.open_bar(T0, 1.06000, 0)
    fx.buy(0.10)  # at ask 1.06005, commission 0.35
    fx.close_bar(1.06100, 1.05900, 1.06050)
    fx.open_bar(T0 + 3600, 1.06200, 0)
    fx.sell(0.20)  # at bid 1.06200, commission 0.70 (a hedged account may hold both)
    fx.close_bar(1.06300, 1.06000, 1.06100)
    fx.open_bar(T0 + 7200, 1.06150, 0)  # bid 1.06150, ask 1.06155
    buy_pr = (1.06150 - 1.06005) * 0.10 * 100_000  # 14.5
    sell_pr = (1.06200 - 1.06155) * 0.20 * 100_000  # 9.0
    balance = 10_000 - 0.35 - 0.70
    disc = (buy_pr - 7200 / 36000 * abs(buy_pr)) + (sell_pr - 3600 / 36000 * abs(sell_pr))
    rec = account_record(fx)
    assert rec.dtype == np.float64 and rec.shape == (8,)
    np.testing.assert_allclose(
        rec, [balance, balance + buy_pr + sell_pr, 0.10, 0.20, buy_pr, sell_pr, disc, T0 + 7200],
        rtol=0, atol=1e-9)


def test_account_record_flat():
    fx = ForexBroker()
    fx.open_bar(T0, 1.1, 0)
    np.testing.assert_array_equal(account_record(fx), [10_000, 10_000, 0, 0, 0, 0, 0, T0])


def test_actor_vector_hand_values():
    prev = np.array([10_000.0, 10_020.0, 0.1, 0, 25.0, 0, 20.0, T0 - 3600])
    rec = np.array([10_100.0, 10_050.0, 0.2, 0.0, -30.0, 0.0, -33.0, T0])
    v = actor_vector(rec, prev)
    assert v.dtype == np.float32 and v.shape == (12,)
    two_pi = 2 * math.pi
    expected = [
        100 / 10_000, 10_050 / 10_000, 30 / 10_020, 0.2, 0.0, -30 / 10_000, 0.0, -33 / 10_000,
        math.sin(two_pi * T0 / 31_536_000), math.cos(two_pi * T0 / 2_592_000),
        math.sin(two_pi * T0 / 604_800), math.sin(two_pi * T0 / 86_400),
    ]
    np.testing.assert_allclose(v, np.float32(expected), rtol=1e-6, atol=1e-7)
    # 04:00 UTC: day phase 4/24 of a turn
    assert v[11] == pytest.approx(math.sin(two_pi * 4 / 24), abs=1e-5)


def test_actor_vector_first_step_uses_itself():
    rec = np.array([9_990.0, 9_950.0, 0, 0.3, 0, -40.0, -44.0, T0])
    v = actor_vector(rec)
    np.testing.assert_allclose(v[:8], np.float32([0, 9_950 / 9_990, 0, 0, 0.3, 0, -40 / 9_990,
                                                  -44 / 9_990]), rtol=1e-6)


def test_time_harmonics_zero_time_gives_zero_like_the_seed():
    assert time_harmonics(0) == (0.0, 0.0, 0.0, 0.0)  # cos(0) would be 1: the seed writes 0
    s, c, w, d = time_harmonics(86_400 / 4)
    assert d == pytest.approx(1.0) and c == pytest.approx(math.cos(2 * math.pi / 120))


def test_rewards_sign_and_flat_penalty():
    # equity below the previous balance is a negative r1 (the seed's 1 - eq/bal was positive)
    r0, r1, r2 = step_rewards(10_000.0, 9_999.65, 9_980.0, 0.0012, flat=False)
    assert (r0, r1, r2) == pytest.approx((-0.35 / 10_000, -20 / 10_000, 0.0))
    assert r1 < 0
    r = step_rewards(10_000.0, 10_050.0, 10_050.0, 0.0012, flat=True)
    assert r == pytest.approx((0.005, 0.005, -0.0012 / 10_050))
    # no accumulation: the same flat bar gives the same penalty whatever came before
    assert step_rewards(10_050.0, 10_050.0, 10_050.0, 0.0012, True) == \
        step_rewards(10_050.0, 10_050.0, 10_050.0, 0.0012, True)


def test_rewards_blown_account_stay_finite():
    assert step_rewards(0.0, -5.0, -5.0, 0.001, True) == (0.0, 0.0, -0.0)
