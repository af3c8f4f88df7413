"""Real-ORL on real MT5 / MQL5 exports: the MQL5 Signals history CSV (13 fields) and the MT5
Trade History Report (.xlsx, .html), format detection, the server-time shift, the price-fit
check and deals outside the bar file. Fixtures: tests/fixtures/mt5/ (make_fixtures.py)."""

import calendar
from pathlib import Path

import numpy as np
import pytest

from neurofx.collectors.deal_files import (
    detect_deal_format,
    load_deal_file,
    price_misfits,
    shift_deals,
)
from neurofx.collectors.mt5_report import (
    import_mt5_report,
    label_values,
    read_grid,
    read_trade_history_report,
)
from neurofx.collectors.realorl import import_signals_csv
from neurofx.errors import NeurofxError

MT5 = Path(__file__).parent / "fixtures" / "mt5"
XLSX = MT5 / "ReportHistory-51234567.xlsx"
HTML = MT5 / "ReportHistory-51234567.html"
SIGNALS = MT5 / "signals_history.csv"


def ts(text: str) -> int:
    """'01-03 04:20' (2023) or a full 'YYYY-MM-DD HH:MM' -> Unix seconds of that naive time."""
    if len(text) == 11:
        text = "2023-" + text
    y, mo, d = map(int, text[:10].split("-"))
    h, mi = map(int, text[11:].split(":"))
    return calendar.timegm((y, mo, d, h, mi, 0))


def as_rows(deals):
    return [(d.open_time, d.side, d.volume, d.open_price, d.close_time, d.close_price,
             round(d.profit, 2)) for d in deals]


# the EURUSD positions of the report, in order of opening (make_fixtures.POSITIONS)
REPORT_TRADES = [
    (ts("01-03 03:10"), "buy", 0.10, 1.06720, ts("01-03 05:30"), 1.06760, 4.0),
    (ts("01-03 04:20"), "buy", 0.10, 1.06600, ts("01-03 04:50"), 1.06700, 10.0),
    (ts("01-03 07:15"), "sell", 0.10, 1.06650, ts("01-03 08:40"), 1.06570, 8.0),
    (ts("01-03 09:05"), "buy", 0.05, 1.06550, ts("01-03 09:45"), 1.06250, -15.0),
    (ts("01-03 10:10"), "sell", 0.10, 1.06200, ts("01-03 10:55"), 1.05600, 60.0),
    (ts("01-03 11:10"), "buy", 0.10, 1.05400, ts("01-03 11:40"), 1.05407, 0.7),
    (ts("01-03 15:10"), "sell", 0.10, 1.05400, ts("01-03 16:30"), 1.05600, -20.0),
    (ts("01-03 17:10"), "sell", 0.05, 1.05800, ts("01-04 02:30"), 1.05500, 15.0),
    (ts("01-04 03:10"), "buy", 0.10, 1.05680, ts("01-04 05:20"), 1.05650, -3.0),
    (ts("01-04 06:05"), "sell", 0.10, 1.05720, ts("01-04 06:30"), 1.05680, 4.0),
]


# ---- MQL5 Signals history ------------------------------------------------------------------
SIGNAL_TRADES = [
    (ts("2022-08-31 10:30"), "buy", 0.20, 1.00100, ts("2022-08-31 12:40"), 0.99900, -40.0),
    REPORT_TRADES[0], REPORT_TRADES[1],
    (ts("01-03 10:10"), "sell", 2.00, 1.06200, ts("01-03 10:55"), 1.05600, 1200.0),  # '1 200.00'
    REPORT_TRADES[6], REPORT_TRADES[7], REPORT_TRADES[8], REPORT_TRADES[9],
]


def test_signals_history_fixture_has_the_real_quirks():
    raw = SIGNALS.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw  # BOM, CRLF
    text = raw.decode("utf-8-sig")
    assert text.splitlines()[0].count(";") == 12  # 13 fields
    assert "1 200.00" in text and "15 000.00" in text and ";Sell Limit;" in text


def test_signals_history_import():
    res = import_signals_csv(SIGNALS)
    assert res.skipped_symbols == 1  # the GBPUSD trade
    assert res.not_trades == 3  # deposit, withdrawal, the never-filled Sell Limit
    assert res.unmatched == 0
    assert as_rows(res.deals) == SIGNAL_TRADES  # newest-first file -> oldest first
    assert [d.symbol for d in res.deals] == ["EURUSD"] * 8


