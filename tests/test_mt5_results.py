"""`neurofx report --mt5`: neurofx's statistics of an MT5 Trade History Report's deals against
the report's Results section. The fixture's Results were worked out by hand from MT5's rules
(tests/fixtures/mt5/make_fixtures.py, comment above RESULTS), not from neurofx's output."""

import json
from pathlib import Path

import pytest

from neurofx.cli import main
from neurofx.collectors.mt5_report import ReportDeal, TradeHistoryReport, deals_of_report
from neurofx.config import load_config
from neurofx.errors import NeurofxError
from neurofx.pipeline.report import compare_mt5_report as compare_report
from neurofx.pipeline.report import run_mt5_comparison
from neurofx.reports.mt5_results import FIELDS, agrees, numbers_in

MT5 = Path(__file__).parent / "fixtures" / "mt5"
XLSX = MT5 / "ReportHistory-51234567.xlsx"
HTML = MT5 / "ReportHistory-51234567.html"


@pytest.mark.parametrize("path", [XLSX, HTML], ids=["xlsx", "html"])
def test_every_results_field_agrees(path):
    c = compare_report(path)
    assert c.deposit_usd == 1000.0
    assert (c.compared, c.differing) == (len(FIELDS), 0) == (25, 0)
    ours = {f.label: f.values for f in c.fields}
    # a few of the hand-computed values, unrounded
    assert ours["Total Net Profit"] == pytest.approx((49.45,))
    assert ours["Profit Trades (% of total)"] == pytest.approx((7, 700 / 11))  # the 0.00 counts
    assert ours["Average profit trade"] == pytest.approx((96.90 / 7,))
    assert ours["Balance Drawdown Maximal"] == pytest.approx((28.40, 28.40 / 1063.85 * 100))
    assert ours["Sharpe Ratio"][0] == pytest.approx(0.2325, abs=5e-5)
    assert ours["Average consecutive wins"] == (2.0,)  # 1.75 shown rounded
    assert ours["Average consecutive losses"] == (1.0,)  # 1.33
    lines = c.lines()
    assert lines[-1] == "0 of 25 fields differ"
    assert "average consecutive wins/losses unrounded: 1.75 / 1.33" in lines[-2]
    assert not any("differs" in ln for ln in lines)


def _edited_report(tmp_path, *pairs) -> Path:
    text = HTML.read_bytes().decode("utf-16")
    for old, new in pairs:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    p = tmp_path / "edited.html"
    p.write_bytes(text.encode("utf-16"))
    return p


def test_differences_are_marked_and_counted(tmp_path, capsys):
    # the sample-std Sharpe (0.22) and the old "zero is not a win" count (6, 54.55 %)
    p = _edited_report(tmp_path, ("<td nowrap>0.23</td>", "<td nowrap>0.22</td>"),
                       ("<td nowrap>7 (63.64%)</td>", "<td nowrap>6 (54.55%)</td>"))
    c = compare_report(p)
    assert [f.label for f in c.fields if f.differs] == ["Sharpe Ratio",
                                                         "Profit Trades (% of total)"]
    lines = c.lines()
    assert lines[-1] == "2 of 25 fields differ"
    sharpe = next(ln for ln in lines if ln.startswith("Sharpe Ratio"))
    assert sharpe.split() == ["Sharpe", "Ratio", "0.23", "0.22", "<-", "differs"]
    result = run_mt5_comparison(load_config(), p, tmp_path / "out")
    out = result.lines()
    assert out[0] == f"report: {tmp_path / 'out' / 'mt5_comparison.txt'}"
    assert out[-1] == "2 of 25 fields differ"
    saved = (tmp_path / "out" / "mt5_comparison.txt").read_text().splitlines()
    assert saved == out[1:]
    doc = json.loads((tmp_path / "out" / "mt5_comparison.json").read_text())
    assert (doc["compared"], doc["differ"]) == (25, 2)
    assert [f["label"] for f in doc["fields"] if f["differs"]] == [
        "Sharpe Ratio", "Profit Trades (% of total)"]


def test_a_field_missing_from_the_report_is_not_compared(tmp_path):
    p = _edited_report(tmp_path, ("Sharpe Ratio:", "Sharp Ratio:"))
    c = compare_report(p)
    assert (c.compared, c.differing) == (24, 0)
    assert next(f for f in c.fields if f.label == "Sharpe Ratio").mt5 == ""


def test_number_matching():
    assert numbers_in("1 028.40 (2.67%)") == [(1028.4, 2), (2.67, 2)]
    assert numbers_in("-28.40 (2)") == [(-28.4, 2), (2.0, 0)]
    assert agrees(0.2325, 0.23, 2) and not agrees(0.2325, 0.22, 2)
    assert agrees(1.75, 2.0, 0) and not agrees(1.4, 2.0, 0)
    assert agrees(0.125, 0.13, 2)  # half a cent either way
    assert not agrees(float("nan"), 0.0, 2)


def _deal(n, typ, direction, volume, profit=0.0, symbol="EURUSD", commission=0.0):
    return ReportDeal(n, 1_672_700_000 + 60 * n, n, symbol if typ != "balance" else "", typ,
                      direction, volume, 1.07 if volume else 0.0, commission, 0.0, 0.0, profit,
                      0.0, "")


def test_deals_of_report_splits_a_reversal():
    rep = TradeHistoryReport("r.html", [
        _deal(1, "balance", "", 0.0, 500.0),
        _deal(2, "buy", "in", 0.1, commission=-0.35),
        _deal(3, "sell", "in/out", 0.3, 20.0, commission=-1.05),  # closes 0.1, opens 0.2 short
        _deal(4, "buy", "out", 0.2, -5.0),
        _deal(5, "balance", "", 0.0, -100.0),
    ], None)
    rd = deals_of_report(rep)
    assert rd.deposit_usd == 500.0 and rd.later_balance_ops == 1
    got = [(d.ticket, d.side, d.entry, d.volume, d.profit, d.commission, d.position_id)
           for d in rd.deals]
    assert got == [(1, "buy", "in", 0.1, 0.0, -0.35, 2),
                   (2, "sell", "out", pytest.approx(0.1), 20.0, -1.05, 2),
                   (3, "sell", "in", pytest.approx(0.2), 0.0, 0.0, 3),
                   (4, "buy", "out", 0.2, -5.0, 0.0, 3)]


def test_report_without_results_or_deposit_is_an_error(tmp_path):
    text = HTML.read_bytes().decode("utf-16")
    cut = text.rindex("<tr", 0, text.index("<b>Results</b>"))
    p = tmp_path / "noresults.html"
    p.write_bytes((text[:cut] + "</table></body></html>").encode("utf-16"))
    with pytest.raises(NeurofxError, match="noresults.html: no Results section"):
        compare_report(p)
    with pytest.raises(NeurofxError, match="no deposit"):
        deals_of_report(TradeHistoryReport("x.html", [_deal(1, "buy", "in", 0.1)], None))


def test_report_command_mt5(tmp_path, capsys):
    rc = main(["report", "--mt5", str(XLSX), "--set", f"runs.root={str(tmp_path)!r}"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    lines = out.splitlines()
    folder = tmp_path / "mt5" / "ReportHistory-51234567"
    assert lines[0] == f"report: {folder / 'mt5_comparison.txt'}"
    assert lines[-1] == "0 of 25 fields differ"
    assert (folder / "mt5_comparison.json").is_file()
    rc = main(["report", "--mt5", str(tmp_path / "nope.xlsx")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "nope.xlsx: report file not found" in err[0]
