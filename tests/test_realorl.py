"""Real-ORL importers and action reconstruction against hand-computed values (spec 4.2)."""

from pathlib import Path

import numpy as np
import pytest

from neurofx.collectors.realorl import (
    HistDeal,
    import_mt5_deals,
    import_neurofx_deals,
    import_signals_csv,
    realorl_actions,
)
from neurofx.errors import NeurofxError

FIX = Path(__file__).parent / "fixtures"
H = 3600
T0 = 1672646400  # 2023-01-02 08:00:00 (broker clock read as UTC)


def t(hhmm: str) -> int:
    h, m = map(int, hhmm.split(":"))
    return T0 + (h - 8) * H + m * 60


# the four EURUSD positions of the fixtures, as (open, side, volume, open price, close, close price)
EXPECTED = [
    (t("09:20"), "buy", 0.10, 1.07100, t("12:30"), 1.07500, 40.0),
    (t("11:00"), "buy", 0.20, 1.07300, t("14:00"), 1.07200, -20.0),
    (t("14:30"), "sell", 0.05, 1.07500, t("16:45"), 1.07400, 5.0),
    (t("15:10"), "sell", 0.10, 1.07600, t("15:50"), 1.07750, -15.0),
]

# bars 08:00 .. 16:00; bid rises 10 points a bar, spread 1 pip
BAR_TIMES = T0 + H * np.arange(9)
BID = 1.07000 + 0.00100 * np.arange(9)
ASK = BID + 0.00010

# hand computation (scale = 1000 points * 1e-5 = 0.01):
#  deal 1 buy, opened 09:20 -> bars 09:00..12:00, profit -> TP 1.075: a1 = (1.075 - ask) / 0.01
#  deal 2 buy, opened 11:00 exactly -> from bar 10:00 (open - 3600 <= T), loss -> SL 1.072
#  deal 3 sell 14:30-16:45 profit -> TP 1.074: a4 = (bid - 1.074) / 0.01 on 14:00..16:00
#  deal 4 sell 15:10-15:50 loss -> SL 1.0775: a5 = (1.0775 - bid) / 0.01 on 15:00
ACTIONS_SIGNALS = np.array([
    [0.00, 0.00, 0.00, 0.00, 0.00, 0.00],  # 08:00 nothing open yet
    [0.10, 0.39, 0.00, 0.00, 0.00, 0.00],  # 09:00 deal 1 (mid-bar open), TP only
    [0.30, 0.29, 0.01, 0.00, 0.00, 0.00],  # 10:00 deals 1+2 overlap: volumes add, max TP/SL
    [0.30, 0.19, 0.11, 0.00, 0.00, 0.00],  # 11:00
    [0.30, 0.09, 0.21, 0.00, 0.00, 0.00],  # 12:00 deal 1 closes 12:30 -> still held
    [0.20, 0.00, 0.31, 0.00, 0.00, 0.00],  # 13:00 loss deal 2 only: SL, TP stays 0
    [0.00, 0.00, 0.00, 0.05, 0.20, 0.00],  # 14:00 deal 2 closed at 14:00 (T < close); deal 3
    [0.00, 0.00, 0.00, 0.15, 0.30, 0.05],  # 15:00 deals 3+4
    [0.00, 0.00, 0.00, 0.05, 0.40, 0.00],  # 16:00 deal 3
])


def as_tuples(deals):
    return sorted(
        (d.open_time, d.side, round(d.volume, 8), round(d.open_price, 8), d.close_time,
         round(d.close_price, 8), round(d.profit, 8))
        for d in deals
    )


def test_signals_csv_import():
    res = import_signals_csv(FIX / "deals_signals.csv")
    assert res.skipped_symbols == 1  # the GBPUSD row
    assert as_tuples(res.deals) == EXPECTED
    assert res.deals[2].symbol == "EURUSD.m"  # "contains EURUSD", as the seed
    # volume = min(volume, field 6): 0.30 vs 0.20
    assert res.deals[1].volume == 0.20


def test_signals_csv_without_header_and_trailing_semicolon(tmp_path):
    lines = (FIX / "deals_signals.csv").read_text().splitlines()[1:]
    p = tmp_path / "s.csv"
    p.write_text("\n".join(ln + ";" for ln in lines) + "\n")
    res = import_signals_csv(p)
    assert as_tuples(res.deals) == EXPECTED and res.skipped_symbols == 1


def test_neurofx_deals_import():
    res = import_neurofx_deals(FIX / "deals_neurofx.csv")
    assert res.skipped_symbols == 2  # GBPUSD in + out
    assert res.unmatched == 1  # position 6 is still open at the end of the file
    assert as_tuples(res.deals) == EXPECTED


def test_mt5_deals_import_pairs_fifo():
    res = import_mt5_deals(FIX / "deals_mt5.csv")
    assert res.skipped_symbols == 2 and res.unmatched == 1
    # buys pair one to one; the buy-out of 0.10 at 15:50 closes the OLDEST sell first (FIFO):
    # 0.05 of the 14:30 sell and 0.05 of the 15:10 sell; the 16:45 close takes the rest
    assert as_tuples(res.deals) == sorted([
        EXPECTED[0], EXPECTED[1],
        (t("14:30"), "sell", 0.05, 1.07500, t("15:50"), 1.07750, -7.5),
        (t("15:10"), "sell", 0.05, 1.07600, t("15:50"), 1.07750, -7.5),
        (t("15:10"), "sell", 0.05, 1.07600, t("16:45"), 1.07400, 5.0),
    ])


