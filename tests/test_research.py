"""Agent passes and `neurofx research`: every recorded value of a scripted pass against hand
computation, Real-ORL trades, byte-identical stores, crash safety and one-line CLI errors."""

import hashlib
import importlib.resources
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from neurofx.cli import main as cli_main
from neurofx.collectors.deal_files import import_deal_file
from neurofx.collectors.store import TrajectoryStore
from neurofx.data import compute_features, load_bars
from neurofx.deals import read_deals_csv, write_deals_csv
from neurofx.strategies.agent import run_agent_pass
from neurofx.strategies.broker import BrokerConfig
from neurofx.strategies.feeds import BarArrays
from neurofx.strategies.policies import ScriptedPolicy, realorl_policy
from neurofx.strategies.research import example_deals

PT = 0.00001
SPREAD = 5 * PT  # min_spread_points; the bars of the window have a spread column of 0
START, END = "2023-03-06 04:00", "2023-03-06 20:00"  # 16 H1 bars
CFG = BrokerConfig()  # deposit 10,000, commission 3.5 per lot and side


@pytest.fixture(scope="module")
def data():
    frame = load_bars()
    return BarArrays.from_frame(frame), compute_features(frame)


def _r(x):
    return round(x, 5)


# ---- the scripted pass ------------------------------------------------------------------------
ZERO = (0.0,) * 6
SCRIPT = {
    1: (0.1, 1.0, 1.0, 0, 0, 0),          # buy 0.1, TP/SL 1000 points
    2: (0.1, 1.0, 1.0, 0, 0, 0),          # hold (TP/SL re-priced, nothing traded)
    3: (0.3, 1.0, 1.0, 0.1, 0.2, 0.2),    # nets to buy 0.2: add 0.1
    4: (0.2, 1.0, 1.0, 0, 0, 0),          # hold
    5: (0.1, 0.5, 0.5, 0.2, 1.0, 1.0),    # nets to sell 0.1: close both buys, open a sell
    6: (0, 0, 0, 0.1, 1.0, 1.0),          # hold
    # 7, 8, 9: zeros -> close the sell at 7, then flat
    10: (0, 0, 0, 0.1, 1.0, 0.1),         # sell 0.1 with SL 100 points
    11: (0, 0, 0, 0.1, 1.0, 0.1),         # hold: the SL is hit inside bar 11
    13: (0.2, 1.0, 1.0, 0, 0, 0),         # buy 0.2, held to the end of the pass
    14: (0.2, 1.0, 1.0, 0, 0, 0),
    15: (0.2, 1.0, 1.0, 0, 0, 0),
}


def _net(a):
    a = list(a)
    if a[0] >= a[3]:
        a[0], a[3] = a[0] - a[3], 0.0
    else:
        a[3], a[0] = a[3] - a[0], 0.0
    return a


@pytest.fixture(scope="module")
def scripted(data):
    bars, feats = data
    policy = ScriptedPolicy(SCRIPT)
    res = run_agent_pass(bars, feats, policy, START, END, seed=3)
    return res, policy


