"""`neurofx test`: the report's money adds up, deals re-import, errors name what to run first."""

import csv
import json
import re

import numpy as np
import pandas as pd
import pytest

from neurofx.cli import main
from neurofx.collectors.realorl import import_neurofx_deals
from neurofx.deals import Deal
from neurofx.errors import NeurofxError
from neurofx.pipeline.test import parse_period
from neurofx.reports.excursions import trade_excursions
from neurofx.strategies.broker import BrokerConfig, spread_price
from neurofx.strategies.feeds import BarArrays

START, END = "2024-01-08", "2024-01-19"


def _csv_rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def small(small_bars):
    return f"data.file={str(small_bars)!r}"


@pytest.fixture(scope="module")
def ma_run(tmp_path_factory, small):
    root = tmp_path_factory.mktemp("runs")
    rc = main(["test", "--run", "demo", "--agent", "ma-cross", "--start", START, "--end", END,
               "--set", f"runs.root={str(root)!r}", "--set", "broker.deposit_usd=5000",
               "--set", small])
    assert rc == 0
    return root / "demo" / "test"


def test_final_balance_is_deposit_plus_deal_money(ma_run, small):
    deals = _csv_rows(ma_run / "deals.csv")
    assert len(deals) >= 6
    money = sum(float(d["profit"]) + float(d["commission"]) + float(d["swap"]) for d in deals)
    commissions = [float(d["commission"]) for d in deals]
    assert all(c < 0 for c in commissions)  # commission is part of the identity, not zero
    doc = json.loads((ma_run / "metrics.json").read_text())
    m = doc["metrics"]
    assert m["initial_deposit_usd"] == 5000.0
    assert m["final_balance_usd"] == pytest.approx(5000.0 + money, abs=1e-6)
    assert m["total_net_profit_usd"] == pytest.approx(money, abs=1e-6)
    with np.load(ma_run / "series.npz") as z:
        balance, equity = z["balance_usd"], z["equity_usd"]
        margin, times = z["margin_level_pct"], z["time_s"]
    assert balance[-1] == pytest.approx(5000.0 + money, abs=1e-6)
    assert equity[-1] == balance[-1]  # everything closed at the end
    # one record per bar of the period, independent count from the bar file
    t = pd.read_csv(small.split("=", 1)[1].strip("'"), parse_dates=["time"])["time"]
    n = int(((t >= START) & (t < "2024-01-20")).sum())
    assert len(times) == n == m["bars"]
    assert np.isfinite(margin).any() and np.isnan(margin).any()  # in and out of the market
    trades = _csv_rows(ma_run / "trades.csv")
    assert sum(float(t["net_usd"]) for t in trades) == pytest.approx(money, abs=1e-6)


def test_deals_csv_reimports_with_realorl(ma_run):
    imp = import_neurofx_deals(ma_run / "deals.csv")
    outs = [d for d in _csv_rows(ma_run / "deals.csv") if d["entry"] == "out"]
    assert imp.unmatched == 0 and imp.skipped_symbols == 0
    assert len(imp.deals) == len(outs) == json.loads(
        (ma_run / "metrics.json").read_text())["metrics"]["total_trades"]
    for h, d in zip(imp.deals, outs, strict=True):
        assert h.profit == float(d["profit"]) and h.close_price == float(d["price"])
        assert h.side == ("buy" if d["side"] == "sell" else "sell")


def test_report_files_and_summary(ma_run, capsys, tmp_path, small):
    html = (ma_run / "report.html").read_text()
    assert "<img" in html and "data:image/png;base64," in html and "http" not in html
    cfg = json.loads((ma_run / "config.json").read_text())
    assert cfg["config"]["broker"]["initial_deposit_usd"] == 5000.0
    rc, out, err = _run(capsys, "test", "--run", "x", "--agent", "ma-cross", "--start",
                        "2024-01-15", "--end", "2024-01-16",
                        "--set", f"runs.root={str(tmp_path)!r}", "--set", small)
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0] == "x: SMA-crossover demo, EURUSD H1, 2024-01-15 to 2024-01-16"
    assert lines[1].startswith("net profit")
    assert lines[-1] == f"report: {tmp_path / 'x' / 'test' / 'report.html'}"


def _tiny_models(folder, actor_forecast=216, encoder_inputs=1080):
    from neurofx import agents
    from neurofx.nn import Model

    folder.mkdir(parents=True, exist_ok=True)
    enc = agents.describe("encoder", "baseline", hidden=8)
    if encoder_inputs != 1080:
        enc = {"type": "Sequential", "layers": [
            {"type": "Dense", "n_in": encoder_inputs, "n_out": 216, "activation": "tanh",
             "bias": True, "seed": 3}]}
    act = agents.describe("actor", "baseline", hidden=8)
    if actor_forecast != 216:
        act["layers"][1]["n_in"] = 12 + actor_forecast
    Model(enc, name="encoder").save(folder / "encoder.npz")
    Model(act, name="actor").save(folder / "actor.npz")


