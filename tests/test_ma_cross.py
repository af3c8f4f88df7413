"""The SMA-crossover demo on January 2024, checked against independent pandas computations."""

import importlib.resources

import numpy as np
import pandas as pd
import pytest

from neurofx.strategies.broker import BrokerConfig
from neurofx.strategies.ma_cross import ma_cross_backtest

POINT = 0.00001


@pytest.fixture(scope="module")
def jan() -> pd.DataFrame:
    path = importlib.resources.files("neurofx.data").joinpath("EURUSD_H1.csv.gz")
    df = pd.read_csv(str(path), parse_dates=["time"])
    return df[(df.time >= "2024-01-01") & (df.time < "2024-02-01")].reset_index(drop=True)


@pytest.fixture(scope="module")
def summary(jan):
    return ma_cross_backtest(jan, fast_bars=6, slow_bars=24, lots=0.1, tp_frac=0.3, sl_frac=0.2)


def test_balance_is_deposit_plus_deal_money(summary):
    deals = summary.result.deals
    assert summary.trades > 5
    money = sum(d.profit + d.commission + d.swap for d in deals)
    assert summary.swap_usd == pytest.approx(sum(d.swap for d in deals)) != 0  # held overnight
    assert summary.final_balance_usd == pytest.approx(10_000 + money, abs=1e-6)
    assert summary.net_profit_usd == pytest.approx(money, abs=1e-6)
    assert summary.result.balance[-1] == pytest.approx(summary.final_balance_usd)
    assert summary.result.final.buy_lots == summary.result.final.sell_lots == 0.0


def test_deals_alternate_in_out_with_hand_profit(summary, jan):
    deals = summary.result.deals
    by_pos = {}
    for d in deals:
        by_pos.setdefault(d.position_id, []).append(d)
    assert all([d.entry for d in ds] == ["in", "out"] for ds in by_pos.values())
    # at most one position open at any time: a reversal closes the old side, then opens
    open_n, reversals = 0, 0
    for i, d in enumerate(deals):
        open_n += 1 if d.entry == "in" else -1
        assert open_n <= 1
        prev = deals[i - 1] if i else None
        if prev and prev.time == d.time and prev.position_id != d.position_id \
                and prev.reason == d.reason == "agent":
            reversals += 1
            assert (prev.entry, d.entry) == ("out", "in") and prev.side == d.side
    assert reversals > 0
    t_index = {int(t.value // 10**9): i for i, t in enumerate(pd.DatetimeIndex(jan.time))}
    gaps = 0
    for d_in, d_out in (ds for ds in by_pos.values()):
        assert d_in.position_id == d_out.position_id and d_in.volume == d_out.volume == 0.1
        assert d_out.side != d_in.side and d_out.entry_price == d_in.price
        sign = 1 if d_in.side == "buy" else -1
        assert d_out.profit == pytest.approx(round(sign * (d_out.price - d_in.price) * 1e4, 2))
        assert d_in.commission == d_out.commission == -0.35
        row = jan.iloc[t_index[d_in.time]]
        spread = max(row.spread, 5) * POINT
        assert d_in.price == pytest.approx(row.open + (spread if d_in.side == "buy" else 0))
        out_row = jan.iloc[t_index[d_out.time]]
        out_quote = out_row.open + (max(out_row.spread, 5) * POINT if sign < 0 else 0)
        level = {"tp": d_in.price + sign * 300 * POINT, "sl": d_in.price - sign * 200 * POINT}
        if d_out.reason in level and d_out.price != pytest.approx(level[d_out.reason]):
            # only a gap at the open may fill away from the level: at the open quote, beyond it
            assert d_out.price == pytest.approx(out_quote) and d_out.time > d_in.time
            beyond = sign * (d_out.price - level[d_out.reason])
            assert beyond > 0 if d_out.reason == "tp" else beyond < 0
            gaps += 1
    assert gaps >= 1
    assert deals[-1].reason in ("tp", "sl", "agent", "end_of_test")


def test_entries_happen_exactly_at_crossings(summary, jan):
    diff = (jan.close.rolling(6).mean() - jan.close.rolling(24).mean()).to_numpy()
    times = (pd.DatetimeIndex(jan.time).as_unit("ns").asi8 // 10**9).tolist()
    expected = []
    for t in range(2, len(jan)):
        prev, last = diff[t - 2], diff[t - 1]
        if prev <= 0 < last:
            expected.append((times[t], "buy"))
        elif prev >= 0 > last:
            expected.append((times[t], "sell"))
    got = [(d.time, d.side) for d in summary.result.deals
           if d.entry == "in" and d.reason == "agent"]
    assert got == expected


def test_pandas_feed_gives_the_same_deals(summary, jan):
    other = ma_cross_backtest(jan, feed="pandas", fast_bars=6, slow_bars=24, lots=0.1,
                              tp_frac=0.3, sl_frac=0.2)
    assert other.result.deals == summary.result.deals


def test_equity_record_matches_balance_when_flat(summary):
    rec = summary.result.records
    flat = (rec["buy_lots"] == 0) & (rec["sell_lots"] == 0)
    assert flat.any() and (~flat).any()
    np.testing.assert_allclose(rec["equity_usd"][flat], rec["balance_usd"][flat])
    assert np.isnan(rec["margin_level_pct"][flat]).all()
    assert (rec["margin_level_pct"][~flat] > 1000).all()  # 0.1 lot on 10k: ~9,000 %


def test_broker_config_is_used(jan):
    cfg = BrokerConfig(commission_usd_per_lot_side=0.0, initial_deposit_usd=5000.0)
    s = ma_cross_backtest(jan, broker_config=cfg, fast_bars=6, slow_bars=24)
    assert s.commission_usd == 0.0
    assert s.final_balance_usd == pytest.approx(5000 + s.gross_profit_usd + s.swap_usd)