def test_scripted_pass_every_value_by_hand(data, scripted):
    bars, feats = data
    res, policy = scripted
    off = int(np.searchsorted(bars.time_s, res.replay.time_s[0]))
    n = 16
    assert res.steps == n and res.first_bar == off
    t_s = bars.time_s[off:off + n]
    o = np.array([_r(x) for x in bars.open[off:off + n]])
    hi, lo, cl = (bars.high[off:off + n], bars.low[off:off + n], bars.close[off:off + n])
    assert (bars.spread_points[off:off + n] <= 5).all()  # every bar quoted with 5 points
    a = np.array([_r(x + SPREAD) for x in o])  # ask at the open

    # -- the hand ledger: positions (side, lots, entry price, entry time) and balance
    sl10 = _r(o[10] + 100 * PT)
    # preconditions of the script on these bars
    assert _r(o[11] + 100 * PT) > sl10  # the re-priced SL at 11 is higher: not moved
    assert hi[10] + SPREAD < sl10 <= hi[11] + SPREAD and a[11] < sl10  # hit inside bar 11
    for t in (1, 2, 3, 4, 13, 14, 15):  # wide stops never touched
        assert lo[t] > a[1] - 0.01 + 0.002 and hi[t] < a[1] + 0.0095

    def comm(lots):
        return round(3.5 * lots, 2)

    balance = [None] * (n + 1)
    pos_at_open = [[] for _ in range(n)]  # positions held at the open of t (before action)
    bal = 10_000.0
    held = []
    for t in range(n):
        if t == 12:  # the sell of bar 10 was stopped inside bar 11 at its SL
            bal = round(bal + round((o[10] - sl10) * 0.1 * 1e5, 2) - comm(0.1), 2)
            held = []
        balance[t] = bal
        pos_at_open[t] = list(held)
        if t == 1:
            held = [("buy", 0.1, a[1], t_s[1])]
            bal = round(bal - comm(0.1), 2)
        elif t == 3:
            held = held + [("buy", 0.1, a[3], t_s[3])]
            bal = round(bal - comm(0.1), 2)
        elif t == 5:
            for _, lots, entry, _ in held:
                bal = round(bal + round((o[5] - entry) * lots * 1e5, 2) - comm(lots), 2)
            held = [("sell", 0.1, o[5], t_s[5])]
            bal = round(bal - comm(0.1), 2)
        elif t == 7:
            bal = round(bal + round((o[5] - a[7]) * 0.1 * 1e5, 2) - comm(0.1), 2)
            held = []
        elif t == 10:
            held = [("sell", 0.1, o[10], t_s[10])]
            bal = round(bal - comm(0.1), 2)
        elif t == 13:
            held = [("buy", 0.2, a[13], t_s[13])]
            bal = round(bal - comm(0.2), 2)
    final = round(bal + round((_r(cl[15]) - a[13]) * 0.2 * 1e5, 2) - comm(0.2), 2)
    balance[n] = final

    exp_acc = np.zeros((n, 8))
    for t in range(n):
        buy_l = sell_l = buy_p = sell_p = disc = 0.0
        for side, lots, entry, et in pos_at_open[t]:
            p = (o[t] - entry) * lots * 1e5 if side == "buy" else (entry - a[t]) * lots * 1e5
            disc += p - (t_s[t] - et) / 36000 * abs(p)
            if side == "buy":
                buy_l, buy_p = buy_l + lots, buy_p + p
            else:
                sell_l, sell_p = sell_l + lots, sell_p + p
        exp_acc[t] = [balance[t], balance[t] + buy_p + sell_p, buy_l, sell_l, buy_p, sell_p,
                      disc, t_s[t]]
    np.testing.assert_allclose(res.accounts, exp_acc, rtol=0, atol=1e-6)
    assert res.profit == pytest.approx(final - 10_000, abs=1e-9)
    assert res.final_balance == pytest.approx(final, abs=1e-9)

    # -- states: rows t-1, t-2, ..., t-120 of the features, newest first
    for t in (0, 7, 15):
        want = np.concatenate([feats[off + t - 1 - b] for b in range(120)])
        np.testing.assert_array_equal(res.states[t], want)
    assert res.states.dtype == np.float32 and res.states.shape == (n, 1080)

    # -- actions: the netted action, whatever was executed from it
    exp_act = np.array([_net(SCRIPT.get(t, ZERO)) for t in range(n)])
    np.testing.assert_array_equal(res.actions, exp_act)
    assert res.actions[3, 0] == 0.3 - 0.1 and res.actions[5, 3] == 0.2 - 0.1

    # -- actor vectors (spec 2.3) from the hand records
    two_pi = 2 * math.pi
    for t in range(n):
        rec, prev = exp_acc[t], exp_acc[max(t - 1, 0)]
        x = t_s[t]
        want = [(rec[0] - prev[0]) / prev[0], rec[1] / prev[0], (rec[1] - prev[1]) / prev[1],
                rec[2], rec[3], rec[4] / prev[0], rec[5] / prev[0], rec[6] / prev[0],
                math.sin(two_pi * x / 31_536_000), math.cos(two_pi * x / 2_592_000),
                math.sin(two_pi * x / 604_800), math.sin(two_pi * x / 86_400)]
        np.testing.assert_allclose(res.actor_inputs[t], want, rtol=1e-5, atol=1e-7)
    # the policy saw exactly these inputs, once per bar in order
    assert [c[0] for c in policy.calls] == list(range(n))
    for t, state, vec in policy.calls:
        np.testing.assert_array_equal(state, res.states[t])
        np.testing.assert_array_equal(vec, res.actor_inputs[t])

    # -- rewards of action i, measured at the open of bar i+1 (last: the final close)
    flat = [t in (0, 7, 8, 9, 12) for t in range(n)]
    np.testing.assert_array_equal(res.flat, flat)
    atr = feats[off:off + n, 6].astype(np.float64)
    exp_r = np.zeros((n, 3))
    for t in range(n):
        nb = balance[t + 1]
        ne = exp_acc[t + 1, 1] if t + 1 < n else final
        exp_r[t] = [(nb - balance[t]) / balance[t], (ne - balance[t]) / balance[t],
                    -atr[t] / nb if flat[t] else 0.0]
    np.testing.assert_allclose(res.rewards, exp_r, rtol=1e-9, atol=1e-12)
    assert res.rewards[11, 0] < 0  # the SL loss belongs to the action that held the sell
    assert res.rewards[8, 2] == pytest.approx(-atr[8] / balance[9])  # no accumulation

    # -- the deals the ledger implies
    kinds = [(d.entry, d.side, d.volume, d.reason) for d in res.replay.deals]
    assert kinds == [
        ("in", "buy", 0.1, "agent"), ("in", "buy", 0.1, "agent"),
        ("out", "sell", 0.1, "agent"), ("out", "sell", 0.1, "agent"),
        ("in", "sell", 0.1, "agent"), ("out", "buy", 0.1, "agent"),
        ("in", "sell", 0.1, "agent"), ("out", "buy", 0.1, "sl"),
        ("in", "buy", 0.2, "agent"), ("out", "sell", 0.2, "end_of_test")]


