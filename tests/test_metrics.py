"""Report statistics against hand-computed values (formulas: docs/metrics.md).

The main case is six round trips on a 10 000 USD deposit, every deal charged 1 USD commission:

    pos  dir    entry -> exit (UTC)         profit  swap   net = profit - 1 (in) - 1 (out) + swap
    1    long   d0 01:00 -> d0 03:00 (2 h)    +50            48
    2    short  d0 05:00 -> d0 06:00 (1 h)    -30           -32
    3    long   d1 01:00 -> d1 05:00 (4 h)    +20   -0.5     17.5
    4    long   d1 13:00 -> d1 14:30 (1.5 h)  -10           -12
    5    short  d2 02:00 -> d2 12:00 (10 h)   -15           -17
    6    short  d3 01:00 -> d3 03:00 (2 h)    +40            38

d0 = 2024-01-01 (a Monday). Each expected value below is worked out by hand in a comment.
"""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from neurofx.deals import Deal
from neurofx.errors import NeurofxError
from neurofx.reports import stats
from neurofx.reports.metrics import (
    METRIC_FIELDS,
    BarSeries,
    compute_metrics,
    summary_lines,
)
from neurofx.reports.trades import deal_ledger, trades_from_deals

H, D = 3600, 86400
D0 = 1704067200  # 2024-01-01 00:00 UTC
DEPOSIT = 10000.0


def make_deal(ticket, t, side, entry, pid, entry_time, profit=0.0, commission=-1.0, swap=0.0,
              volume=0.1):
    return Deal(ticket=ticket, time=t, symbol="EURUSD", side=side, entry=entry, volume=volume,
                price=1.1, commission=commission, swap=swap, profit=profit, position_id=pid,
                reason="agent", entry_time=entry_time, entry_price=1.1)


def round_trip(ticket, pid, direction, t_in, t_out, profit, swap=0.0):
    side_in, side_out = ("buy", "sell") if direction == "long" else ("sell", "buy")
    return [make_deal(ticket, t_in, side_in, "in", pid, t_in),
            make_deal(ticket + 1, t_out, side_out, "out", pid, t_in, profit=profit, swap=swap)]


DEALS = (
    round_trip(1, 1, "long", D0 + 1 * H, D0 + 3 * H, 50.0)
    + round_trip(3, 2, "short", D0 + 5 * H, D0 + 6 * H, -30.0)
    + round_trip(5, 3, "long", D0 + D + 1 * H, D0 + D + 5 * H, 20.0, swap=-0.5)
    + round_trip(7, 4, "long", D0 + D + 13 * H, D0 + D + 14 * H + 1800, -10.0)
    + round_trip(9, 5, "short", D0 + 2 * D + 2 * H, D0 + 2 * D + 12 * H, -15.0)
    + round_trip(11, 6, "short", D0 + 3 * D + 1 * H, D0 + 3 * D + 3 * H, 40.0)
)
# Per-bar record: six bars, the equity chosen by hand, the last balance = 10 042.50.
SERIES = BarSeries.from_arrays(
    time_s=[D0, D0 + 12 * H, D0 + D, D0 + D + 12 * H, D0 + 2 * D + 12 * H, D0 + 3 * D + 12 * H],
    balance_usd=[10000, 9999, 10048, 10016, 10033.5, 10042.5],
    equity_usd=[10000, 9980, 10060, 10010, 10030, 10042.5],
    margin_level_pct=[np.nan, 2500, np.inf, 1800, 3000, np.nan],
)

# Trade balance b_0..b_6 = 10000 + cumulative net:
B = [10000, 10048, 10016, 10033.5, 10021.5, 10004.5, 10042.5]
HPR = [B[i + 1] / B[i] for i in range(6)]
# daily closes (last equity of each UTC day): 9980 (d0), 10010 (d1), 10030 (d2), 10042.5 (d3)
DAILY_R = [9980 / 10000 - 1, 10010 / 9980 - 1, 10030 / 10010 - 1, 10042.5 / 10030 - 1]

