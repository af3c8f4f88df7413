"""Hand-made ledger: every fill price, profit, commission and balance below is computed by hand.

Units: 1 lot = 100,000 EUR, so 1 point (0.00001) on 0.1 lot = 0.10 USD.
"""

import math

import numpy as np
import pandas as pd
import pytest

from neurofx.errors import NeurofxError
from neurofx.strategies.broker import BrokerConfig, ForexBroker
from neurofx.strategies.replay import ReplayStrategy, run_replay

T0 = 1_700_000_000
H = 3600
CFG = BrokerConfig(min_spread_points=0.0)  # bars carry their own spread in these tests


def fx_(**kw) -> ForexBroker:
    return ForexBroker(BrokerConfig(**{"min_spread_points": 0.0, **kw}))


def test_buy_with_tp_hit_on_a_later_bar():
    fx = fx_()
    fx.open_bar(T0, 1.10000, 10)  # ask = 1.10010
    assert (fx.bid, fx.ask) == (1.10000, 1.10010)
    pos = fx.buy(0.1, tp=1.10110, sl=1.09910)
    assert pos.entry_price == 1.10010
    assert fx.balance == 10000 - 0.35
    fx.close_bar(1.10050, 1.09950, 1.10020)  # neither SL (low 1.09950) nor TP (high 1.10050)
    s = fx.snapshot()
    assert s.equity_usd == pytest.approx(9999.65 + 10 * 0.10)  # bid close 1.10020: +10 points
    assert s.margin_usd == pytest.approx(0.1 * 100_000 * 1.10010 / 100)  # 110.01
    assert s.margin_level_pct == pytest.approx(10000.65 / 110.01 * 100)
    assert (s.buy_lots, s.sell_lots) == (0.1, 0.0)
    assert s.buy_profit_usd == pytest.approx(1.0)
    fx.open_bar(T0 + H, 1.10030, 10)
    fx.close_bar(1.10120, 1.10000, 1.10100)  # high reaches TP 1.10110
    assert fx.positions == []
    d_in, d_out = fx.deals
    assert (d_in.side, d_in.entry, d_in.price, d_in.commission) == ("buy", "in", 1.10010, -0.35)
    assert (d_out.side, d_out.entry, d_out.price, d_out.reason) == ("sell", "out", 1.10110, "tp")
    assert d_out.profit == 10.00  # 100 points * 0.10
    assert (d_out.time, d_out.entry_time, d_out.position_id) == (T0 + H, T0, pos.id)
    assert fx.balance == pytest.approx(10000 - 0.35 + 10.00 - 0.35)
    assert math.isnan(fx.snapshot().margin_level_pct)


def test_sell_sl_triggers_on_ask_not_bid():
    fx = fx_()
    fx.open_bar(T0, 1.20000, 20)  # sells fill at bid 1.20000, ask 1.20020
    fx.sell(0.1, tp=1.19800, sl=1.20100)
    # bid high 1.20090 < SL, but ask high = 1.20110 >= SL; ask low 1.19920 > TP
    fx.close_bar(1.20090, 1.19900, 1.20000)
    out = fx.deals[-1]
    assert (out.side, out.price, out.reason, out.profit) == ("buy", 1.20100, "sl", -10.00)
    assert fx.balance == pytest.approx(10000 - 0.35 - 10.00 - 0.35)


def test_sell_floating_profit_uses_ask():
    fx = fx_()
    fx.open_bar(T0, 1.20000, 20)
    fx.sell(0.1)
    fx.close_bar(1.20000, 1.19900, 1.19950)  # ask close 1.19970: +30 points
    assert fx.profit("sell") == pytest.approx(3.0)
    assert fx.equity == pytest.approx(10000 - 0.35 + 3.0)


def test_same_bar_tp_and_sl_sl_wins_and_tp_live_on_entry_bar():
    fx = fx_()
    fx.open_bar(T0, 1.10000, 10)
    fx.buy(0.1, tp=1.10100, sl=1.09900)
    fx.close_bar(1.10200, 1.09800, 1.10000)  # touches both
    assert fx.deals[-1].reason == "sl" and fx.deals[-1].price == 1.09900
    assert fx.deals[-1].profit == -11.00  # 1.09900 - 1.10010 = -110 points
    fx.open_bar(T0 + H, 1.10000, 10)
    fx.buy(0.1, tp=1.10100, sl=1.09900)
    fx.close_bar(1.10150, 1.09950, 1.10120)  # only TP, on the entry bar itself
    out = fx.deals[-1]
    assert (out.reason, out.price, out.profit, out.time, out.entry_time) == \
        ("tp", 1.10100, 9.00, T0 + H, T0 + H)