def test_pass_to_store_keeps_immediate_rewards(scripted, tmp_path):
    res, _ = scripted
    traj = res.to_trajectory("scripted", {"pass": 0})
    store = TrajectoryStore.open(tmp_path / "s", create=True)
    assert store.add(traj, min_profit=-1e9).kept
    back = store.load(0)
    assert back.discounted and back.policy == "scripted" and back.seed == 3
    assert back.profit == res.profit and back.extra == {"deals": 10, "trades": 5,
                                                        "pass": 0, "rejected_orders": 0}
    np.testing.assert_allclose(back.immediate_rewards(), res.rewards, atol=2e-6)
    np.testing.assert_array_equal(back.states, res.states)
    np.testing.assert_array_equal(back.accounts, res.accounts)


def test_window_too_early_for_the_state_is_an_error(data):
    bars, feats = data
    with pytest.raises(Exception, match="warm-up"):
        run_agent_pass(bars, feats, ScriptedPolicy({}), None, "2017-05-05")


# ---- Real-ORL -----------------------------------------------------------------------------
def test_realorl_deals_open_at_their_bar_with_stops_from_the_close(data, tmp_path):
    bars, feats = data
    off = int(np.searchsorted(bars.time_s, 1_678_075_200))  # 2023-03-06 04:00
    o = np.array([_r(x) for x in bars.open[off:off + 16]])
    a = np.array([_r(x + SPREAD) for x in o])
    t_s = bars.time_s[off:off + 16]
    hi, lo = bars.high[off:off + 16], bars.low[off:off + 16]
    # winning buy opened 05:20, closed 09:40: TP := close price, far above the highs
    tp_buy = _r(max(hi[1:6]) + 0.0030)
    # losing sell opened 13:05, closed 18:30 at a price above the highs: SL := close
    sl_sell = _r(max(hi[9:15]) + 0.0020)
    # winning sell opened 10:10, TP inside bar 7's range: closed by TP intrabar
    tp_hit = _r(lo[7] + 0.0002)
    assert lo[6] + SPREAD > tp_hit and o[7] + SPREAD > tp_hit  # not earlier, no gap
    csv = tmp_path / "signal.csv"
    csv.write_text(
        "Time;Type;Volume;Symbol;Price;Volume2;Time;Price;Commission;Swap;Profit\n"
        f"2023.03.06 05:20:00;Buy;0.30;EURUSD;1.06460;0.10;2023.03.06 09:40:00;{tp_buy};0;0;1\n"
        f"2023.03.06 13:05:00;Sell;0.20;EURUSD;1.06290;0.20;2023.03.06 18:30:00;{sl_sell};0;0;-1\n"
        f"2023.03.06 10:10:00;Sell;0.10;EURUSD;{tp_hit + 0.001:.5f};0.10;2023.03.06 11:50:00;"
        f"{tp_hit};0;0;1\n"
        "2023.03.06 06:00:00;Buy;1.00;GBPUSD;1.20000;1.00;2023.03.06 07:00:00;1.2;0;0;1\n")
    fmt, imp = import_deal_file(csv)
    assert fmt == "signals" and imp.skipped_symbols == 1 and len(imp.deals) == 3
    window = BarArrays(**{k: v[off:off + 16] for k, v in bars.__dict__.items()})
    pol = realorl_policy(imp.deals, window, CFG)
    res = run_agent_pass(bars, feats, pol, START, END, zero_means_none=True)
    exp = np.zeros((16, 6))
    for t in range(1, 6):  # 05:00 .. 09:00 (the 05:20 deal is held from the open of 05:00)
        exp[t, 0:3] = [0.1, (tp_buy - a[t]) / 0.01, 0.0]
    for t in range(6, 8):  # 10:00, 11:00
        exp[t, 3:6] = [0.1, (o[t] - tp_hit) / 0.01, 0.0]
    for t in range(9, 15):  # 13:00 .. 18:00
        exp[t, 3:6] = [0.2, 0.0, (sl_sell - o[t]) / 0.01]
    np.testing.assert_allclose(pol.actions, exp, atol=1e-12)
    np.testing.assert_allclose(res.actions, exp, atol=1e-12)
    deals = [(d.time, d.entry, d.side, d.volume, d.price, d.reason) for d in res.replay.deals]
    assert deals == [
        (t_s[1], "in", "buy", 0.1, a[1], "agent"),
        (t_s[6], "out", "sell", 0.1, o[6], "agent"),  # buy held until the bar after 09:40
        (t_s[6], "in", "sell", 0.1, o[6], "agent"),
        (t_s[7], "out", "buy", 0.1, tp_hit, "tp"),  # TP from the close price, hit in bar 7
        (t_s[9], "in", "sell", 0.2, o[9], "agent"),
        (t_s[15], "out", "buy", 0.2, a[15], "agent"),
    ]
    assert res.accounts[2, 2] == 0.1 and res.accounts[10, 3] == 0.2


