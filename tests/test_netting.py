"""Every branch of the seed's netting rule (spec 3.2), checked against hand-computed orders."""

import pytest

from neurofx.errors import NeurofxError
from neurofx.strategies.broker import BrokerConfig, ForexBroker
from neurofx.strategies.netting import apply_action, net_action

T0 = 1_700_000_000


def fx_at(bid=1.10000, spread=10, **kw) -> ForexBroker:
    fx = ForexBroker(BrokerConfig(**{"min_spread_points": 0.0, **kw}))
    fx.open_bar(T0, bid, spread)  # ask = bid + 10 points
    return fx


def next_bar(fx, bid, spread=10, k=1):
    fx.close_bar(max(bid, fx.bid), min(bid, fx.bid), fx.bid)
    fx.open_bar(T0 + 3600 * k, bid, spread)


@pytest.mark.parametrize("action, netted", [
    ((0.5, 0.1, 0.2, 0.2, 0.3, 0.4), (0.3, 0.1, 0.2, 0.0, 0.3, 0.4)),
    ((0.2, 0.1, 0.2, 0.5, 0.3, 0.4), (0.0, 0.1, 0.2, 0.3, 0.3, 0.4)),
    ((0.2, 0.1, 0.2, 0.2, 0.3, 0.4), (0.0, 0.1, 0.2, 0.0, 0.3, 0.4)),
])
def test_net_action(action, netted):
    assert net_action(action) == pytest.approx(netted)


@pytest.mark.parametrize("bad", [(0.1,) * 5, (0.1, 0.1, float("nan"), 0, 0, 0)])
def test_bad_action_is_an_error(bad):
    with pytest.raises(NeurofxError, match="action"):
        net_action(bad)


def test_open_buy_with_tp_sl_from_ask_and_lot_normalised():
    fx = fx_at()
    r = apply_action(fx, (0.126, 0.5, 0.3, 0.0, 0.0, 0.0))
    pos, = fx.positions
    # lot = 0.01 + round((0.126 - 0.01)/0.01)*0.01 = 0.13; ask 1.10010 +500 / -300 points
    assert (pos.side, pos.lots, pos.entry_price, pos.tp, pos.sl) == \
        ("buy", 0.13, 1.10010, 1.10510, 1.09710)
    assert (r.buy.target_lots, r.buy.opened_lots, r.buy.closed_lots) == (0.13, 0.13, 0.0)
    assert r.action == (0.126, 0.5, 0.3, 0.0, 0.0, 0.0)
    assert r.sell.target_lots == 0.0


def test_open_sell_with_tp_sl_from_bid_and_max_lot():
    fx = fx_at(max_lot=0.5)
    apply_action(fx, (0.0, 0.0, 0.0, 2.0, 0.2, 0.1))
    pos, = fx.positions
    assert (pos.side, pos.lots, pos.entry_price, pos.tp, pos.sl) == \
        ("sell", 0.5, 1.10000, 1.09800, 1.10100)


@pytest.mark.parametrize("action, why", [
    ((0.009, 0.5, 0.5, 0, 0, 0), "lot below min lot"),
    ((0.1, 0.001, 0.5, 0, 0, 0), "TP distance 1 point <= stops"),
    ((0.1, 0.5, 0.001, 0, 0, 0), "SL distance 1 point <= stops"),
    ((0.1, 0.5, 0.5, 0.1, 0.5, 0.5), "netted to zero"),
])
def test_side_closes_all_when_invalid(action, why):
    fx = fx_at()
    fx.buy(0.1)
    fx.buy(0.2)
    r = apply_action(fx, action)
    assert fx.positions == [], why
    assert r.buy.closed_lots == pytest.approx(0.3) and r.buy.target_lots == 0.0
    assert [d.reason for d in fx.deals[2:]] == ["agent", "agent"]


def test_two_points_is_above_stops_and_stops_level_counts():
    fx = fx_at()
    apply_action(fx, (0.1, 0.002, 0.5, 0, 0, 0))  # 2 points > max(0, 1) point
    assert fx.positions[0].tp == 1.10012
    # an SL 2 points below ask is above bid: the rule passes it, the broker rejects the order
    fx = fx_at()
    r = apply_action(fx, (0.1, 0.5, 0.002, 0, 0, 0))
    assert fx.positions == [] and r.buy.rejected == 1
    fx = fx_at(stops_level_points=3)
    apply_action(fx, (0.1, 0.003, 0.5, 0, 0, 0))  # 3 points <= 3-point stops level
    assert fx.positions == []


def test_test_mode_adds_spread_and_doubles_tp_stops():
    # stops = (1 + 10) points; TP needs > 22 points, SL > 11 points
    fx = fx_at()
    apply_action(fx, (0.1, 0.022, 0.5, 0, 0, 0), stops_mode="test")
    assert fx.positions == []
    apply_action(fx, (0.1, 0.023, 0.012, 0, 0, 0), stops_mode="test")
    assert fx.positions[0].tp == 1.10033 and fx.positions[0].sl == 1.09998