def test_signals_history_with_lf_and_no_bom_reads_the_same(tmp_path):
    p = tmp_path / "lf.csv"
    p.write_text(SIGNALS.read_text(encoding="utf-8-sig").replace("\r\n", "\n"), "utf-8")
    assert as_rows(import_signals_csv(p).deals) == SIGNAL_TRADES
    # without the header the field count of the first row picks the layout
    q = tmp_path / "nohead.csv"
    q.write_text("\n".join(p.read_text().splitlines()[1:]) + "\n")
    assert as_rows(import_signals_csv(q).deals) == SIGNAL_TRADES


GOOD13 = ("2023.01.03 04:20:00;Buy;0.10;EURUSD;1.06600;;1.06700;2023.01.03 04:50:00;1.06700;"
          "-0.70;;10.00;[tp]")


@pytest.mark.parametrize("line, field", [
    (GOOD13.replace(";Buy;", ";Hold;"), "type"),
    (GOOD13.replace(";0.10;", ";;"), "volume"),
    (GOOD13.replace(";10.00;", ";1O.00;"), "profit"),
    (GOOD13.replace("2023.01.03 04:50:00", "2023.01.03 03:50:00"), "close time"),
    (";".join(GOOD13.split(";")[:9]), "field count"),
])
def test_signals_history_malformed(tmp_path, line, field):
    p = tmp_path / "bad.csv"
    head = "Time;Type;Volume;Symbol;Price;S/L;T/P;Time;Price;Commission;Swap;Profit;Comment"
    p.write_text(f"{head}\n{GOOD13}\n{line}\n")
    with pytest.raises(NeurofxError) as exc:
        import_signals_csv(p)
    assert f"{p}, line 3, field '{field}'" in str(exc.value) and "\n" not in str(exc.value)


# ---- MT5 Trade History Report ----------------------------------------------------------------
@pytest.mark.parametrize("path", [XLSX, HTML], ids=["xlsx", "html"])
def test_report_trades_come_from_the_positions_table(path):
    res = import_mt5_report(path)
    # hedging: 04:20 buy opened while the 03:10 one was open and closed first (04:50); the
    # Positions table keeps 03:10 -> 05:30 and 04:20 -> 04:50
    assert as_rows(res.deals) == REPORT_TRADES
    assert res.skipped_symbols == 1  # the GBPUSD position
    assert res.unmatched == 1  # the 0.01 buy in Open Positions
    assert res.not_trades == 1  # the deposit


@pytest.mark.parametrize("path", [XLSX, HTML], ids=["xlsx", "html"])
def test_report_tables(path):
    rep = read_trade_history_report(path)
    assert len(rep.positions) == 11 and len(rep.open_positions) == 1
    # deposit + 11 positions x (in, out) + the open position's in deal; the totals row skipped
    assert len(rep.deals) == 24
    first = rep.deals[0]
    assert (first.type, first.symbol, first.profit, first.balance) == ("balance", "", 1000.0,
                                                                       1000.0)
    assert rep.deals[-1].balance == 1049.45 and rep.deals[-1].volume == 0.01
    assert {d.symbol for d in rep.deals if d.is_trade} == {"EURUSD", "GBPUSD"}
    assert sum(d.direction == "out" for d in rep.deals) == 11
    # Orders: text volumes 'requested / filled'; the Sell Limit never filled
    assert len(rep.orders) == 24
    limit = [o for o in rep.orders if o.type == "sell limit"]
    assert [(o.volume, o.filled, o.state) for o in limit] == [(0.10, 0.0, "canceled")]
    assert rep.summary["equity"].replace(" ", "") == "1049.47"
    assert rep.results["total net profit"] == "49.45"


def test_report_files_have_the_real_quirks():
    grid = read_grid(XLSX)
    assert any(c.startswith("=SUM(") for row in grid for c in row)  # formula totals row
    assert any(c == "0.10 / 0.10" for row in grid for c in row)  # text volumes
    raw = HTML.read_bytes()
    assert raw.startswith(b"\xff\xfe")  # UTF-16 with a BOM, as MT5 writes it
    text = raw.decode("utf-16")
    assert 'class="hidden"' in text and "1 049.45" in text