def test_example_deal_file_is_the_ma_cross_demo_and_imports():
    path = importlib.resources.files("neurofx.data").joinpath("example_deals_ma_cross.csv")
    fmt, imp = import_deal_file(path)
    assert fmt == "neurofx" and imp.unmatched == 0 and len(imp.deals) > 100
    assert all(d.open_time >= 1_672_531_200 and d.close_time < 1_704_067_200 for d in imp.deals)


def test_example_deal_file_regenerates_byte_identical(tmp_path):
    path = importlib.resources.files("neurofx.data").joinpath("example_deals_ma_cross.csv")
    deals = example_deals(load_bars())
    write_deals_csv(tmp_path / "x.csv", deals)
    shipped = Path(str(path)).read_text().splitlines(keepends=True)
    assert shipped[0].startswith("# EXAMPLE deal history made by neurofx's rule-based")
    assert shipped[1].startswith("# over EURUSD H1 2023 - NOT a real trading signal.")
    body = "".join(ln for ln in shipped if not ln.startswith("#"))
    assert (tmp_path / "x.csv").read_text() == body
    assert read_deals_csv(Path(str(path))) == deals  # the comment lines are skipped


# ---- the command ----------------------------------------------------------------------------
SHORT = ["--start", "2023-03-06", "--end", "2023-03-11"]
TRIM = None  # a bar file with the bundled bars of 2022-09 .. 2023-03 (fast to load)


