"""Configuration: defaults < TOML file < --set < CLI flags, checked values, and the snapshot
of the resolved values in the run folder (through ``neurofx.cli.main``)."""

import dataclasses
import json
import os

import pytest

from neurofx.cli import main
from neurofx.config import DEFAULTS, ConfigError, load_config
from neurofx.deals import read_deals_csv
from neurofx.pipeline.test import parse_period, pass_data
from neurofx.strategies.backtest import run_ma_cross_pass
from neurofx.strategies.broker import BrokerConfig
from neurofx.strategies.policies import pass_seed


def _run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _toml(path, text):
    path.write_text(text)
    return path


def _snapshot(folder):
    return json.loads((folder / "config.json").read_text())["config"]


def test_layers_in_order(tmp_path):
    toml = _toml(tmp_path / "c.toml", "[test]\npasses = 3\nseed = 4\nagent = 'ma-cross'\n"
                 "[research]\nmin_profit = -5\ndeals = ['a.csv']\n")
    cfg = load_config(toml, ["test.seed=9", "test.ma_lots=1"])
    t = cfg.test
    assert (t.passes, t.seed, t.agent, t.start) == (3, 9, "ma-cross", "2024-01-01")
    assert t.ma_lots == 1.0 and type(t.ma_lots) is float  # an integer where USD go
    r = cfg.research
    assert r.min_profit == -5.0 and type(r.min_profit) is float
    assert r.deals == ["a.csv"] and r.jobs == 0 and r.min_profit != "auto"
    # flags: None means "not given" and keeps the configured value; flags win over --set
    t = load_config(toml, ["test.seed=9", "test.passes=5"], {"test": {
        "seed": ("--seed", None), "passes": ("--passes", 7), "agent": ("--agent", "neural")}}).test
    assert (t.passes, t.seed, t.agent) == (7, 9, "neural")
    assert DEFAULTS["test"]["passes"] == 0 and DEFAULTS["research"]["deals"] == []
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.test.passes = 1


def test_sections_are_the_typed_settings_and_the_broker_reads_its_own(tmp_path):
    toml = _toml(tmp_path / "c.toml", "[broker]\ndeposit_usd = 5000\nleverage = 30\n"
                 "[data]\nsymbol = 'GBPUSD'\n[study]\nlr = 1e-3\nmodel = 'baseline'\n"
                 "opt_args = {weight_decay = 0.1}\n")
    cfg = load_config(toml, ["broker.commission_usd_per_lot_side=0"])
    # old key names (deposit_usd, data.symbol) are accepted for the broker's own field names
    assert cfg.broker == BrokerConfig(symbol="GBPUSD", initial_deposit_usd=5000.0,
                                      leverage=30.0, commission_usd_per_lot_side=0.0)
    assert (cfg.study.lr, cfg.study.model, cfg.study.opt_args) == (
        1e-3, "baseline", {"weight_decay": 0.1})
    assert cfg.to_dict()["broker"]["initial_deposit_usd"] == 5000.0


def test_names_of_optimizers_and_models_are_checked_before_any_work(tmp_path):
    with pytest.raises(ConfigError, match=r"^--set study.optimizer=adamm: study.optimizer must "
                       r"be an optimizer name, one of sgd, .*adam-mini, got 'adamm'$"):
        load_config(None, ["study.optimizer=adamm"])
    with pytest.raises(ConfigError, match=r"^--model 'mlp': must be auto or a registered agent "
                       r"model, one of baseline, skip, tpm$"):
        load_config(None, [], {"study": {"model": ("--model", "mlp")}})
    assert load_config(None, ["study.optimizer=Adam_Mini"]).study.optimizer == "Adam_Mini"


