"""HTML report, run files and comparison on a synthetic run (matplotlib Agg only)."""

from __future__ import annotations

import base64
import json
import math
import re
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from neurofx.atomic import json_safe
from neurofx.deals import Deal, read_deals_csv
from neurofx.errors import NeurofxError
from neurofx.reports.html import (
    COMPARISON_JSON,
    format_metric,
    write_comparison,
    write_report,
)
from neurofx.reports.io import load_run, read_metrics, read_trades_csv
from neurofx.reports.metrics import METRIC_FIELDS, compute_metrics

H = 3600
D0 = 1704067200  # 2024-01-01 00:00 UTC, a Monday
DEPOSIT = 5000.0
# (position, direction, entry bar, exit bar, profit); every deal pays 0.5 commission, so
# nets are 24, -13, 39, -7.5: net profit 42.5, gross profit 63, gross loss -20.5
TRIPS = [(1, "long", 2, 5, 25.0), (2, "short", 8, 12, -12.0), (3, "long", 26, 30, 40.0),
         (4, "short", 33, 40, -6.5)]
N_BARS = 48


def synthetic_run(trips=TRIPS, n_bars=N_BARS):
    """Deals plus a per-bar record whose equity moves linearly towards each trade's profit."""
    times = D0 + H * np.arange(n_bars)
    cash = np.zeros(n_bars)
    floating = np.zeros(n_bars)
    margin = np.full(n_bars, np.inf)
    deals, excursions, ticket = [], {}, 1
    for pid, direction, i, j, profit in trips:
        side_in, side_out = ("buy", "sell") if direction == "long" else ("sell", "buy")
        t_in, t_out = int(times[i]), int(times[j])
        deals.append(Deal(ticket, t_in, "EURUSD", side_in, "in", 0.1, 1.1, -0.5, 0.0, 0.0, pid,
                          "agent", t_in, 1.1))
        deals.append(Deal(ticket + 1, t_out, "EURUSD", side_out, "out", 0.1, 1.101, -0.5, 0.0,
                          profit, pid, "tp" if profit > 0 else "sl", t_in, 1.1))
        excursions[ticket + 1] = (max(profit, 0.0) + 3.0, min(profit, 0.0) - 2.0)
        cash[i] -= 0.5
        cash[j] += profit - 0.5
        floating[i:j] = profit * np.arange(j - i) / (j - i)
        margin[i:j] = 4000.0 + 10 * np.arange(j - i)
        ticket += 2
    balance = DEPOSIT + np.cumsum(cash)
    series = {"time": times, "balance": balance, "equity": balance + floating,
              "margin_level": margin}
    return deals, series, excursions


class Cells(HTMLParser):
    """Collect <td id=...> cells (data-value, text) and every src/href attribute."""

    def __init__(self):
        super().__init__()
        self.cells, self.refs, self._open = {}, [], None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.refs += [v for k, v in attrs if k in ("src", "href")]
        if tag == "td" and "id" in a:
            self._open = a["id"]
            self.cells[a["id"]] = [a.get("data-value"), ""]

    def handle_data(self, data):
        if self._open:
            self.cells[self._open][1] += data

    def handle_endtag(self, tag):
        if tag == "td":
            self._open = None


def parse(html: str) -> Cells:
    p = Cells()
    p.feed(html)
    return p