@pytest.fixture(scope="module", autouse=True)
def trimmed_bars(tmp_path_factory):
    global TRIM
    TRIM = tmp_path_factory.mktemp("bars") / "eurusd_h1_trim.csv"
    load_bars().loc["2022-09-01":"2023-03-31"].to_csv(TRIM)
    yield TRIM
    TRIM = None


def _sets(tmp_path):
    return ["--set", f'runs.root="{tmp_path / "runs"}"', "--set", f'data.file="{TRIM}"']


def _run_cli(tmp_path, *args):
    return cli_main(["research", *SHORT, *_sets(tmp_path), *args])


def _digest(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir())}


def test_same_seed_gives_identical_store_bytes_for_any_jobs(tmp_path, capsys):
    common = ["--passes", "4", "--seed", "7", "--min-profit=-1e9"]
    assert _run_cli(tmp_path, "--store", str(tmp_path / "a"), "--jobs", "1", *common) == 0
    out = capsys.readouterr().out
    assert "passes 4: kept" in out and "profit min" in out
    assert _run_cli(tmp_path, "--store", str(tmp_path / "b"), "--jobs", "2", *common) == 0
    da, db = _digest(tmp_path / "a"), _digest(tmp_path / "b")
    assert da == db and len(da) >= 3
    store = TrajectoryStore.open(tmp_path / "a")
    seeds = [e["seed"] for e in store.entries]
    assert len(set(seeds)) == len(seeds)
    # another seed gives other trajectories
    assert _run_cli(tmp_path, "--store", str(tmp_path / "c"), "--jobs", "1", "--passes", "4",
                    "--seed", "8", "--min-profit=-1e9") == 0
    assert _digest(tmp_path / "c") != da
    # info prints counts and statistics
    assert cli_main(["research", "info", "--store", str(tmp_path / "a")]) == 0
    info = capsys.readouterr().out
    assert "trajectories" in info and "buy_lots" in info


def test_neural_command_identical_for_any_jobs(tmp_path, capsys):
    common = ["--policy", "neural", "--passes", "2", "--seed", "1", "--min-profit=-1e9",
              "--start", "2023-03-07", "--end", "2023-03-08"]
    for jobs, name in (("1", "a"), ("2", "b")):
        assert cli_main(["research", *_sets(tmp_path), *common, "--jobs", jobs,
                         "--store", str(tmp_path / name)]) == 0
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    store = TrajectoryStore.open(tmp_path / "a")
    first = store.load(0)
    assert first.policy == "neural" and first.steps == 24
    assert len({tuple(r) for r in first.actions}) > 12  # the stochastic head explores


