"""Baselines beside the agent (issue 15): their money adds up, flat does nothing, buy-and-hold's
profit by hand, the random policy is seeded and matched to the agent's trade count, the
percentile by hand, walk-forward months with in-sample marking, the comparison page."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from neurofx.cli import main
from neurofx.reports.baselines import (
    BaselineRow,
    Baselines,
    percentile_of,
    read_baselines,
    row_of,
    skipped_row,
)
from neurofx.strategies.backtest import Period, run_ma_cross_pass
from neurofx.strategies.baselines import (
    BUY_AND_HOLD,
    FLAT,
    MA_CROSS,
    Entry,
    agent_entries,
    buy_and_hold_lots,
    run_fixed_baselines,
    run_random_baseline,
)
from neurofx.strategies.broker import BrokerConfig

START, END = "2024-01-08", "2024-01-19"
PERIOD = Period(pd.Timestamp(START).date(), pd.Timestamp(END).date())
CFG = BrokerConfig()


def _rows(path):
    return pd.read_csv(path, dtype=str, keep_default_na=False).to_dict("records")


def _run(capsys, *argv):
    """(exit code, stdout, stderr) of a neurofx command."""
    return (main(list(argv)), *capsys.readouterr())


@pytest.fixture(scope="module")
def bars(small_bars):
    from neurofx.data.loaders import load_bars
    return load_bars(str(small_bars))


@pytest.fixture(scope="module")
def fixed(bars):
    return run_fixed_baselines(bars, PERIOD, CFG, {})


@pytest.fixture(scope="module")
def agent(bars):
    return run_ma_cross_pass(bars, PERIOD, CFG, fast_bars=6, slow_bars=24)


def _money(outcome):
    return sum(d.profit + d.commission + d.swap for d in outcome.replay.deals)


def test_baselines_satisfy_the_balance_identity(fixed, bars, agent):
    randoms = run_random_baseline(bars, PERIOD, CFG, agent_entries(agent), 10, 3, seed=0)
    for o in [*fixed.values(), *randoms]:
        res = o.replay
        assert res.final.balance_usd == pytest.approx(10_000 + _money(o), abs=1e-6), o.label
        assert res.balance[-1] == pytest.approx(res.final.balance_usd)
        assert res.final.buy_lots == res.final.sell_lots == 0.0  # all closed at the end


def test_flat_makes_no_trade_and_no_profit(fixed):
    flat = fixed[FLAT].replay
    assert flat.deals == [] and flat.final.balance_usd == 10_000
    assert (flat.equity == 10_000).all()


def test_buy_and_hold_profit_by_hand(fixed, small_bars):
    df = pd.read_csv(small_bars, parse_dates=["time"])
    df = df[(df.time >= START) & (df.time < "2024-01-20")]
    first, last = df.iloc[0], df.iloc[-1]
    assert (str(first.time), str(last.time)) == ("2024-01-08 00:00:00", "2024-01-19 23:00:00")
    lots = 10_000 / 100_000  # the deposit's nominal: 0.1 lot
    assert buy_and_hold_lots(CFG) == lots
    ask = round(first.open + max(first.spread, 5) * 1e-5, 5)
    price_usd = round((last.close - ask) * lots * 100_000, 2)
    # nights: Mon, Tue (1 each), Wed (3), Thu (1) in each week, the Friday of the first week
    # over the weekend (1), the second Friday's rollover after the last bar: 4 x 2 + 2 + 1 = 13
    swap_usd = round(lots * -7.0 * 13, 2)
    commission_usd = -2 * 3.5 * lots
    deals = fixed[BUY_AND_HOLD].replay.deals
    assert [(d.entry, d.volume, d.reason) for d in deals] == [("in", lots, "agent"),
                                                              ("out", lots, "end_of_test")]
    assert (deals[0].price, deals[1].price) == (ask, last.close)
    assert deals[1].profit == price_usd and deals[1].swap == swap_usd == -9.10
    assert _money(fixed[BUY_AND_HOLD]) == pytest.approx(price_usd + commission_usd + swap_usd)
    assert buy_and_hold_lots(BrokerConfig(initial_deposit_usd=12_345)) == 0.12
    assert buy_and_hold_lots(BrokerConfig(initial_deposit_usd=100)) == 0.01  # the minimum


def test_ma_cross_baseline_is_the_rule(fixed, bars):
    assert fixed[MA_CROSS].replay.deals == run_ma_cross_pass(bars, PERIOD, CFG).replay.deals


def test_random_baseline_is_seeded_and_matches_the_trade_count(bars, agent):
    entries = agent_entries(agent)
    target = sum(d.entry == "out" for d in agent.replay.deals)
    assert target > 5 and entries[0] == Entry(0.1, 0.5, 0.3)
    assert {e for e in entries} == {Entry(0.1, 0.5, 0.3)}
    a = run_random_baseline(bars, PERIOD, CFG, entries, target, 5, seed=3)
    b = run_random_baseline(bars, PERIOD, CFG, entries, target, 5, seed=3)
    c = run_random_baseline(bars, PERIOD, CFG, entries, target, 5, seed=4)
    assert [o.replay.deals for o in a] == [o.replay.deals for o in b]
    assert [o.replay.deals for o in a] != [o.replay.deals for o in c]
    counts = [sum(d.entry == "out" for d in o.replay.deals) for o in a]
    assert abs(np.median(counts) - target) <= 0.1 * target
    volumes = {d.volume for o in a for d in o.replay.deals}
    assert volumes == {0.1}  # the agent's volume
    sides = {d.side for o in a for d in o.replay.deals if d.entry == "in"}
    assert sides == {"buy", "sell"}


def test_percentile_by_hand():
    sample = [1.0, 2.0, 3.0, 5.0, 8.0, 13.0]
    assert percentile_of(5.0, sample) == pytest.approx(100 * 3.5 / 6)  # 3 below, 1 tie
    assert percentile_of(4.0, sample) == 50.0
    assert percentile_of(0.0, sample) == 0.0 and percentile_of(20.0, sample) == 100.0
    assert math.isnan(percentile_of(1.0, []))
    agent = BaselineRow("agent", 1, 4.0, 4.0, 4.0, 1.2, 6, 6, 6, 2.0, 0.5)
    rnd = BaselineRow("random", 6, 4.0, 1.0, 13.0, 1.0, 6, 5, 7, 1.0, 0.1, 50.0, "")
    assert Baselines((agent, rnd)).verdict() == (
        "The agent's net profit of +4.00 USD did not beat the random policy's median of "
        "+4.00 USD (6 passes of 6 trades): it lies at percentile 50 of the random passes.")
    skipped = skipped_row("random", "the agent made no trade")
    assert Baselines((agent, skipped)).verdict() == (
        "No verdict against the random policy: the agent made no trade.")


def test_row_of_several_passes(fixed, agent):
    from neurofx.pipeline.test import pass_data
    ms = [pass_data(o, excursions=False).metrics() for o in (*fixed.values(), agent)]
    nets = sorted(m.total_net_profit_usd for m in ms)
    row = row_of("random", ms, agent_net_usd=nets[1])
    assert row.passes == 4 and row.net_profit_usd == pytest.approx((nets[1] + nets[2]) / 2)
    assert (row.net_profit_min_usd, row.net_profit_max_usd) == (nets[0], nets[-1])
    assert row.agent_percentile == pytest.approx(100 * 1.5 / 4)


@pytest.fixture(scope="module")
def ma_test(tmp_path_factory, small_bars):
    root = tmp_path_factory.mktemp("runs")
    rc = main(["test", "--run", "a", "--agent", "ma-cross", "--start", START, "--end", END,
               "--random-passes", "4", "--data", str(small_bars),
               "--set", f"runs.root={str(root)!r}"])
    assert rc == 0
    return root


def test_test_writes_baselines_csv_and_report(ma_test):
    folder = ma_test / "a" / "test"
    rows = {r["baseline"]: r for r in _rows(folder / "baselines.csv")}
    assert list(rows) == ["agent", "flat", "buy-and-hold", "ma-cross", "random"]
    assert rows["flat"]["trades"] == "0.0" and float(rows["flat"]["net_profit_usd"]) == 0.0
    m = json.loads((folder / "metrics.json").read_text())["metrics"]
    assert float(rows["agent"]["net_profit_usd"]) == pytest.approx(m["total_net_profit_usd"])
    # the agent is the SMA crossover here: the same deals as its baseline
    assert rows["agent"]["net_profit_usd"] == rows["ma-cross"]["net_profit_usd"]
    rnd = rows["random"]
    assert rnd["passes"] == "4"
    assert abs(float(rnd["trades"]) - m["total_trades"]) <= 0.1 * m["total_trades"]
    assert float(rnd["net_profit_min_usd"]) <= float(rnd["net_profit_usd"]) <= float(
        rnd["net_profit_max_usd"])
    html = (folder / "report.html").read_text()
    assert "<h2>Baselines</h2>" in html and 'id="b-buy-and-hold"' in html
    b = read_baselines(folder)
    assert b.verdict() in html and "random policy's median" in b.verdict()
    assert set(b.curves) == {"buy-and-hold", "ma-cross", "random (median pass)"}
    extra = json.loads((folder / "metrics.json").read_text())["extra"]
    assert extra["swap"].startswith("long -7, short +2 points per lot and night")
    deals = _rows(folder / "deals.csv")
    assert float(extra["swap charged"].split()[0].replace(",", "")) == pytest.approx(
        sum(float(d["swap"]) for d in deals))


def test_no_baselines_and_comparison(ma_test, capsys, small_bars):
    root = f"runs.root={str(ma_test)!r}"
    rc, out, err = _run(capsys, "test", "--run", "b", "--agent", "ma-cross", "--start", START,
                        "--end", END, "--no-baselines", "--data", str(small_bars),
                        "--set", root, "--set", "test.ma_fast_bars=6")
    assert rc == 0, err
    assert not (ma_test / "b" / "test" / "baselines.csv").exists()
    assert "Baselines" not in (ma_test / "b" / "test" / "report.html").read_text()
    rc, out, err = _run(capsys, "report", "a", "b", "--set", root)
    assert rc == 0, err
    html = (ma_test / "compare" / "a_vs_b" / "comparison.html").read_text()
    assert "<h2>Baselines</h2>" in html and 'id="r0-b-random"' in html
    assert "b: no baselines" in html


def test_period_past_the_files_last_bar_is_one_line(capsys, tmp_path, small_bars):
    rc, _, err = _run(capsys, "test", "--run", "r", "--agent", "ma-cross", "--data",
                      str(small_bars), "--start", "2024-01-20", "--end", "2024-02-10",
                      "--set", f"runs.root={str(tmp_path)!r}")
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1
    assert ("the file does not cover all of 2024-01-20 to 2024-02-10; the file covers "
            "2023-12-01 to 2024-01-31") in lines[0]
    rc, _, err = _run(capsys, "test", "--run", "r", "--walk-forward", "2024-01..2024-02",
                      "--agent", "ma-cross", "--data", str(small_bars),
                      "--set", f"runs.root={str(tmp_path)!r}")
    assert rc == 2 and "2024-01-01 to 2024-02-29" in err and len(err.strip().splitlines()) == 1
    rc, _, err = _run(capsys, "test", "--run", "r", "--walk-forward", "2024-1..2024-02",
                      "--set", f"runs.root={str(tmp_path)!r}")
    assert rc == 2 and "--walk-forward '2024-1..2024-02': must be a range of months" in err


def _tiny_models(folder):
    from neurofx import agents
    from neurofx.nn import Model

    folder.mkdir(parents=True, exist_ok=True)
    Model(agents.describe("encoder", "baseline", hidden=8), name="encoder").save(
        folder / "encoder.npz")
    Model(agents.describe("actor", "baseline", hidden=8), name="actor").save(
        folder / "actor.npz")


def test_walk_forward_two_months_marks_in_sample(capsys, tmp_path):
    import gzip
    import importlib.resources

    # November 2023 to January 2024: the agent's state warms up on November's bars
    src = importlib.resources.files("neurofx.data").joinpath("EURUSD_H1.csv.gz")
    with gzip.open(str(src), "rt") as fh:
        lines = [ln for i, ln in enumerate(fh)
                 if i == 0 or ln.startswith(("2023-11", "2023-12", "2024-01"))]
    small_bars = tmp_path / "bars.csv"
    small_bars.write_text("".join(lines))
    root = f"runs.root={str(tmp_path)!r}"
    store = tmp_path / "store"
    rc, _, err = _run(capsys, "research", "--passes", "1", "--jobs", "1", "--store", str(store),
                      "--start", "2023-12-11", "--end", "2023-12-16", "--min-profit=-1e9",
                      "--set", f"data.file={str(small_bars)!r}", "--set", root)
    assert rc == 0, err
    _tiny_models(tmp_path / "wf")
    (tmp_path / "wf" / "study_encoder_config.json").write_text(json.dumps(
        {"store": str(store)}))
    rc, out, err = _run(capsys, "test", "--run", "wf", "--walk-forward", "2023-12..2024-01",
                        "--random-passes", "2", "--passes", "2", "--data", str(small_bars),
                        "--set", root)
    assert rc == 0, err
    folder = tmp_path / "wf" / "test"
    rows = _rows(folder / "walk_forward.csv")
    assert [(r["month"], r["in_sample"]) for r in rows] == [("2023-12", "yes"),
                                                             ("2024-01", "no")]
    for r in rows:  # each month its own test: the flat baseline never trades
        assert float(r["flat_net_profit_usd"]) == 0.0 and float(r["flat_trades"]) == 0.0
        assert math.isnan(float(r["random_net_profit_usd"])) == (float(r["agent_trades"]) == 0)
    html = (folder / "report.html").read_text()
    assert "<h2>Month by month</h2>" in html and 'id="wf-2023-12"' in html
    assert "in-sample" in html and (folder / "walk_forward.png").is_file()
    extra = json.loads((folder / "metrics.json").read_text())["extra"]
    assert extra["training bars"].startswith("2023-12-11 ")
    assert extra["period"].startswith("2023-12-01 to 2024-01-31")
    assert "2023-12  agent" in out and "(in-sample)" in out and "(out-of-sample)" in out
    # neurofx report rebuilds the page with the months and baselines, metrics.json unchanged
    before = (folder / "metrics.json").read_bytes()
    (folder / "report.html").unlink()
    assert _run(capsys, "report", "wf", "--set", root)[0] == 0
    again = (folder / "report.html").read_text()
    assert 'id="wf-2024-01"' in again and "<h2>Baselines</h2>" in again
    assert (folder / "metrics.json").read_bytes() == before


@pytest.mark.parametrize("item, message", [
    ("broker.triple_swap_weekday=wed", "--set broker.triple_swap_weekday=wed: "
     "broker.triple_swap_weekday must be one of monday, tuesday, wednesday"),
    ("broker.rollover_hour=24", "broker.rollover_hour must be an hour 0..23 (bars' clock)"),
    ("test.random_passes=0", "test.random_passes must be >= 1"),
    ("test.walk_forward='2024-01'", "test.walk_forward must be a range of months START..END"),
])
def test_new_settings_are_checked(item, message):
    from neurofx.config import ConfigError, load_config
    with pytest.raises(ConfigError) as exc:
        load_config(None, [item])
    assert message in str(exc.value) and "\n" not in str(exc.value)
    cfg = load_config(None, ["broker.swap_long_points=-5.5",
                             "test.walk_forward='2023-07..2024-01'"])
    assert cfg.broker.swap_long_points == -5.5 and cfg.test.walk_forward == "2023-07..2024-01"