def assert_self_contained(html: str, n_images: int):
    p = parse(html)
    assert len(p.refs) == n_images
    for ref in p.refs:
        assert ref.startswith("data:image/png;base64,")
        assert base64.b64decode(ref.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert not re.search(r"https?:|<link|<script|url\(|@import", html)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("run")
    deals, series, exc = synthetic_run()
    path = write_report(d, deals, series, DEPOSIT, "Synthetic <run>", {"optimizer": "adam",
                        "lr": 3e-4}, excursions=exc)
    assert path == d / "report.html"
    return d


def test_files_written(run_dir):
    names = {p.name for p in run_dir.iterdir()}
    assert names == {"report.html", "metrics.json", "trades.csv", "deals.csv", "series.npz",
                     "equity.png", "pnl_by_time.png", "mfe_mae.png"}
    png = (run_dir / "equity.png").read_bytes()
    # IHDR width/height: an 11 x 6.5 inch figure at 100 dpi
    assert (int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")) == (1100, 650)


def test_html_is_self_contained(run_dir):
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    assert_self_contained(html, n_images=3)  # equity, P/L by time, MFE/MAE
    assert "<title>Synthetic &lt;run&gt;</title>" in html


def test_html_values_equal_metrics(run_dir):
    cells = parse((run_dir / "report.html").read_text(encoding="utf-8")).cells
    m = read_metrics(run_dir / "metrics.json").metrics
    for name in METRIC_FIELDS:
        data, text = cells[f"m-{name}"]
        assert json.loads(data) == json_safe(getattr(m, name)), name
        assert text == format_metric(name, getattr(m, name)), name
    # by hand: 24 - 13 + 39 - 7.5, 63 / 20.5, 4 trades, 5000 + 42.5
    assert cells["m-total_net_profit_usd"][1] == "42.50"
    assert cells["m-profit_factor"][1] == "3.07"
    assert cells["m-total_trades"][1] == "4"
    assert cells["m-final_balance_usd"][1] == "5,042.50"
    assert cells["m-first_bar_time_s"][1] == "2024-01-01 00:00"


def test_final_balance_is_deposit_plus_deal_cash(run_dir):
    deals, _, _ = synthetic_run()
    cash = sum(d.profit + d.commission + d.swap for d in deals)
    m = read_metrics(run_dir / "metrics.json").metrics
    assert cash == pytest.approx(42.5)
    assert m.final_balance_usd == pytest.approx(DEPOSIT + cash, abs=1e-9)
    assert m.total_net_profit_usd == pytest.approx(42.5)


def test_metrics_json_round_trips(run_dir):
    deals, series, _ = synthetic_run()
    want = compute_metrics(deals, series, DEPOSIT).as_dict()
    mf = read_metrics(run_dir / "metrics.json")
    assert mf.title == "Synthetic <run>" and mf.extra == {"optimizer": "adam", "lr": 3e-4}
    got = mf.metrics.as_dict()
    assert got.keys() == want.keys()
    for k, v in want.items():
        assert (isinstance(v, float) and math.isnan(v) and math.isnan(got[k])) or got[k] == v, k
        assert type(got[k]) is type(v), k


def test_trades_and_deals_csv_round_trip(run_dir):
    deals, _, exc = synthetic_run()
    assert read_deals_csv(run_dir / "deals.csv") == deals
    t = read_trades_csv(run_dir / "trades.csv")
    np.testing.assert_array_equal(t.net_usd, [24.0, -13.0, 39.0, -7.5])
    np.testing.assert_array_equal(t.direction, [1, -1, 1, -1])
    np.testing.assert_array_equal(t.holding_hours, [3.0, 4.0, 4.0, 7.0])
    np.testing.assert_array_equal(t.reason, ["tp", "sl", "tp", "sl"])
    assert t.excursions() == exc


def test_load_run_regenerates_identical_metrics(run_dir, tmp_path):
    run = load_run(run_dir)
    write_report(tmp_path, run.deals, run.series, run.metrics.initial_deposit_usd, run.title,
                 run.extra, excursions=run.trades.excursions())
    assert ((tmp_path / "metrics.json").read_text() == (run_dir / "metrics.json").read_text())
    assert (tmp_path / "trades.csv").read_text() == (run_dir / "trades.csv").read_text()


def test_all_wins_json_safe(tmp_path):
    deals, series, _ = synthetic_run([(1, "long", 2, 5, 25.0), (2, "long", 8, 9, 5.0)], 12)
    write_report(tmp_path, deals, series, DEPOSIT, "wins")
    text = (tmp_path / "metrics.json").read_text()

    def reject(const):
        raise AssertionError(f"non-standard JSON constant {const}")

    raw = json.loads(text, parse_constant=reject)["metrics"]
    assert raw["profit_factor"] == "inf" and raw["z_score"] is None
    m = read_metrics(tmp_path / "metrics.json").metrics
    assert m.profit_factor == math.inf and math.isnan(m.largest_loss_trade_usd)
    cells = parse((tmp_path / "report.html").read_text(encoding="utf-8")).cells
    assert cells["m-profit_factor"] == ['"inf"', "inf"]
    assert cells["m-z_score"] == ["null", "n/a"]
    assert not (tmp_path / "mfe_mae.png").exists()  # no excursions recorded


def test_report_without_trades(tmp_path):
    series = {"time": D0 + H * np.arange(5), "balance": [DEPOSIT] * 5, "equity": [DEPOSIT] * 5}
    html = write_report(tmp_path, [], series, DEPOSIT, "idle").read_text(encoding="utf-8")
    assert_self_contained(html, n_images=1)
    assert "No trades." in html
    assert read_trades_csv(tmp_path / "trades.csv").net_usd.shape == (0,)


def test_comparison(run_dir, tmp_path):
    deals, series, _ = synthetic_run(TRIPS[:2], 20)  # nets 24 and -13: net profit 11
    other = write_report(tmp_path / "b", deals, series, DEPOSIT, "Synthetic <run>").parent
    path = write_comparison(tmp_path / "cmp", [run_dir, other])
    html = path.read_text(encoding="utf-8")
    assert_self_contained(html, n_images=1)
    assert (tmp_path / "cmp" / "equity_overlay.png").exists()
    cells = parse(html).cells
    assert cells["r0-total_net_profit_usd"][1] == "42.50"
    assert cells["r1-total_net_profit_usd"][1] == "11.00"
    assert cells["d1-total_net_profit_usd"][1] == "-31.50"  # 11 - 42.5
    assert cells["d1-total_trades"][1] == "-2"
    assert "Synthetic &lt;run&gt; (2)" in html  # same titles get told apart
    doc = json.loads((tmp_path / "cmp" / COMPARISON_JSON).read_text())
    assert doc["differences"][0]["metrics"]["total_net_profit_usd"] == pytest.approx(-31.5)
    assert [r["label"] for r in doc["runs"]] == ["Synthetic <run>", "Synthetic <run> (2)"]


def test_unknown_metrics_version_rejected(run_dir, tmp_path):
    doc = json.loads((run_dir / "metrics.json").read_text())
    doc["version"] = 2
    (tmp_path / "metrics.json").write_text(json.dumps(doc))
    with pytest.raises(NeurofxError, match=r"field 'version' is 2, this neurofx reads version 1"):
        read_metrics(tmp_path / "metrics.json")


def test_bad_files_name_the_line(run_dir, tmp_path):
    lines = (run_dir / "trades.csv").read_text().splitlines()
    lines[2] = lines[2].replace("long", "up").replace("short", "up")
    (tmp_path / "trades.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(NeurofxError, match=r"trades.csv:3: field 'direction' is 'up'"):
        read_trades_csv(tmp_path / "trades.csv")
    with pytest.raises(NeurofxError, match=r"not a run folder"):
        load_run(tmp_path / "missing")
    with pytest.raises(NeurofxError, match=r"comparison: no runs given"):
        write_comparison(tmp_path, [])


# ---------------------------------------------------------------- clock, layout, sections
def _capture_figures(monkeypatch):
    """Record each chart's Figure when it is saved (the charts return only the path)."""
    from neurofx.reports import charts

    figures = {}
    real = charts._save

    def save(fig, path):
        figures[Path(path).name] = fig
        return real(fig, path)

    monkeypatch.setattr(charts, "_save", save)
    return figures


def _xlabels(fig):
    return [ax.get_xlabel() for ax in fig.axes if ax.get_xlabel()]


def test_clock_labels_header_axes_and_metrics_file(tmp_path, monkeypatch):
    figures = _capture_figures(monkeypatch)
    deals, series, exc = synthetic_run()
    clock = "broker time, Europe/Athens"
    html = write_report(tmp_path, deals, series, DEPOSIT, "t", excursions=exc,
                        clock=clock).read_text(encoding="utf-8")
    assert "UTC" not in html
    assert '2024-01-01 00:00 to 2024-01-02 23:00 (broker time, Europe/Athens)' in html
    assert _xlabels(figures["equity.png"]) == [f"time ({clock})"]
    assert _xlabels(figures["pnl_by_time.png"]) == [f"hour of exit ({clock})",
                                                    f"weekday of exit ({clock})"]
    assert json.loads((tmp_path / "metrics.json").read_text())["clock"] == clock
    assert load_run(tmp_path).clock == clock
    # the default is broker time, and a metrics.json from before the field reads as that
    write_report(tmp_path / "d", deals, series, DEPOSIT, "t")
    doc = json.loads((tmp_path / "d" / "metrics.json").read_text())
    assert doc["clock"] == "broker time"
    assert _xlabels(figures["equity.png"]) == ["time (broker time)"]
    del doc["clock"]
    (tmp_path / "d" / "metrics.json").write_text(json.dumps(doc))
    assert read_metrics(tmp_path / "d" / "metrics.json").clock == "broker time"
    doc["clock"] = 3
    (tmp_path / "d" / "metrics.json").write_text(json.dumps(doc))
    with pytest.raises(NeurofxError, match=r"field 'clock' is 3"):
        read_metrics(tmp_path / "d" / "metrics.json")


def test_pnl_hours_and_weekdays_are_on_the_bars_clock(tmp_path, monkeypatch):
    """Exit times are naive bar times: 2024-01-01 23:00 is a Monday at 23 on the bars' clock,
    whatever zone that clock is in (no shift to UTC)."""
    from neurofx.reports.charts import pnl_by_time_chart

    figures = _capture_figures(monkeypatch)
    pnl_by_time_chart([D0 + 23 * H, D0 + 47 * H], [5.0, -2.0], tmp_path / "p.png", "UTC")
    hours, days = figures["p.png"].axes
    heights = [p.get_height() for p in hours.patches]
    assert heights[23] == pytest.approx(3.0) and sum(map(abs, heights[:23])) == 0
    assert [p.get_height() for p in days.patches][:2] == [pytest.approx(5.0),
                                                         pytest.approx(-2.0)]
    assert _xlabels(figures["p.png"]) == ["hour of exit (UTC)", "weekday of exit (UTC)"]


def test_wide_tables_scroll_in_their_own_box(run_dir, tmp_path):
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    assert ".wide{overflow-x:auto;max-width:100%}" in html
    assert "td.wrap{white-space:normal;overflow-wrap:anywhere" in html
    trades = html.index("<h2>Trades</h2>")
    assert html[trades:].startswith('<h2>Trades</h2>\n<div class="wide"><table><tr><th>ticket')
    assert '<h2>Run</h2><div class="wide"><table>' in html
    # a long settings value wraps inside its cell
    extra = {"settings": {"path": "/very/long/" * 30, "lr": 3e-4}}
    deals, series, _ = synthetic_run(TRIPS[:1], 8)
    other = write_report(tmp_path / "b", deals, series, DEPOSIT, "b", extra).parent
    page = write_comparison(tmp_path / "cmp", [run_dir, other]).read_text(encoding="utf-8")
    assert '<h2>Runs</h2><div class="wide"><table>' in page
    assert '<h2>Metrics</h2><div class="wide"><table>' in page
    cell = re.findall(r'<td class="l wrap">([^<]*)</td>', page)
    assert len(cell) == 2 and json.loads(unescape(cell[1])) == json_safe(extra)
    assert ", " in cell[1]  # JSON with spaces: a browser can break the line there
    run_html = (tmp_path / "b" / "report.html").read_text(encoding="utf-8")
    assert '<td class="l">settings</td><td class="l wrap">{&quot;path&quot;: ' in run_html


def test_sections_are_added_after_the_page(run_dir, tmp_path):
    sec = [("Training <1>", '<p id="x">loss</p>'), ("More", "<p>two</p>")]
    page = write_comparison(tmp_path / "c", [run_dir], sections=sec).read_text(encoding="utf-8")
    tail = '<h2>Training &lt;1&gt;</h2>\n<p id="x">loss</p>\n<h2>More</h2>\n<p>two</p>\n</body>'
    assert tail in page and page.index("<h2>Metrics</h2>") < page.index(tail)
    deals, series, _ = synthetic_run()
    html = write_report(tmp_path / "r", deals, series, DEPOSIT, "r", sections=sec[1:]
                        ).read_text(encoding="utf-8")
    assert html.index("<h2>Trades</h2>") < html.index("<h2>More</h2>\n<p>two</p>\n</body>")


def test_comparison_clock(run_dir, tmp_path, monkeypatch):
    figures = _capture_figures(monkeypatch)
    deals, series, _ = synthetic_run(TRIPS[:1], 8)
    utc = write_report(tmp_path / "u", deals, series, DEPOSIT, "u", clock="UTC").parent
    same = write_report(tmp_path / "v", deals, series, DEPOSIT, "v", clock="UTC").parent
    page = write_comparison(tmp_path / "c1", [utc, same]).read_text(encoding="utf-8")
    assert "2 runs, times in UTC." in page
    assert _xlabels(figures["equity_overlay.png"]) == ["time (UTC)"]
    assert json.loads((tmp_path / "c1" / COMPARISON_JSON).read_text())["clock"] == "UTC"
    page = write_comparison(tmp_path / "c2", [run_dir, utc]).read_text(encoding="utf-8")
    assert "times in clocks differ: broker time / UTC." in page
    write_comparison(tmp_path / "c3", [run_dir, utc], clock="my clock")
    assert _xlabels(figures["equity_overlay.png"]) == ["time (my clock)"]