EXPECTED = {
    "initial_deposit_usd": 10000.0,
    "final_balance_usd": 10042.5,  # 10000 + 48 - 32 + 17.5 - 12 - 17 + 38
    "final_equity_usd": 10042.5,
    "bars": 6,
    "first_bar_time_s": D0,
    "last_bar_time_s": D0 + 3 * D + 12 * H,
    "total_net_profit_usd": 42.5,
    "gross_profit_usd": 103.5,  # 48 + 17.5 + 38
    "gross_loss_usd": -61.0,  # -32 - 12 - 17
    "unallocated_commission_usd": 0.0,
    "profit_factor": 103.5 / 61,  # 1.6967...
    "expected_payoff_usd": 42.5 / 6,  # 7.0833
    # equity: peak 10060 at bar 2, trough 10010 at bar 3 -> maximal drawdown 50; 42.5 / 50
    "recovery_factor": 0.85,
    # returns -0.002, +0.0030060, +0.0019980, +0.0012463: mean 0.00106257, stdev 0.00216526,
    # 0.00106257 / 0.00216526 * sqrt(252) = 7.7902
    "sharpe_daily_annualised": statistics.mean(DAILY_R) / statistics.stdev(DAILY_R)
    * math.sqrt(252),
    "sharpe_daily_returns": 4,
    # HPR 1.0048, 0.996815, 1.001747, 0.998804, 0.998304, 1.003798: AHPR 1.00071141,
    # population stdev (as MT5) 0.00294206 -> (1.00071141 - 1) / 0.00294206 = 0.24181
    "sharpe_mt5_per_trade": (statistics.mean(HPR) - 1) / statistics.pstdev(HPR),
    # balance after each deal: 10000, 9999, 10048, 10047, 10016, 10015, 10033.5, 10032.5,
    # 10021.5, 10020.5, 10004.5, 10003.5, 10042.5: lowest 9999 -> absolute 1; from the 10048
    # peak the deepest point is 10003.5 -> 44.5 = 0.442874 % of 10048 (also the largest %)
    "balance_drawdown_absolute_usd": 1.0,
    "balance_drawdown_maximal_usd": 44.5,
    "balance_drawdown_maximal_pct": 44.5 / 10048 * 100,
    "balance_drawdown_relative_pct": 44.5 / 10048 * 100,
    "balance_drawdown_relative_usd": 44.5,
    # equity 10000, 9980, 10060, 10010, 10030, 10042.5: lowest 9980 -> absolute 20; falls below
    # the running peak: 20 (of 10000, 0.2 %), 50 / 30 / 17.5 (of 10060): maximal 50 = 0.497 %
    "equity_drawdown_absolute_usd": 20.0,
    "equity_drawdown_maximal_usd": 50.0,
    "equity_drawdown_maximal_pct": 50 / 10060 * 100,
    "equity_drawdown_relative_pct": 50 / 10060 * 100,
    "equity_drawdown_relative_usd": 50.0,
    "equity_drawdown_longest_bars": 3,  # bars 3, 4, 5 stay below 10060
    "min_margin_level_pct": 1800.0,  # nan and inf (no margin) are skipped
    # W L W L L W: N = 6, R = 5 runs, P = 2*3*3 = 18;
    # Z = (6 * (5 - 0.5) - 18) / sqrt(18 * (18 - 6) / 5) = 9 / sqrt(43.2) = 1.369306
    "z_score": 9 / math.sqrt(43.2),
    "z_score_probability_pct": 100 * math.erf(9 / math.sqrt(43.2) / math.sqrt(2)),  # 82.91 %
    "ahpr": statistics.mean(HPR),
    "ahpr_pct": (statistics.mean(HPR) - 1) * 100,
    "ghpr": (10042.5 / 10000) ** (1 / 6),  # product of HPRs telescopes to b_6 / b_0
    "ghpr_pct": ((10042.5 / 10000) ** (1 / 6) - 1) * 100,
    # x = 0..6, mean 3, Sxx = 28; Sxy = sum (x - 3) * b = 46 -> slope 46 / 28 = 1.642857;
    # r = Sxy / sqrt(Sxx * Syy) = 0.19273; residuals -18.79, 27.57, -6.07, 9.79, -3.86, -22.50,
    # 13.86 -> sqrt(1958.86 / (7 - 2)) = 19.7932
    "lr_correlation": statistics.correlation(range(7), B),
    "lr_standard_error_usd": 19.79321673128038,
    "total_trades": 6,
    "total_deals": 12,
    "short_trades": 3,  # positions 2, 5, 6; only 6 won -> 33.33 %
    "short_trades_won_pct": 100 / 3,
    "long_trades": 3,  # positions 1, 3, 4; 1 and 3 won -> 66.67 %
    "long_trades_won_pct": 200 / 3,
    "profit_trades": 3,
    "profit_trades_pct": 50.0,
    "loss_trades": 3,
    "loss_trades_pct": 50.0,
    "largest_profit_trade_usd": 48.0,
    "largest_loss_trade_usd": -32.0,
    "average_profit_trade_usd": 34.5,  # 103.5 / 3
    "average_loss_trade_usd": -61 / 3,
    # runs: [48] [-32] [17.5] [-12 -17] [38]
    "max_consecutive_wins_count": 1,  # all win runs have length 1; the first one is 48
    "max_consecutive_wins_usd": 48.0,
    "max_consecutive_losses_count": 2,  # -12, -17
    "max_consecutive_losses_usd": -29.0,
    "maximal_consecutive_profit_usd": 48.0,
    "maximal_consecutive_profit_count": 1,
    "maximal_consecutive_loss_usd": -32.0,  # one trade loses more than the two-trade run (-29)
    "maximal_consecutive_loss_count": 1,
    "average_consecutive_wins": 1.0,  # 3 runs of 1
    "average_consecutive_losses": 2.0,  # runs of 1 and 2: 1.5, shown rounded (half up) as MT5
    "average_consecutive_wins_exact": 1.0,
    "average_consecutive_losses_exact": 1.5,
    "holding_time_min_hours": 1.0,
    "holding_time_max_hours": 10.0,
    "holding_time_avg_hours": 20.5 / 6,  # (2 + 1 + 4 + 1.5 + 10 + 2) / 6
}