def test_gap_through_sl_fills_at_open_before_the_strategy_acts():
    fx = fx_()
    fx.open_bar(T0, 1.10000, 10)
    fx.buy(0.1, sl=1.09910)
    fx.close_bar(1.10050, 1.09950, 1.10000)
    fx.open_bar(T0 + H, 1.09800, 10)  # weekend gap below the SL
    assert fx.positions == []
    out = fx.deals[-1]
    assert (out.reason, out.price, out.time) == ("sl", 1.09800, T0 + H)
    assert out.profit == -21.00  # 1.09800 - 1.10010 = -210 points
    fx.close_bar(1.09850, 1.09700, 1.09800)


def test_gap_through_tp_fills_at_open_price():
    fx = fx_()
    fx.open_bar(T0, 1.20000, 20)
    fx.sell(0.1, tp=1.19900)
    fx.close_bar(1.20010, 1.19950, 1.20000)
    fx.open_bar(T0 + H, 1.19800, 20)  # ask at open 1.19820 <= TP
    out = fx.deals[-1]
    assert (out.reason, out.price, out.profit) == ("tp", 1.19820, 18.00)


def test_partial_close():
    fx = fx_()
    fx.open_bar(T0, 1.10000, 10)
    pos = fx.buy(0.3)
    assert fx.deals[-1].commission == -1.05
    fx.close_bar(1.10100, 1.10000, 1.10060)
    fx.open_bar(T0 + H, 1.10060, 10)
    d = fx.close(pos, 0.1)
    assert (d.entry, d.volume, d.price, d.profit, d.commission) == \
        ("out", 0.1, 1.10060, 5.00, -0.35)
    assert pos.lots == 0.2 and fx.positions == [pos]
    assert fx.balance == pytest.approx(10000 - 1.05 + 5.00 - 0.35)
    assert fx.margin == pytest.approx(0.2 * 100_000 * 1.10010 / 100)


def test_commission_and_spread_round_trip_and_min_spread():
    fx = fx_()
    fx.open_bar(T0, 1.10000, 10)
    pos = fx.buy(1.0)
    fx.close(pos)  # same quote: lose the spread (10 points * 10 USD) and two commissions
    assert fx.deals[-1].profit == -10.00
    assert fx.balance == pytest.approx(10000 - 10.00 - 2 * 3.50)
    fx.close_bar(1.10000, 1.10000, 1.10000)
    fx2 = ForexBroker(BrokerConfig(min_spread_points=5.0))
    fx2.open_bar(T0, 1.10000, 0)  # raw spread 0 -> the 5-point minimum
    assert fx2.ask == 1.10005
    fx2.close_bar(1.1, 1.1, 1.1)
    fx2.open_bar(T0 + H, 1.10000, 12)
    assert fx2.ask == 1.10012


def test_position_discount_and_snapshot():
    fx = fx_()
    fx.open_bar(T0, 1.10000, 10)
    fx.buy(0.1)
    fx.close_bar(1.10050, 1.09990, 1.10020)
    fx.open_bar(T0 + H, 1.10030, 10)  # profit at open: +20 points = 2.00 after 3600 s
    assert fx.position_discount() == pytest.approx(2.0 - 0.1 * 2.0)
    fx.close_bar(1.10050, 1.09990, 1.09990)  # -20 points = -2.00 still 3600 s held
    assert fx.position_discount() == pytest.approx(-2.0 - 0.1 * 2.0)


def test_margin_check_rejects_orders_and_stop_out_intrabar():
    fx = fx_(initial_deposit_usd=1000.0, commission_usd_per_lot_side=0.0)
    fx.open_bar(T0, 1.00000, 0)
    assert fx.buy(1.01) is None and fx.rejected_orders == 1  # margin 1010 > free 1000
    pos = fx.buy(0.8)  # margin 800, level 125 %
    assert fx.margin_level == pytest.approx(125.0)
    # equity 1000 - 80000*(1 - bid) hits 50 % of 800 = 400 at bid 0.99250
    fx.close_bar(1.00000, 0.99000, 0.99500)
    out = fx.deals[-1]
    assert (out.reason, out.price, out.profit, out.position_id) == \
        ("stop_out", 0.99250, -600.00, pos.id)
    assert fx.balance == pytest.approx(400.0)