def test_realorl_command_with_deal_files(tmp_path, capsys):
    src = Path(__file__).parent / "fixtures"
    bad = tmp_path / "bad.csv"
    bad.write_text("Time;Type;Volume;Symbol;Price;Volume2;Time;Price;Commission;Swap;Profit\n"
                   "2023.03.06 05:20:00;Buy;0.30;EURUSD;1.06460;0.10;2023.03.06 09:40:00\n")
    assert _run_cli(tmp_path, "--store", str(tmp_path / "s"), "--policy", "real-orl",
                    "--deals", str(bad)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.csv, line 2, field 'field count'" in err[0]
    # the fixture deals are from January 2023: outside this window the pass trades nothing
    assert cli_main(["research", "--policy", "real-orl", "--start", "2023-01-02",
                     "--end", "2023-01-04", "--store", str(tmp_path / "s"), *_sets(tmp_path),
                     "--deals",
                     str(src / "deals_signals.csv"), str(src / "deals_mt5.csv"),
                     str(src / "deals_neurofx.csv")]) == 0
    out = capsys.readouterr().out
    assert "passes 3: kept 3" in out
    store = TrajectoryStore.open(tmp_path / "s")
    assert [e["policy"] for e in store.entries] == ["real-orl"] * 3
    assert [store.load(i).extra["deals_file"] for i in range(3)] == [
        "deals_signals.csv", "deals_mt5.csv", "deals_neurofx.csv"]


@pytest.mark.parametrize("case", ["garbage_manifest", "foreign_dir", "wrong_version",
                                  "corrupt_npz", "missing_deals", "no_symbol_deals"])
def test_bad_inputs_give_one_line_exit_2(tmp_path, capsys, case):
    store = tmp_path / "store"
    args = ["--passes", "1", "--jobs", "1"]
    action = []
    if case == "garbage_manifest":
        store.mkdir()
        (store / "manifest.json").write_text("{not json")
    elif case == "foreign_dir":
        store.mkdir()
        (store / "notes.txt").write_text("mine")
    elif case == "wrong_version":
        assert _run_cli(tmp_path, "--store", str(store), "--min-profit=-1e9", *args) == 0
        m = store / "manifest.json"
        m.write_text(m.read_text().replace('"version": 2', '"version": 99'))
    elif case == "corrupt_npz":
        assert _run_cli(tmp_path, "--store", str(store), "--min-profit=-1e9", *args) == 0
        f = next(store.glob("traj_*.npz"))
        data = bytearray(f.read_bytes())
        data[len(data) // 2] ^= 0xFF
        f.write_bytes(bytes(data))
        action = ["info"]
    elif case == "missing_deals":
        args = ["--policy", "real-orl", "--deals", str(tmp_path / "nope.csv")]
    elif case == "no_symbol_deals":
        f = tmp_path / "gbp.csv"
        f.write_text("2023.03.06 06:00:00;Buy;1.00;GBPUSD;1.2;1.00;2023.03.06 07:00:00;1.2;0;0;1\n")
        args = ["--policy", "real-orl", "--deals", str(f)]
    capsys.readouterr()
    if action:
        rc = cli_main(["research", "info", "--store", str(store)])
    else:
        rc = _run_cli(tmp_path, "--store", str(store), *args)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("neurofx research: error: ")
    expect = {"garbage_manifest": "manifest.json", "foreign_dir": "not a neurofx trajectory",
              "wrong_version": "'version' is 99", "corrupt_npz": "sha256",
              "missing_deals": "nope.csv: deal file not found",
              "no_symbol_deals": "no closed EURUSD deals"}[case]
    assert expect in err[0]


def test_sigkill_mid_run_leaves_a_loadable_store(tmp_path):
    store = tmp_path / "store"
    env = dict(os.environ)
    cmd = [sys.executable, "-m", "neurofx.cli", "research", "--passes", "200", "--jobs", "1",
           "--min-profit=-1e9", "--store", str(store), *SHORT, *_sets(tmp_path)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            m = store / "manifest.json"
            if m.exists() and m.read_text().count('"steps"') >= 3:
                break
            time.sleep(0.02)
        else:
            pytest.fail("the research run committed nothing within 60 s")
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    s = TrajectoryStore.open(store)
    assert len(s) >= 3
    s.verify()
    # running again resumes: the passes the store decided are skipped, no duplicates (issue 12)
    decided = len(s.decided)
    assert decided == len(s)
    assert cli_main(["research", "--passes", str(decided + 2), "--jobs", "1",
                     "--min-profit=-1e9", "--store", str(store), *SHORT, *_sets(tmp_path)]) == 0
    again = TrajectoryStore.open(store)
    assert len(again) == len(s) + 2
    seeds = [e["seed"] for e in again.entries]
    assert len(set(seeds)) == len(seeds)  # every pass once


def test_ctrl_c_stops_cleanly_and_keeps_committed_passes(tmp_path):
    store = tmp_path / "store"
    env = dict(os.environ)
    cmd = [sys.executable, "-m", "neurofx.cli", "research", "--passes", "200", "--jobs", "2",
           "--min-profit=-1e9", "--store", str(store), *SHORT, *_sets(tmp_path)]
    # a user's terminal delivers Ctrl-C to a default handler; a test runner started in the
    # background of a non-interactive shell would pass SIGINT on as ignored
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            m = store / "manifest.json"
            if m.exists() and m.read_text().count('"steps"') >= 2:
                break
            time.sleep(0.02)
        else:
            pytest.fail("the research run committed nothing within 60 s")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert "(interrupted)" in err and err.rstrip().endswith("neurofx research: interrupted")
    assert "Traceback" not in err
    s = TrajectoryStore.open(store)
    assert 2 <= len(s) < 200
    s.verify()