@pytest.fixture(scope="module")
def metrics():
    return compute_metrics(DEALS, SERIES, DEPOSIT)


def test_expected_table_covers_every_metric():
    assert set(EXPECTED) == set(METRIC_FIELDS)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_metric_hand_computed(metrics, name):
    got, want = getattr(metrics, name), EXPECTED[name]
    if isinstance(want, int):
        assert got == want and isinstance(got, int)
    else:
        assert isinstance(got, float)
        assert got == pytest.approx(want, rel=1e-12, abs=1e-9)


def test_lr_standard_error_against_statistics_regression():
    slope, intercept = statistics.linear_regression(range(7), B)
    assert slope == pytest.approx(46 / 28)
    ssr = sum((y - (slope * x + intercept)) ** 2 for x, y in enumerate(B))
    assert math.sqrt(ssr / 5) == pytest.approx(EXPECTED["lr_standard_error_usd"], rel=1e-12)


def test_final_balance_identity(metrics):
    cash = sum(d.profit + d.commission + d.swap for d in DEALS)  # 50+20-30-10-15+40 -12 -0.5
    assert cash == pytest.approx(42.5)
    assert metrics.final_balance_usd == pytest.approx(DEPOSIT + cash)
    assert metrics.total_net_profit_usd == pytest.approx(
        metrics.gross_profit_usd + metrics.gross_loss_usd + metrics.unallocated_commission_usd)


def test_trades_table_columns():
    t = trades_from_deals(DEALS, DEPOSIT)
    np.testing.assert_allclose(t.net_usd, [48, -32, 17.5, -12, -17, 38])
    np.testing.assert_allclose(t.commission_usd, [-2.0] * 6)  # 1 in + 1 out
    np.testing.assert_allclose(t.balance_usd, B[1:])
    np.testing.assert_array_equal(t.direction, [1, -1, 1, 1, -1, -1])
    np.testing.assert_array_equal(t.ticket, [2, 4, 6, 8, 10, 12])
    np.testing.assert_allclose(t.holding_hours, [2, 1, 4, 1.5, 10, 2])