def test_stop_out_at_open_closes_worst_first():
    fx = fx_(initial_deposit_usd=1000.0, commission_usd_per_lot_side=0.0)
    fx.open_bar(T0, 1.00000, 0)
    a = fx.buy(0.4)
    fx.close_bar(1.00000, 0.99900, 0.99900)
    fx.open_bar(T0 + H, 0.99900, 0)
    b = fx.buy(0.4)  # a: -40 USD floating, b: 0; margin 400 + 399.6
    fx.close_bar(0.99950, 0.99900, 0.99900)
    assert fx.margin_level > 50
    # gap to 0.99100: a = -360, b = -320, equity 320 < 50 % of 799.6 -> close a (worst)
    fx.open_bar(T0 + 2 * H, 0.99100, 0)
    assert fx.deals[-1].position_id == a.id and fx.deals[-1].profit == -360.00
    # then equity 640 - 320 = 320 vs margin 399.6: level 80 % -> b survives
    assert fx.positions == [b]
    fx.close_bar(0.99100, 0.99100, 0.99100)


def test_invalid_stops_and_volume():
    fx = fx_()
    fx.open_bar(T0, 1.10000, 10)
    assert fx.buy(0.1, sl=1.10000) is None  # SL must be below bid
    assert fx.sell(0.1, tp=1.10010) is None  # TP must be below ask
    assert fx.rejected_orders == 2 and "invalid stops" in fx.last_reject_reason
    with pytest.raises(NeurofxError, match="volume"):
        fx.buy(0.015)
    with pytest.raises(NeurofxError, match="leverage"):
        BrokerConfig(leverage=0)


class Scripted(ReplayStrategy):
    """Buys 0.1 at the open of bar 1 with TP +100 points; records what decide saw."""

    def __init__(self, bars, fx, close_at_end=True):
        super().__init__(bars, fx, close_at_end)
        self.seen = []

    def decide(self, t):
        v = self.view
        self.seen.append((t, v.bid, v.ask, v.past_close.copy(), v.past_high.copy()))
        if t == 1:
            self.fx.buy(0.1, tp=round(v.ask + 0.00100, 5))


def _frame(rows):
    times = pd.date_range("2024-01-02 00:00", periods=len(rows), freq="h")
    df = pd.DataFrame(rows, columns=["open", "high", "low", "close", "spread"])
    df.insert(0, "time", times)
    df["tick_volume"] = 100.0
    return df


ROWS = [
    (1.10000, 1.10050, 1.09950, 1.10000, 10),
    (1.10000, 1.10150, 1.09990, 1.10100, 10),  # buy at 1.10010, TP 1.10110 hit on this bar
    (1.10100, 1.10200, 1.10050, 1.10150, 10),
]


@pytest.mark.parametrize("feed", ["numpy", "pandas"])
def test_replay_through_backtrader_tp_live_on_entry_bar(feed):
    res = run_replay(_frame(ROWS), Scripted, broker_config=CFG, feed=feed)
    assert [(d.entry, d.price, d.reason, d.time) for d in res.deals] == [
        ("in", 1.10010, "agent", T_ROW(1)), ("out", 1.10110, "tp", T_ROW(1))]
    np.testing.assert_allclose(res.balance, [10000, 10000 - 0.35 + 10 - 0.35, 10009.30])
    assert res.final.balance_usd == pytest.approx(10009.30)