def test_mt5_deals_tab_separated_reversal(tmp_path):
    rows = [
        "Time\tDeal\tSymbol\tType\tDirection\tVolume\tPrice\tProfit",
        "2023.01.02 09:00:00\t1\tEURUSD\tbuy\tin\t0.10\t1.07000\t0",
        "2023.01.02 10:00:00\t2\tEURUSD\tsell\tin/out\t0.30\t1.07200\t20",
        "2023.01.02 12:00:00\t3\tEURUSD\tbuy\tout\t0.20\t1.07100\t21",
    ]
    p = tmp_path / "rev.tsv"
    p.write_text("\n".join(rows) + "\n")
    res = import_mt5_deals(p)
    assert res.unmatched == 0
    assert as_tuples(res.deals) == [
        (t("09:00"), "buy", 0.10, 1.07000, t("10:00"), 1.07200, 20.0),  # all its profit
        (t("10:00"), "sell", 0.20, 1.07200, t("12:00"), 1.07100, 21.0),
    ]


def test_actions_from_signals_fixture():
    deals = import_signals_csv(FIX / "deals_signals.csv").deals
    got = realorl_actions(deals, BAR_TIMES, BID, ASK)
    np.testing.assert_allclose(got, ACTIONS_SIGNALS, atol=1e-9)


def test_actions_from_fifo_paired_mt5_fixture():
    deals = import_mt5_deals(FIX / "deals_mt5.csv").deals
    got = realorl_actions(deals, BAR_TIMES, BID, ASK)
    want = ACTIONS_SIGNALS.copy()
    # sells now: 14:30-15:50 loss (SL 1.0775), 15:10-15:50 loss (SL 1.0775), 15:10-16:45 win
    want[6] = [0, 0, 0, 0.05, 0.00, 0.15]
    want[7] = [0, 0, 0, 0.15, 0.30, 0.05]
    want[8] = [0, 0, 0, 0.05, 0.40, 0.00]
    np.testing.assert_allclose(got, want, atol=1e-9)


def test_tp_behind_price_and_custom_scale():
    # a winning buy whose TP (close) is already below the ask: (TP - Ask) < 0 -> a1 stays 0
    d = HistDeal(t("08:30"), "buy", 0.5, "EURUSD", 1.06000, t("10:30"), 1.06500, 25.0)
    got = realorl_actions([d], BAR_TIMES, BID, ASK, point=1e-5, max_points=500)
    assert got[0].tolist() == [0.5, 0.0, 0.0, 0.0, 0.0, 0.0]  # 1.065 - 1.0701 < 0
    assert got[3].tolist() == [0.0] * 6  # closed 10:30 -> held on 08:00, 09:00, 10:00 only
    np.testing.assert_allclose(got[:3, 0], 0.5)
    assert d.take_profit == 1.065 and d.stop_loss == 0.0


def test_bad_bar_arrays():
    with pytest.raises(ValueError, match="strictly increasing"):
        realorl_actions([], BAR_TIMES[::-1], BID, ASK)


SIGNAL_GOOD = "2023.01.02 09:20:00;Buy;0.10;EURUSD;1.07100;1.00;2023.01.02 12:30:00;1.07500;0;0;40"


@pytest.mark.parametrize(
    "line, field",
    [
        (SIGNAL_GOOD.replace(";40", ""), "field count"),
        (SIGNAL_GOOD.replace("2023.01.02 12:30:00", "2023.13.02 12:30:00"), "close time"),
        (SIGNAL_GOOD.replace("1.07500", "1,07x"), "close price"),
        (SIGNAL_GOOD.replace("Buy", "Balance"), "type"),
        (SIGNAL_GOOD.replace(";0.10;", ";-0.10;"), "volume"),
    ],
)
def test_signals_csv_malformed(tmp_path, line, field):
    p = tmp_path / "bad.csv"
    p.write_text(SIGNAL_GOOD + "\n" + line + "\n")
    with pytest.raises(NeurofxError) as exc:
        import_signals_csv(p)
    msg = str(exc.value)
    assert "\n" not in msg
    assert f"{p}, line 2, field '{field}'" in msg


def test_mt5_and_neurofx_malformed(tmp_path):
    p = tmp_path / "mt5.csv"
    text = (FIX / "deals_mt5.csv").read_text()
    p.write_text(text.replace("Sell,Out,0.10", "Sell,Sideways,0.10"))
    with pytest.raises(NeurofxError, match=r"line 6, field 'Direction'"):
        import_mt5_deals(p)
    p.write_text(text.replace("Direction,", "Dir,"))
    with pytest.raises(NeurofxError, match=r"line 1, field 'direction': column missing"):
        import_mt5_deals(p)
    q = tmp_path / "deals.csv"
    text = (FIX / "deals_neurofx.csv").read_text()
    q.write_text(text.replace(",tp,1672651200,", ",tp,yesterday,"))
    with pytest.raises(NeurofxError, match=r"deals.csv, line 5, field 'entry_time'"):
        import_neurofx_deals(q)
    q.write_text(text.replace("EURUSD,sell,out,0.10", "EURUSD,buy,out,0.10"))
    with pytest.raises(NeurofxError, match=r"line 5, field 'side'"):
        import_neurofx_deals(q)