def test_entry_commission_split_over_partial_closes():
    # two buys of 1 lot (commission -6 and -4), closed by 0.5 lot then 1.5 lots:
    # first out: share = -10 * 0.5 / 2 = -2.5 -> net = 30 - 2.5 (own) - 2.5 (share) = 25
    # second out: remaining share -7.5 -> net = -12 - 7.5 - 7.5 = -27; total -2 = all cash flows
    deals = [
        make_deal(1, D0, "buy", "in", 7, D0, commission=-6.0, volume=1.0),
        make_deal(2, D0 + H, "buy", "in", 7, D0 + H, commission=-4.0, volume=1.0),
        make_deal(3, D0 + 2 * H, "sell", "out", 7, D0, profit=30.0, commission=-2.5, volume=0.5),
        make_deal(4, D0 + 3 * H, "sell", "out", 7, D0, profit=-12.0, commission=-7.5, volume=1.5),
    ]
    t = trades_from_deals(deals, DEPOSIT)
    np.testing.assert_allclose(t.commission_usd, [-5.0, -15.0])
    np.testing.assert_allclose(t.net_usd, [25.0, -27.0])
    assert deal_ledger(deals, DEPOSIT).unallocated_commission_usd == 0.0


def test_open_position_commission_is_unallocated():
    # a round trip (net +8) then a buy still open: its -3 commission is in the balance only
    deals = round_trip(1, 1, "long", D0, D0 + H, 10.0) + [
        make_deal(3, D0 + 2 * H, "buy", "in", 2, D0 + 2 * H, commission=-3.0)]
    series = BarSeries.from_arrays([D0, D0 + 3 * H], [10000, 10005], [10000, 10001], [np.nan, 900])
    m = compute_metrics(deals, series, DEPOSIT)
    assert m.unallocated_commission_usd == -3.0
    assert m.total_net_profit_usd == 5.0  # 10 - 1 - 1 - 3
    assert m.gross_profit_usd == 8.0 and m.expected_payoff_usd == 8.0
    assert m.final_equity_usd == 10001.0 and m.min_margin_level_pct == 900.0


def test_no_trades():
    series = BarSeries.from_arrays([D0, D0 + D, D0 + 2 * D], [DEPOSIT] * 3, [DEPOSIT] * 3)
    m = compute_metrics([], series, DEPOSIT)
    assert (m.total_trades, m.total_deals, m.profit_trades, m.loss_trades) == (0, 0, 0, 0)
    assert m.total_net_profit_usd == 0.0 and m.gross_profit_usd == 0.0
    assert m.equity_drawdown_maximal_usd == 0.0 and m.balance_drawdown_maximal_pct == 0.0
    assert m.sharpe_daily_returns == 3
    undefined = ("profit_factor", "expected_payoff_usd", "recovery_factor",  # 0/0
                 "sharpe_daily_annualised", "sharpe_mt5_per_trade", "z_score", "ahpr", "ghpr",
                 "lr_correlation", "lr_standard_error_usd", "profit_trades_pct",
                 "short_trades_won_pct", "largest_profit_trade_usd", "average_loss_trade_usd",
                 "average_consecutive_wins", "holding_time_avg_hours", "min_margin_level_pct")
    for name in undefined:
        assert math.isnan(getattr(m, name)), name
    assert m.max_consecutive_wins_count == 0 and m.max_consecutive_losses_usd == 0.0