def _one_error_line(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_missing_models_name_the_command_to_run(capsys, tmp_path):
    root = f"runs.root={str(tmp_path)!r}"
    rc, _, err = _run(capsys, "test", "--run", "fresh", "--set", root)
    line = _one_error_line(err)
    assert rc == 2 and "no such run" in line
    assert "'neurofx research --store STORE'" in line  # a command that exists (issue 12)
    assert "'neurofx study encoder --store STORE --run fresh'" in line
    assert not (tmp_path / "fresh").exists()  # a failed test leaves no run folder behind
    (tmp_path / "half").mkdir()
    rc, _, err = _run(capsys, "test", "--run", "half", "--set", root)
    assert rc == 2 and _one_error_line(err) == (
        f"neurofx test: error: {tmp_path / 'half' / 'encoder.npz'}: no trained encoder; "
        "run 'neurofx study encoder --run half' first")
    _tiny_models(tmp_path / "half")
    (tmp_path / "half" / "actor.npz").unlink()
    rc, _, err = _run(capsys, "test", "--run", "half", "--set", root)
    assert rc == 2 and "no trained actor; run 'neurofx study actor --run half' first" in err
    assert not (tmp_path / "half" / "test").exists()


@pytest.mark.parametrize("kind", ["actor", "encoder"])
def test_models_of_another_architecture(capsys, tmp_path, kind):
    if kind == "actor":
        _tiny_models(tmp_path / "r", actor_forecast=100)
    else:
        _tiny_models(tmp_path / "r", encoder_inputs=900)
    rc, _, err = _run(capsys, "test", "--run", "r", "--set", f"runs.root={str(tmp_path)!r}")
    line = _one_error_line(err)
    assert rc == 2
    assert f"{tmp_path / 'r' / (kind + '.npz')}: an {kind} of another architecture" in line
    assert "'neurofx study encoder --run r'" in line and "'neurofx study actor --run r'" in line


def test_neural_agent_deterministic_and_passes(capsys, tmp_path, small):
    _tiny_models(tmp_path / "nn")
    base = ["test", "--run", "nn", "--start", "2024-01-09", "--end", "2024-01-10",
            "--set", f"runs.root={str(tmp_path)!r}", "--set", small]
    folder = tmp_path / "nn" / "test"
    assert _run(capsys, *base)[0] == 0
    first = (folder / "deals.csv").read_text()
    assert first.count("\n") > 3 and not (folder / "passes.csv").exists()
    rc, out, err = _run(capsys, *base, "--passes", "3", "--seed", "5")
    assert rc == 0, err
    rows = _csv_rows(folder / "passes.csv")
    assert [r["pass"] for r in rows] == ["1", "2", "3"] and len({r["seed"] for r in rows}) == 3
    net = [float(r["net_profit_usd"]) for r in rows]
    k = int(np.argsort(net, kind="stable")[1])  # the median pass is the report's pass
    main_doc = json.loads((folder / "metrics.json").read_text())
    main_m = main_doc["metrics"]
    lo, med, hi = sorted(net)
    assert main_doc["extra"]["passes: net profit (USD), min / median / max"] == (
        f"{lo:+,.2f} / {med:+,.2f} / {hi:+,.2f}")
    pass_m = json.loads((folder / "passes" / f"pass-{k + 1:02d}" / "metrics.json").read_text())
    assert main_m == pass_m["metrics"]
    assert main_m["total_net_profit_usd"] == pytest.approx(sorted(net)[1])
    assert f"report of pass {k + 1} of 3 (median net profit" in out
    assert (folder / "passes" / "comparison.html").is_file()
    # the comparison names the pass folders where they end up, not the temporary folder the
    # report was written in before it was swapped into place
    runs = [r["run_dir"] for r in json.loads((folder / "passes" / "comparison.json").read_text())
            ["runs"]]
    assert runs == [str(folder / "passes" / f"pass-0{i}") for i in (1, 2, 3)]
    # deterministic again: the VAE mean gives the same deals, and the passes it no longer
    # reports are removed
    assert _run(capsys, *base)[0] == 0
    assert (folder / "deals.csv").read_text() == first
    assert not (folder / "passes").exists() and not (folder / "passes.csv").exists()


@pytest.mark.parametrize("argv, message", [
    (["--agent", "ma-cross", "--passes", "2"], "--passes: the ma-cross agent is deterministic"),
    (["--agent", "ma-cross", "--encoder", "e.npz"], "--encoder: the ma-cross agent uses no"),
    (["--passes", "-1"], "--passes -1: must be >= 0"),
    (["--agent", "ma-cross", "--start", "2024-13-01"],
     "--start '2024-13-01': must be a date YYYY-MM-DD of the calendar"),
    (["--agent", "ma-cross", "--start", "2024-01-10", "--end", "2024-01-09"],
     "--end 2024-01-09 is before --start 2024-01-10"),
    (["--agent", "ma-cross", "--start", "2025-01-01", "--end", "2025-01-31"],
     "no bars from 2025-01-01 to 2025-01-31; the file covers 2017-05-01 to 2024-01-31"),
])
def test_bad_arguments_are_one_line_errors(capsys, tmp_path, argv, message):
    rc, _, err = _run(capsys, "test", "--run", "r", "--set", f"runs.root={str(tmp_path)!r}",
                      *argv)
    assert rc == 2 and message in _one_error_line(err)


def test_period_defaults_to_january_2024():
    p = parse_period()
    assert str(p) == "2024-01-01 to 2024-01-31"
    assert p.end_exclusive_ts == pd.Timestamp("2024-02-01")
    with pytest.raises(NeurofxError, match="YYYY-MM-DD"):
        parse_period("2024/01/01")


def _deal(ticket, time, side, entry, price, entry_time, entry_price, reason="sl"):
    return Deal(ticket, time, "EURUSD", side, entry, 0.5, price, -1.75, 0.0, 0.0, 1, reason,
                entry_time, entry_price)


def test_trade_excursions_by_hand():
    h = 3600
    bars = BarArrays(
        time_s=np.array([0, h, 2 * h, 3 * h]), dtnum=np.zeros(4),
        open=np.array([1.1000, 1.1010, 1.0990, 1.0980]),
        high=np.array([1.1020, 1.1015, 1.0995, 1.0990]),
        low=np.array([1.0995, 1.0985, 1.0970, 1.0960]),
        close=np.array([1.1010, 1.0990, 1.0980, 1.0985]), volume=np.ones(4),
        spread_points=np.array([0.0, 10.0, 3.0, 8.0]))
    cfg = BrokerConfig(min_spread_points=5.0)
    # long bought at ask 1.10005 in bar 0, stopped out at 1.09750 during bar 2:
    # seen: bars 0-1 full ranges, bar 2's open 1.0990, the exit 1.0975 (bid prices)
    long_out = _deal(2, 2 * h, "sell", "out", 1.0975, 0, 1.10005)
    # short sold at bid 1.0990 in bar 2 (spread 5 points from the minimum), closed at the
    # open of bar 3 at ask 1.0980 + 8 points = 1.09808: bar 2's ask range, bar 3's open ask
    short_out = _deal(4, 3 * h, "buy", "out", 1.09808, 2 * h, 1.0990)
    # long bought at ask 1.1020 (bar 1 open + 10 points), closed at the last close: bar 3's
    # low 1.0960 counts (without it the worst would be bar 2's 1.0970)
    last_out = _deal(6, 3 * h, "sell", "out", 1.0985, h, 1.1020, reason="end_of_test")
    spread = [spread_price(s, cfg) for s in bars.spread_points]
    assert spread == [0.00005, 0.0001, 0.00005, 0.00008]
    ex = trade_excursions([long_out, short_out, last_out], bars, spread, cfg.contract_size_units)
    size = 0.5 * 100_000
    assert ex[2] == (round((1.1020 - 1.10005) * size, 2), round((1.0975 - 1.10005) * size, 2))
    assert ex[2] == (97.5, -127.5)
    # ask high of bar 2 = 1.0995 + 0.00005; ask low = 1.0970 + 0.00005
    assert ex[4] == (round((1.0990 - 1.09705) * size, 2), round((1.0990 - 1.09955) * size, 2))
    assert ex[4] == (97.5, -27.5)
    assert ex[6] == (0.0, round((1.0960 - 1.1020) * size, 2)) == (0.0, -300.0)


@pytest.mark.parametrize("sets, clock, last_bar", [
    ([], "broker time", "2024-01-19 23:00"),  # a bar file of unknown zone
    (["data.source_tz='Europe/Athens'"], "broker time, Europe/Athens", "2024-01-19 23:00"),
    # converted: Friday's last bar opens 23:00 in Athens (UTC+2 in January) = 21:00 UTC
    (["data.source_tz='Europe/Athens'", "data.tz='UTC'"], "UTC", "2024-01-19 21:00"),
])
def test_report_names_the_clock_of_the_bars(capsys, tmp_path, small, sets, clock, last_bar):
    argv = ["test", "--run", "c", "--agent", "ma-cross", "--start", START, "--end", END,
            "--set", f"runs.root={str(tmp_path)!r}", "--set", small]
    for s in sets:
        argv += ["--set", s]
    rc, _, err = _run(capsys, *argv)
    assert rc == 0, err
    folder = tmp_path / "c" / "test"
    doc = json.loads((folder / "metrics.json").read_text())
    assert doc["clock"] == clock
    assert doc["extra"]["period"] == f"{START} to {END} ({clock})"
    html = (folder / "report.html").read_text()
    assert f"2024-01-08 00:00 to {last_bar} ({clock}), " in html
    text = re.sub(r"data:image/png;base64,[^\"]+", "", html)  # base64 may spell anything
    assert ("UTC" in text) == (clock == "UTC")