def test_bad_values_are_one_line_errors(tmp_path):
    def err(text="", sets=(), flags=None):
        path = _toml(tmp_path / "bad.toml", text) if text else None
        with pytest.raises(ConfigError) as exc:
            load_config(path, list(sets), dict([flags]) if flags else None)
        assert "\n" not in str(exc.value)
        return str(exc.value)

    bad = tmp_path / "bad.toml"
    assert err("[test]\nfoo = 1\n") == (
        f"{bad}: unknown key test.foo; valid: agent, start, end, passes, group, seed, stops, "
        "encoder, actor, ma_fast_bars, ma_slow_bars, ma_lots, ma_tp_frac, ma_sl_frac, baselines, "
        "random_passes, walk_forward")
    assert err(sets=["research.bogus=1"]).startswith(
        "--set research.bogus=1: unknown key research.bogus; valid: policy, passes, jobs")
    assert err(sets=["research.passes=0"]) == (
        "--set research.passes=0: research.passes must be >= 1, got 0")
    assert err(sets=["test.agent=foo"]) == (
        "--set test.agent=foo: test.agent must be one of neural, ma-cross, got 'foo'")
    assert err("[test]\npasses = '3'\n") == f"{bad}: test.passes must be an integer, got '3'"
    assert err(sets=["research.min_profit=lots"]) == (
        "--set research.min_profit=lots: research.min_profit must be a number (USD) or "
        "\"auto\", got 'lots'")
    assert err(sets=["research.min_profit=true"]) == (
        "--set research.min_profit=true: research.min_profit must be a number or a string, "
        "got True")
    assert err("[research]\nexplore = 1\n") == (
        f"{bad}: research.explore must be true or false, got 1")
    assert err("[research]\ndeals = [1]\n") == (
        f"{bad}: research.deals must be a list of file names, got [1]")
    assert err("[test]\nma_lots = 0\n") == f"{bad}: test.ma_lots must be > 0, got 0.0"
    assert err(flags=("research", {"jobs": ("--jobs", -1)})) == (
        "--jobs -1: must be >= 0 (0 = the CPU count)")
    assert err(flags=("test", {"start": ("--start", 5)})) == "--start 5: must be a string"
    # config.json snapshots are strict JSON: a non-finite number is refused where it comes in
    assert err("[broker]\nleverage = inf\n") == (
        f"{bad}: broker.leverage must be a finite number, got inf")
    assert err(sets=["research.min_profit=-inf"]) == (
        "--set research.min_profit=-inf: research.min_profit must be a finite number, got -inf")
    assert err(flags=("test", {"ma_lots": ("--ma-lots", float("nan"))})) == (
        "--ma-lots nan: must be a finite number")
    # dates are checked against the calendar where they come in (issue 12)
    cal = "must be a date YYYY-MM-DD (or YYYY-MM-DD HH:MM) of the calendar"
    assert err(sets=["research.start=2024-02-30"]) == (
        f"--set research.start=2024-02-30: research.start {cal}, got '2024-02-30'")
    assert err("[research]\nend = '2023-13-01'\n") == (
        f"{bad}: research.end {cal}, got '2023-13-01'")
    assert err(flags=("research", {"start": ("--start", "tomorrow")})) == (
        f"--start 'tomorrow': {cal}")
    assert err(flags=("study", {"lr": ("--lr", float("inf"))})) == (
        "--lr inf: must be a finite number")
    bad.write_bytes(b"\xff\xfe[broker]\n")
    with pytest.raises(ConfigError, match=r"bad.toml: not UTF-8 text; save the TOML file as "
                       r"UTF-8$"):
        load_config(bad)
    with pytest.raises(ConfigError, match=r": is a folder, not a TOML file; pass the file$"):
        load_config(tmp_path)