def test_all_wins_zero_drawdown():
    # nets 10 - 2 = 8 and 20 - 2 = 18; equity never falls below its running peak
    deals = (round_trip(1, 1, "long", D0, D0 + H, 10.0)
             + round_trip(3, 2, "short", D0 + D, D0 + D + 2 * H, 20.0))
    series = BarSeries.from_arrays([D0, D0 + D, D0 + 2 * D], [10008, 10008, 10026],
                                   [10008, 10010, 10026])
    m = compute_metrics(deals, series, DEPOSIT)
    assert m.profit_factor == math.inf  # 26 / 0
    assert m.recovery_factor == math.inf  # 26 / 0
    assert m.equity_drawdown_maximal_usd == 0.0 and m.equity_drawdown_relative_pct == 0.0
    assert m.equity_drawdown_longest_bars == 0
    assert m.balance_drawdown_absolute_usd == 1.0  # the first entry commission: 10000 -> 9999
    assert math.isnan(m.z_score)  # no losses: P = 0, the runs test is undefined
    assert math.isnan(m.largest_loss_trade_usd) and math.isnan(m.average_consecutive_losses)
    assert (m.max_consecutive_wins_count, m.max_consecutive_wins_usd) == (2, 26.0)
    assert m.profit_trades_pct == 100.0 and m.loss_trades_pct == 0.0
    # daily returns 8/10000 = 0.0008, 10/10008, 16/10010 -> finite, positive
    r = [10008 / 10000 - 1, 10010 / 10008 - 1, 10026 / 10010 - 1]
    assert m.sharpe_daily_annualised == pytest.approx(
        statistics.mean(r) / statistics.stdev(r) * math.sqrt(252))


def test_drawdown_maximal_differs_from_relative():
    # deposit 100: 50 (fall 50 = 50 % of 100), 200, 110 (fall 90 = 45 % of 200), 150
    dd = stats.drawdown(np.array([50.0, 200.0, 110.0, 150.0]), 100.0)
    assert (dd.maximal_usd, dd.maximal_pct) == (90.0, 45.0)
    assert (dd.relative_pct, dd.relative_usd) == (50.0, 50.0)
    assert dd.absolute_usd == 50.0 and dd.longest_underwater_points == 2


def test_zero_trade_counts_as_a_win_in_runs_and_z():
    # MT5: a result of exactly 0 is a profit trade, so it extends the run of wins before it
    st = stats.streaks(np.array([5.0, 0.0, 5.0, -1.0, -1.0]))
    assert (st.max_wins_count, st.max_wins_usd, st.average_wins) == (3, 10.0, 3.0)
    assert (st.max_losses_count, st.max_losses_usd) == (2, -2.0)
    # W W W L L -> N 5, W 3, R 2, P 12: Z = (5 * 1.5 - 12) / sqrt(12 * 7 / 4) = -0.98198
    z = stats.z_score(np.array([5.0, 0.0, 5.0, -1.0, -1.0]))
    assert z.z == pytest.approx(-4.5 / math.sqrt(21))


def test_zero_result_trades_in_trade_stats_and_streaks():
    net = np.array([10.0, 0.0, -4.0, 0.0, -6.0, 3.0])
    direction = np.array([1, -1, -1, 1, 1, -1])
    ts = stats.trade_stats(net, direction)
    # profit trades 10, 0, 0, 3 (4 of 6); loss trades -4, -6
    assert (ts.profit_trades, ts.loss_trades) == (4, 2)
    assert ts.profit_trades_pct == pytest.approx(400 / 6)
    assert ts.loss_trades_pct == pytest.approx(200 / 6)
    assert ts.average_profit_trade_usd == 13 / 4  # gross profit / profit trades, zeros counted
    assert ts.average_loss_trade_usd == -5.0
    # shorts: 0 (won), -4, 3 (won); longs: 10 (won), 0 (won), -6
    assert ts.short_trades_won_pct == pytest.approx(200 / 3)
    assert ts.long_trades_won_pct == pytest.approx(200 / 3)
    st = stats.streaks(net)
    # runs: [10 0] [-4] [0] [-6] [3]: wins 2, 1, 1 -> 4/3 shown as 1; losses 1, 1 -> 1
    assert (st.max_wins_count, st.max_wins_usd) == (2, 10.0)
    assert (st.maximal_profit_usd, st.maximal_profit_count) == (10.0, 2)
    assert (st.average_wins, st.average_wins_exact) == (1.0, 4 / 3)
    assert (st.average_losses, st.average_losses_exact) == (1.0, 1.0)