def test_report_without_positions_pairs_deals_fifo(tmp_path):
    text = HTML.read_bytes().decode("utf-16")
    start = text.index("<b>Positions</b>")
    start = text.rindex("<tr", 0, start)
    end = text.rindex("<tr", 0, text.index("<b>Orders</b>"))
    p = tmp_path / "netting.html"
    p.write_bytes((text[:start] + text[end:]).encode("utf-16"))
    res = import_mt5_report(p)
    assert res.skipped_symbols == 2 and res.unmatched == 1  # GBPUSD in + out; the open buy
    # first in, first out: the 04:50 close takes the 03:10 buy (a mis-pairing on a hedging
    # account, which is why the Positions table wins where it exists)
    rows = as_rows(res.deals)
    assert rows[:2] == [(ts("01-03 03:10"), "buy", 0.10, 1.06720, ts("01-03 04:50"), 1.06700, 10.0),
                        (ts("01-03 04:20"), "buy", 0.10, 1.06600, ts("01-03 05:30"), 1.06760, 4.0)]
    assert rows[2:] == REPORT_TRADES[2:]


def test_report_errors_name_the_file_and_row(tmp_path):
    text = HTML.read_bytes().decode("utf-16")
    bad = tmp_path / "bad.html"
    bad.write_bytes(text.replace(">1.06650<", ">1,O6650<", 1).encode("utf-16"))
    with pytest.raises(NeurofxError, match=r"bad.html, row \d+, field 'price': '1,O6650'"):
        read_trade_history_report(bad)
    other = tmp_path / "other.html"
    other.write_text("<html><table><tr><td>hello</td></tr></table></html>")
    with pytest.raises(NeurofxError, match="not an MT5 Trade History Report"):
        import_mt5_report(other)


def test_results_labels_split_over_cells():
    rows = [(1, ["Largest", "profit trade:", "59.30", "loss trade:", "-20.70"]),
            (2, ["Balance Drawdown:", "", "Sharpe Ratio:", "0.23"])]
    assert label_values(rows) == {"largest profit trade": "59.30",
                                  "largest loss trade": "-20.70", "sharpe ratio": "0.23"}


def test_detect_format():
    fix = MT5.parent
    assert [detect_deal_format(p) for p in (SIGNALS, XLSX, HTML, fix / "deals_signals.csv",
                                            fix / "deals_mt5.csv", fix / "deals_neurofx.csv")] \
        == ["signals", "mt5-report", "mt5-report", "signals", "mt5", "neurofx"]


# ---- shift, price fit, bar-file range ------------------------------------------------------
class Bars:
    """Three H1 bid bars from 2023-01-03 04:00 (the bundled bars' values)."""

    time_s = np.array([ts("01-03 04:00"), ts("01-03 05:00"), ts("01-03 06:00")])
    high = np.array([1.06778, 1.06784, 1.06802])
    low = np.array([1.06575, 1.06687, 1.06668])
    spread_points = np.array([1.0, 0.0, 0.0])


def test_price_fit_by_hand():
    deal = import_mt5_report(HTML).deals[1]  # buy 04:20 @ 1.06600 -> 04:50 @ 1.06700
    assert price_misfits([deal], Bars) == 0  # both prices inside bar 04:00 [1.06575, 1.06778]
    # one hour later the open 1.06600 is 87 points under bar 05:00's low 1.06687: outside
    # the tolerance of 10 points; a tolerance of 90 would take it, one of 85 not
    later = shift_deals([deal], 1)
    assert later[0].open_time == deal.open_time + 3600
    assert price_misfits(later, Bars) == 1
    assert price_misfits(later, Bars, tolerance_points=90) == 0
    assert price_misfits(later, Bars, tolerance_points=85) == 1
    # a time without a bar (after 06:59) never fits
    assert price_misfits(shift_deals([deal], 3), Bars) == 1


@pytest.fixture(scope="module")
def bundled():
    from neurofx.data import load_bars
    from neurofx.strategies.feeds import BarArrays

    return BarArrays.from_frame(load_bars())


@pytest.mark.parametrize("path, trades", [(XLSX, 10), (HTML, 10), (SIGNALS, 8)],
                         ids=["xlsx", "html", "signals"])