def test_reversal_closes_buys_then_opens_sell_on_the_same_bar():
    fx = fx_at()
    apply_action(fx, (0.1, 0.5, 0.5, 0, 0, 0))
    next_bar(fx, 1.10050)
    r = apply_action(fx, (0.0, 0.0, 0.0, 0.2, 0.5, 0.5))
    closed, opened = fx.deals[-2:]
    assert (closed.entry, closed.side, closed.price, closed.profit) == \
        ("out", "sell", 1.10050, 4.00)
    assert (opened.entry, opened.side, opened.volume, opened.price) == ("in", "sell", 0.2, 1.10050)
    assert closed.time == opened.time == T0 + 3600
    assert (r.buy.closed_lots, r.sell.opened_lots) == (0.1, 0.2)
    pos, = fx.positions
    assert (pos.tp, pos.sl) == (1.09550, 1.10550)


def test_close_excess_whole_positions_first_then_partial():
    fx = fx_at()
    a, b, c = fx.buy(0.1), fx.buy(0.2), fx.buy(0.3)
    r = apply_action(fx, (0.25, 0.5, 0.5, 0, 0, 0))
    outs = [(d.position_id, d.volume) for d in fx.deals if d.entry == "out"]
    # excess 0.35: a (0.1) and b (0.2) fit whole, then 0.05 of c
    assert outs == [(a.id, 0.1), (b.id, 0.2), (c.id, 0.05)]
    assert fx.positions == [c] and c.lots == 0.25
    assert r.buy.closed_lots == pytest.approx(0.35) and r.buy.opened_lots == 0.0


def test_open_the_difference():
    fx = fx_at()
    fx.buy(0.1)
    r = apply_action(fx, (0.3, 0.5, 0.5, 0, 0, 0))
    assert [p.lots for p in fx.positions] == [0.1, 0.2]
    assert r.buy.opened_lots == 0.2


def test_modify_buy_sl_only_upwards_tp_on_change():
    fx = fx_at()
    apply_action(fx, (0.1, 0.5, 0.3, 0, 0, 0))  # TP 1.10510, SL 1.09710
    pos = fx.positions[0]
    next_bar(fx, 1.10100)  # ask 1.10110
    r = apply_action(fx, (0.1, 0.5, 0.3, 0, 0, 0))  # SL 1.09810 is up: modify both
    assert (pos.tp, pos.sl, r.buy.modified) == (1.10610, 1.09810, 1)
    next_bar(fx, 1.10000, k=2)  # ask 1.10010: SL 1.09710 would move down -> keep 1.09810
    r = apply_action(fx, (0.1, 0.6, 0.3, 0, 0, 0))  # TP 1.10610 unchanged
    assert (pos.tp, pos.sl, r.buy.modified) == (1.10610, 1.09810, 0)
    assert len(fx.deals) == 1  # no new orders: only modifications


def test_modify_sell_sl_only_downwards():
    fx = fx_at()
    apply_action(fx, (0, 0, 0, 0.1, 0.5, 0.3))  # bid 1.10000: TP 1.09500, SL 1.10300
    pos = fx.positions[0]
    next_bar(fx, 1.10100)  # SL would be 1.10400 (up): kept; TP 1.09600 changes
    apply_action(fx, (0, 0, 0, 0.1, 0.5, 0.3))
    assert (pos.tp, pos.sl) == (1.09600, 1.10300)
    next_bar(fx, 1.09900, k=2)
    apply_action(fx, (0, 0, 0, 0.1, 0.5, 0.3))
    assert (pos.tp, pos.sl) == (1.09400, 1.10200)


def test_zero_means_none_for_real_orl():
    fx = fx_at()
    r = apply_action(fx, (0.1, 0.0, 0.0, 0, 0, 0), zero_means_none=True)
    pos, = fx.positions
    assert (pos.tp, pos.sl, r.buy.tp, r.buy.sl) == (None, None, None, None)
    # a later SL is added (no SL counts as infinitely far); a TP of 0 keeps none
    apply_action(fx, (0.1, 0.0, 0.2, 0, 0, 0), zero_means_none=True)
    assert (pos.tp, pos.sl) == (None, 1.09810)
    # without the option a zero TP is a distance of 0 <= stops: close all
    apply_action(fx, (0.1, 0.0, 0.2, 0, 0, 0))
    assert fx.positions == []


def test_rejected_open_is_reported():
    fx = fx_at(initial_deposit_usd=100.0)  # 1 lot needs 1100 USD margin
    r = apply_action(fx, (1.0, 0.5, 0.5, 0, 0, 0))
    assert fx.positions == [] and r.buy.opened_lots == 0.0 and r.buy.rejected == 1