def test_zero_result_round_trip_in_the_report():
    # profit 2 minus 1 + 1 commission: net exactly 0 -> one profit trade of 0 USD
    deals = round_trip(1, 1, "long", D0, D0 + H, 2.0)
    series = BarSeries.from_arrays([D0, D0 + H], [9999, 10000], [9999, 10000])
    m = compute_metrics(deals, series, DEPOSIT)
    assert (m.total_trades, m.profit_trades, m.loss_trades) == (1, 1, 0)
    assert (m.profit_trades_pct, m.long_trades_won_pct) == (100.0, 100.0)
    assert m.largest_profit_trade_usd == 0.0 and m.average_profit_trade_usd == 0.0
    assert math.isnan(m.average_loss_trade_usd) and m.profit_factor != m.profit_factor  # 0/0
    assert (m.max_consecutive_wins_count, m.average_consecutive_wins) == (1, 1.0)


@pytest.mark.parametrize("x,want", [(1.5, 2.0), (2.5, 3.0), (15 / 9, 2.0), (21 / 8, 3.0),
                                    (4 / 3, 1.0), (1.0, 1.0)])
def test_mt5_round_of_average_run_lengths(x, want):
    # the real report: exact means 1.67 and 2.63 are shown as 2 and 3
    assert stats.mt5_round(x) == want
    assert math.isnan(stats.mt5_round(math.nan))


@pytest.mark.parametrize("num,den,want", [
    (3.0, 2.0, 1.5), (1.0, 0.0, math.inf), (-1.0, 0.0, -math.inf), (0.0, 0.0, math.nan),
    (math.nan, 1.0, math.nan)])
def test_ratio(num, den, want):
    got = stats.ratio(num, den)
    assert (math.isnan(got) and math.isnan(want)) or got == want


def test_daily_sharpe_single_day_undefined():
    s, n = stats.daily_sharpe(np.array([D0, D0 + H]), np.array([10010.0, 10020.0]), 10000.0)
    assert math.isnan(s) and n == 1


def test_balance_identity_violation_is_reported():
    bad = BarSeries.from_arrays(SERIES.time_s, [*SERIES.balance_usd[:-1], 10040.0],
                                SERIES.equity_usd)
    with pytest.raises(NeurofxError, match=r"last bar's balance 10040.00 .* = 10042.50"):
        compute_metrics(DEALS, bad, DEPOSIT)


@pytest.mark.parametrize("field,value,pattern", [
    ("entry", "inout", r"deal 1: field 'entry' is 'inout'; use 'in' or 'out'"),
    ("side", "long", r"deal 1: field 'side' is 'long'; use 'buy' or 'sell'"),
    ("volume", 0.0, r"deal 1: field 'volume' is 0.0; it must be > 0"),
])
def test_bad_deal_fields(field, value, pattern):
    row = DEALS[0].as_row() | {field: value}
    with pytest.raises(NeurofxError, match=pattern):
        trades_from_deals([Deal(**row)], DEPOSIT)


@pytest.mark.parametrize("kwargs,pattern", [
    ({"time_s": [D0 + H, D0]}, r"'time_s' goes backwards at bar 1"),
    ({"equity_usd": [1.0, np.nan]}, r"'equity_usd' contains nan"),
    ({"balance_usd": [1.0]}, r"'balance_usd' has shape \(1,\), expected \(2,\)"),
])
def test_bad_series(kwargs, pattern):
    args = {"time_s": [D0, D0 + H], "balance_usd": [1.0, 1.0], "equity_usd": [1.0, 1.0]} | kwargs
    with pytest.raises(NeurofxError, match=pattern):
        BarSeries.from_arrays(**args)


def test_bad_deposit():
    with pytest.raises(NeurofxError, match="deposit: 0 is not a positive amount"):
        compute_metrics(DEALS, SERIES, 0)


def test_summary_lines(metrics):
    lines = summary_lines(metrics)
    assert lines[0].startswith("net profit        +42.50 USD (balance 10,042.50 from 10,000.00)")
    assert "6 (3 won, 50.0 %; long 66.7 %, short 33.3 %)" in lines[1]
    assert "profit factor     1.70" in lines[2] and "recovery factor 0.85" in lines[2]
    assert "50.00 USD (0.50 %)" in lines[4]