def test_test_command_precedence_and_snapshot(capsys, tmp_path, small_bars):
    from neurofx.data import load_bars

    toml = _toml(tmp_path / "run.toml", f"""
[runs]
root = {str(tmp_path / 'runs')!r}
[data]
file = {str(small_bars)!r}
[test]
agent = "neural"
start = "2024-01-08"
end = "2024-01-19"
ma_fast_bars = 6
ma_slow_bars = 30
""")
    rc, out, err = _run(capsys, "test", "--run", "p", "--config", toml,
                        "--set", "test.ma_slow_bars=24", "--set", "test.end='2024-01-12'",
                        "--end", "2024-01-10", "--agent", "ma-cross")
    assert rc == 0, err
    folder = tmp_path / "runs" / "p" / "test"
    # default < TOML < --set < flag, key by key
    want = dict(DEFAULTS["test"], agent="ma-cross", start="2024-01-08", end="2024-01-10",
                ma_fast_bars=6, ma_slow_bars=24)
    snap = _snapshot(folder)
    assert snap["test"] == want
    assert snap["data"]["file"] == str(small_bars)
    assert out.splitlines()[0] == "p: SMA-crossover demo, EURUSD H1, 2024-01-08 to 2024-01-10"
    extra = json.loads((folder / "metrics.json").read_text())["extra"]
    assert extra["strategy"].startswith("SMA(6) / SMA(24) crossover, 0.1 lots")
    # the settings reached the strategy: the same deals as a direct run with them
    bars = load_bars(small_bars)
    period = parse_period("2024-01-08", "2024-01-10")
    direct = pass_data(run_ma_cross_pass(bars, period, BrokerConfig(), fast_bars=6,
                                         slow_bars=24))
    default = pass_data(run_ma_cross_pass(bars, period, BrokerConfig()))
    got = read_deals_csv(folder / "deals.csv")
    assert got == direct.deals and got != default.deals


def test_test_command_checks_config_values(capsys, tmp_path):
    root = f"runs.root={str(tmp_path)!r}"
    rc, out, err = _run(capsys, "test", "--run", "x", "--set", root, "--set", "test.bogus=1")
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "unknown key test.bogus" in err
    rc, _, err = _run(capsys, "test", "--run", "x", "--set", root, "--set",
                      "test.agent='ma-cross'", "--set", "test.passes=2")
    assert rc == 2 and "--passes: the ma-cross agent is deterministic; drop --passes " \
        "(test.passes)" in err
    rc, _, err = _run(capsys, "test", "--run", "x", "--set", root, "--seed", "-2")
    assert rc == 2 and err.strip() == "neurofx test: error: --seed -2: must be >= 0"
    assert not (tmp_path / "x").exists()


def test_research_command_precedence_and_snapshot(capsys, tmp_path, small_bars):
    from neurofx.collectors.store import TrajectoryStore

    runs = tmp_path / "runs"
    toml = _toml(tmp_path / "r.toml", """
[research]
passes = 3
seed = 1
jobs = 2
start = "2024-01-08"
end = "2024-01-13"
capacity = 7
min_profit = -1e9
""")
    store = tmp_path / "store"
    common = ["--set", f"runs.root={str(runs)!r}", "--set", f"data.file={str(small_bars)!r}"]
    rc, out, err = _run(capsys, "research", "--config", toml, *common,
                        "--set", "research.seed=3", "--set", "research.passes=2",
                        "--set", f"research.store={str(store)!r}", "--passes", "1", "--jobs", "1")
    assert rc == 0, err
    want = dict(DEFAULTS["research"], passes=1, seed=3, jobs=1, start="2024-01-08",
                end="2024-01-13", capacity=7, min_profit=-1e9, store=str(store))
    assert _snapshot(runs / "research")["research"] == want
    assert out.startswith("passes 1: kept 1, discarded 0")
    s = TrajectoryStore.open(store)
    assert s.capacity == 7 and len(s) == 1
    assert s.entries[0]["seed"] == pass_seed(3, 0)
    assert s.load(0).steps == 120  # Monday to Friday, 24 H1 bars each
    # "auto" and 0 are resolved in the snapshot: the seed's MinProfit, the CPU count
    rc, _, err = _run(capsys, "research", *common, "--store", tmp_path / "s2", "--passes", "1",
                      "--start", "2024-01-08", "--end", "2024-01-09", "--jobs", "0")
    assert rc == 0, err
    snap = _snapshot(runs / "research")["research"]
    assert snap["min_profit"] == 10.0 and snap["jobs"] == (os.cpu_count() or 1)
    assert snap["passes"] == 1 and snap["seed"] == 0 and snap["store"] == str(tmp_path / "s2")