def T_ROW(i):
    return int(pd.Timestamp("2024-01-02 00:00").value // 10**9) + i * H


def test_decide_sees_only_closed_bars():
    rows2 = [list(r) for r in ROWS]
    rows2[1][1:4] = [1.10900, 1.09000, 1.10800]  # change bar 1's high/low/close only
    a = run_replay(_frame(ROWS), Scripted, broker_config=CFG).strategy.seen
    b = run_replay(_frame(rows2), Scripted, broker_config=CFG).strategy.seen
    for (ta, bid_a, ask_a, ca, ha), (tb, bid_b, ask_b, cb, hb) in zip(a[:2], b[:2], strict=True):
        assert (ta, bid_a, ask_a) == (tb, bid_b, ask_b)
        np.testing.assert_array_equal(ca, cb)
        np.testing.assert_array_equal(ha, hb)
    assert len(a[1][3]) == 1 and a[2][3][1] == 1.10100 and b[2][3][1] == 1.10800


# ---- swap at the rollover (MT5: per lot and night, three nights on the triple-swap day) ------
WED = 1_704_844_800  # 2024-01-10 00:00 (bars' clock), a Wednesday


def test_swap_over_a_triple_swap_night_by_hand():
    fx = fx_(swap_long_points=-7.0, swap_short_points=2.5, commission_usd_per_lot_side=0.0)
    fx.open_bar(WED + 22 * H, 1.10000, 10)  # Wednesday 22:00, ask 1.10010
    buy = fx.buy(0.5)
    sell = fx.sell(0.2)  # at bid 1.10000 (a hedging account holds both)
    fx.close_bar(1.10000, 1.10000, 1.10000)
    fx.open_bar(WED + 23 * H, 1.10000, 10)
    fx.close_bar(1.10000, 1.10000, 1.10000)
    assert buy.swap_usd == sell.swap_usd == 0.0  # no rollover yet
    # Thursday 00:00 ends Wednesday: 3 nights. long: 0.5 lot * -7 points * 1 USD per point
    # and lot * 3 = -10.50; short: 0.2 * 2.5 * 3 = +1.50
    fx.open_bar(WED + 24 * H, 1.10000, 10)
    assert (buy.swap_usd, sell.swap_usd) == (-10.50, 1.50)
    assert fx.balance == 10_000  # accrued on the positions, not yet booked
    s = fx.snapshot()
    # equity: balance + floating (buy at bid 1.10000 - 1.10010 = -10 points x 0.5 = -5.00;
    # sell at ask 1.10000 - 1.10010 = -10 points x 0.2 = -2.00) + swaps -10.50 + 1.50
    assert s.equity_usd == pytest.approx(10_000 - 5.00 - 2.00 - 10.50 + 1.50)
    fx.close(buy, 0.2)  # a partial close books its share of the swap: 0.2 / 0.5 of -10.50
    assert fx.deals[-1].swap == -4.20 and buy.swap_usd == -6.30
    fx.close_bar(1.10000, 1.10000, 1.10000)
    # Friday 00:00 ends Thursday: one night on what is left (0.3 lot: -2.10; 0.2 lot: +0.50)
    fx.open_bar(WED + 48 * H, 1.10000, 10)
    assert (buy.swap_usd, sell.swap_usd) == (-8.40, 2.00)
    fx.close_all()
    assert [d.swap for d in fx.deals if d.entry == "out"] == [-4.20, -8.40, 2.00]
    # the balance identity: deposit + profit + commission + swap of every deal
    money = sum(d.profit + d.commission + d.swap for d in fx.deals)
    assert fx.balance == pytest.approx(10_000 + money) == pytest.approx(
        10_000 - 5.00 - 2.00 - 4.20 - 8.40 + 2.00)  # buy -10 points x 0.5, sell x 0.2


def test_swap_weekend_and_rollover_hour():
    # a long held from Friday 12:00 to Monday 12:00 crosses the rollovers ending Friday (1
    # night), Saturday and Sunday (none): one night, as MT5 (the weekend is in the triple day)
    fri = WED + 2 * 24 * H
    fx = fx_(swap_long_points=-7.0, commission_usd_per_lot_side=0.0)
    fx.open_bar(fri + 12 * H, 1.1, 0)
    pos = fx.buy(1.0)
    fx.close_bar(1.1, 1.1, 1.1)
    fx.open_bar(fri + 3 * 24 * H + 12 * H, 1.1, 0)
    assert pos.swap_usd == -7.00
    # a rollover at 22:00 (bars in UTC): Wednesday 21:00 -> 23:00 crosses Wednesday's rollover
    fx = fx_(swap_long_points=-7.0, rollover_hour=22)
    fx.open_bar(WED + 21 * H, 1.1, 0)
    pos = fx.buy(1.0)
    fx.close_bar(1.1, 1.1, 1.1)
    fx.open_bar(WED + 23 * H, 1.1, 0)
    assert pos.swap_usd == -21.00
    with pytest.raises(NeurofxError, match="triple_swap_weekday must be one of monday"):
        BrokerConfig(triple_swap_weekday="wed")