def test_prices_fit_the_bundled_bars_only_at_the_right_time(bundled, path, trades):
    ok = load_deal_file(path, "EURUSD", bundled, 0.0, 1e-5, 5)
    assert len(ok.deals) == trades and len(ok.notes) == 1  # the import summary only
    assert ok.notes[0].startswith(f"{path.name}: {trades} EURUSD trades")
    wrong = load_deal_file(path, "EURUSD", bundled, 5.0, 1e-5, 5)
    assert wrong.deals[0].open_time == ok.deals[0].open_time + 5 * 3600
    assert len(wrong.notes) == 2 and "\n" not in wrong.notes[1]
    assert wrong.notes[1].startswith(f"{path.name}: {trades} of {trades} trades have prices "
                                     "outside the bars' high-low range")
    assert "--deals-shift-hours" in wrong.notes[1]


def test_deals_partly_outside_the_bar_file(bundled):
    keep = (bundled.time_s >= ts("2022-09-01 00:00")) & (bundled.time_s < ts("2023-04-01 00:00"))
    trimmed = type(bundled)(**{k: v[keep] for k, v in bundled.__dict__.items()})
    got = load_deal_file(SIGNALS, "EURUSD", trimmed, 0.0, 1e-5, 5)
    assert as_rows(got.deals) == SIGNAL_TRADES[1:]  # the 2022-08-31 trade is dropped
    assert got.notes[1] == ("signals_history.csv: dropped 1 of 8 trades outside the bar file "
                            "(2022-09-01 00:00 to 2023-03-31 23:00); kept 7")
    early = type(bundled)(**{k: v[bundled.time_s < ts("2022-01-01 00:00")]
                             for k, v in bundled.__dict__.items()})
    with pytest.raises(NeurofxError, match="none of its 8 EURUSD trades lies inside the bar "
                                           "file"):
        load_deal_file(SIGNALS, "EURUSD", early)


# ---- research end to end ---------------------------------------------------------------------
def _research(tmp_path, bars_file, store, *extra):
    """`neurofx research` through its command module (flags parsed as the CLI does)."""
    import argparse

    from neurofx.commands import research as command

    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    args = parser.parse_args([
        "--policy", "real-orl", "--start", "2023-01-03", "--end", "2023-01-05", "--jobs", "1",
        "--store", str(store), "--set", f'runs.root="{tmp_path / "runs"}"',
        "--set", f'data.file="{bars_file}"', "--deals", str(XLSX), str(HTML), str(SIGNALS),
        *extra])
    return command.run(args)


def test_research_real_orl_on_each_layout(tmp_path, capsys):
    from neurofx.collectors.store import TrajectoryStore
    from neurofx.data import load_bars

    bars_file = tmp_path / "eurusd_h1_trim.csv"
    load_bars().loc["2022-09-01":"2023-03-31"].to_csv(bars_file)
    assert _research(tmp_path, bars_file, tmp_path / "s") == 0
    out, err = capsys.readouterr()
    assert "passes 3: kept 3" in out
    assert "signals_history.csv: dropped 1 of 8 trades outside the bar file" in err
    assert "high-low range" not in err  # the stated times fit the bars
    store = TrajectoryStore.open(tmp_path / "s")
    trajs = [store.load(i) for i in range(3)]
    assert [t.extra["deals_file"] for t in trajs] == [XLSX.name, HTML.name, SIGNALS.name]
    assert all(t.steps == 48 for t in trajs)  # two days of H1 bars
    np.testing.assert_array_equal(trajs[0].actions, trajs[1].actions)  # one report, two files
    # bar 04:00 of 2023-01-03 (step 4) holds the 03:10 and 04:20 buys: 0.2 lots
    assert trajs[0].actions[4, 0] == pytest.approx(0.2)
    # a wrong server-time offset is reported per file, one line each
    assert _research(tmp_path, bars_file, tmp_path / "s5", "--deals-shift-hours", "5") == 0
    err = capsys.readouterr().err.splitlines()
    warned = [ln for ln in err if "high-low range" in ln]
    assert [ln.split(": ")[1] for ln in warned] == [XLSX.name, HTML.name, SIGNALS.name]
    assert "10 of 10 trades" in warned[0] and "7 of 7 trades" in warned[2]
