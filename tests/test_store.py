"""Trajectory record, TrajectoryStore (format, buffer rules, atomicity, validation), .bd import."""

import hashlib
import json
import os
import signal
import struct
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import neurofx.atomic as atomic_mod
from neurofx.collectors.store import TrajectoryStore, npz_bytes
from neurofx.collectors.trajectory import Trajectory, import_mt5_bd
from neurofx.errors import NeurofxError


def make(i: int, steps: int = 40, profit: float | None = None, final_equity=None, policy="random",
         cheap: bool = False):
    """Deterministic trajectory number ``i`` (same recipe in the SIGKILL child below).

    ``cheap``: states that deflate fast (one value per row), so a writer spends its time on disk.
    """
    rng = np.random.default_rng(i)
    states = rng.normal(size=(steps, 1 if cheap else 1080)) * np.ones((1, 1080))
    acc = np.zeros((steps, 8))
    acc[:, 0] = 10000.0 + i
    acc[:, 1] = 10000.0 + i + rng.normal(size=steps)
    acc[:, 2] = (np.arange(steps) % 3 == 0) * 0.1
    acc[:, 7] = 1672646400 + 3600 * np.arange(steps)
    return Trajectory(
        states=states,
        accounts=acc,
        actions=rng.uniform(0, 1, size=(steps, 6)),
        rewards=rng.normal(scale=1e-3, size=(steps, 3)),
        profit=10.0 + i if profit is None else profit,
        policy=policy, seed=i, period="2023-01-01..2023-12-31", final_equity=final_equity,
    )


def files_of(path):
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


# ---- the record -------------------------------------------------------------------------------
def test_discount_once_hand_computed():
    rewards = np.array([[1.0, 0, 0], [2.0, 0, 0], [4.0, 0, 1]], dtype=np.float32)
    t = Trajectory(np.zeros((3, 1080)), np.ones((3, 8)), np.zeros((3, 6)), rewards,
                   profit=1.0, policy="p")
    d = t.discount()
    # R2 = 4, R1 = 2 + 0.99*4 = 5.96, R0 = 1 + 0.99*5.96 = 6.9004; third column 0.9801, 0.99, 1
    np.testing.assert_allclose(d.rewards[:, 0], [6.9004, 5.96, 4.0], rtol=1e-6)
    np.testing.assert_allclose(d.rewards[:, 2], [0.9801, 0.99, 1.0], rtol=1e-6)
    assert d.discounted and not t.discounted
    assert d.score == pytest.approx(6.9004 + 0.9801, rel=1e-6)
    np.testing.assert_allclose(d.immediate_rewards(), rewards, atol=1e-6)
    with pytest.raises(NeurofxError, match="already discounted"):
        d.discount()
    with pytest.raises(NeurofxError, match="discount"):
        _ = t.score


def test_record_validation_and_defaults():
    t = make(3)
    assert t.final_equity == t.accounts[-1, 1] and t.steps == 40
    assert t.states.dtype == np.float32 and t.accounts.dtype == np.float64
    bad = make(3).states.copy()
    bad[5, 7] = np.nan
    with pytest.raises(NeurofxError, match=r"field 'states' holds NaN or inf \(first at step 5\)"):
        Trajectory(bad, t.accounts, t.actions, t.rewards, profit=1, policy="p")
    with pytest.raises(NeurofxError, match=r"field 'actions' has shape \(40, 5\)"):
        Trajectory(t.states, t.accounts, t.actions[:, :5], t.rewards, profit=1, policy="p")


# ---- store: round trip, rules, determinism ----------------------------------------------------
def test_round_trip(tmp_path):
    s = TrajectoryStore.open(tmp_path / "st", create=True)
    t = make(1)
    assert s.add(t).kept
    s2 = TrajectoryStore.open(tmp_path / "st")
    got = s2.load(0)
    np.testing.assert_array_equal(got.states, t.states)
    np.testing.assert_array_equal(got.accounts, t.accounts)  # float64: bar times stay exact
    np.testing.assert_array_equal(got.actions, t.actions)
    np.testing.assert_array_equal(got.rewards, t.discount().rewards)
    assert got.discounted and got.seed == 1 and got.policy == "random"
    assert (got.profit, got.final_equity, got.period) == (t.profit, t.final_equity, t.period)
    assert s2.scores()[0] == pytest.approx(float(np.sum(t.discount().rewards[0], dtype=float)))
    man = json.loads((tmp_path / "st" / "manifest.json").read_text())
    assert man["format"] == "neurofx-trajectories" and man["version"] == 1
    e = man["trajectories"][0]
    data = (tmp_path / "st" / e["file"]).read_bytes()
    assert e["sha256"] == hashlib.sha256(data).hexdigest() and e["steps"] == 40
    # plain numpy reads it without pickle
    with np.load(tmp_path / "st" / e["file"], allow_pickle=False) as z:
        assert set(z.files) == {"states", "accounts", "actions", "rewards", "meta"}


def test_min_profit_rule(tmp_path):
    s = TrajectoryStore.open(tmp_path / "st", create=True)
    r = s.add(make(1, profit=9.99))
    assert not r.kept and "9.99 < min_profit 10.00" in r.reason
    r = s.add(make(2, profit=0.0), min_profit=-10000)
    assert not r.kept and "profit is 0" in r.reason
    assert s.add(make(3, profit=-50.0), min_profit=-10000).kept  # Real-ORL threshold
    assert s.add(make(4, profit=10.0)).kept  # >= is inclusive
    assert len(s) == 2 and not (tmp_path / "st" / "traj_000003.npz").exists()


def test_capacity_replaces_lowest_final_equity(tmp_path):
    s = TrajectoryStore.open(tmp_path / "st", create=True, capacity=3)
    for i, eq in enumerate([100.0, 50.0, 80.0]):
        assert s.add(make(i, final_equity=eq)).kept
    r = s.add(make(10, final_equity=60.0))
    assert r.kept and r.replaced == "traj_000002.npz" and r.file == "traj_000004.npz"
    assert [e["final_equity"] for e in s.entries] == [100.0, 60.0, 80.0]  # same slot
    assert not (tmp_path / "st" / "traj_000002.npz").exists()
    r = s.add(make(11, final_equity=59.0))
    assert not r.kept and "59.00 < lowest kept 60.00" in r.reason
    r = s.add(make(12, final_equity=60.0))  # equal to the minimum: kept
    assert r.kept and r.replaced == "traj_000004.npz"
    assert [e["seed"] for e in TrajectoryStore.open(tmp_path / "st").entries] == [0, 12, 2]
    assert TrajectoryStore.open(tmp_path / "st", capacity=9).capacity == 3  # store keeps its own


def test_same_adds_same_bytes(tmp_path):
    for name in ("a", "b"):
        s = TrajectoryStore.open(tmp_path / name, create=True, capacity=2)
        for i in range(4):
            s.add(make(i, final_equity=float(i % 3)))
        time.sleep(1.1 if name == "a" else 0)  # timestamps must not leak into the files
    assert files_of(tmp_path / "a") == files_of(tmp_path / "b")


# ---- atomicity --------------------------------------------------------------------------------
class Crash(Exception):
    pass


def test_crash_between_renames(tmp_path, monkeypatch):
    path = tmp_path / "st"
    s = TrajectoryStore.open(path, create=True, capacity=2)
    s.add(make(0, final_equity=1.0))
    s.add(make(1, final_equity=2.0))
    before = files_of(path)
    real_replace = os.replace
    calls = []

    def replace_then_crash(src, dst):
        calls.append(dst)
        if len(calls) == 2:  # the npz is in place, the manifest is not yet
            raise Crash
        real_replace(src, dst)

    monkeypatch.setattr(atomic_mod.os, "replace", replace_then_crash)
    with pytest.raises(Crash):
        s.add(make(2, final_equity=3.0))  # would replace traj_000001
    monkeypatch.setattr(atomic_mod.os, "replace", real_replace)
    assert str(calls[0]).endswith("traj_000003.npz") and str(calls[1]).endswith("manifest.json")
    assert (path / "traj_000003.npz").exists()
    assert not [p.name for p in path.iterdir() if p.name.startswith(".")]  # temp removed
    (path / ".tmp-4242-00ff00ff-manifest.json").write_bytes(b"{")  # as a SIGKILL leaves it
    s2 = TrajectoryStore.open(path)  # orphan npz and temp manifest are ignored
    assert [e["seed"] for e in s2.entries] == [0, 1]
    s2.verify()
    s2.add(make(2, final_equity=3.0))  # next write cleans up and reuses the id
    ref = TrajectoryStore.open(tmp_path / "ref", create=True, capacity=2)
    for i, eq in enumerate([1.0, 2.0, 3.0]):
        ref.add(make(i, final_equity=eq))
    assert files_of(path) == files_of(tmp_path / "ref")
    assert before != files_of(path)


def test_uncommitted_first_write_is_an_empty_store(tmp_path):
    path = tmp_path / "st"
    path.mkdir()
    (path / "traj_000001.npz").write_bytes(b"half")
    (path / ".tmp-manifest.json").write_bytes(b"{")
    assert len(TrajectoryStore.open(path)) == 0
    s = TrajectoryStore.open(path, create=True)
    s.add(make(5))
    assert sorted(p.name for p in path.iterdir()) == ["manifest.json", "traj_000001.npz"]


def equity(i: int) -> float:
    """Final equity of add i in the SIGKILL test: rising, so most adds replace, some don't."""
    return float(i + i * 37 % 11)


CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[3])
    from test_store import equity, make
    import os, time
    from neurofx.collectors.store import TrajectoryStore
    real_fsync = os.fsync
    def slow_fsync(fd):  # a slow disk: widens the windows where half-done files exist
        real_fsync(fd)
        time.sleep(0.02)
    os.fsync = slow_fsync
    store = TrajectoryStore.open(sys.argv[1], create=True, capacity=6)
    print("ready", flush=True)
    i = int(sys.argv[2])
    while True:
        store.add(make(i, steps=300, final_equity=equity(i), cheap=True))
        print("done", i, flush=True)
        i += 1
    """
)


def expected_seeds(n_adds: int, capacity: int = 6) -> list[int]:
    """Independent model of the buffer rules for adds 0..n_adds-1 (all profitable)."""
    slots: list[tuple[int, float]] = []
    for i in range(n_adds):
        eq = equity(i)
        if len(slots) < capacity:
            slots.append((i, eq))
            continue
        m = min(range(len(slots)), key=lambda k: (slots[k][1], k))
        if eq >= slots[m][1]:
            slots[m] = (i, eq)
    return [seed for seed, _ in slots]


def test_sigkill_mid_write_leaves_loadable_store(tmp_path):
    path = tmp_path / "st"
    rng = np.random.default_rng(42)
    next_i = 0
    half_done = 0  # kills that left uncommitted files behind (i.e. hit a write on disk)
    tests_dir = os.path.dirname(__file__)
    for _ in range(6):
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path), str(next_i), tests_dir],
            stdout=subprocess.PIPE, text=True,
        )
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.5))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        done = [int(ln.split()[1]) for ln in out.splitlines() if ln.startswith("done")]
        reported = (done[-1] + 1) if done else next_i
        listed = {e["file"] for e in TrajectoryStore.open(path).entries} | {"manifest.json"}
        half_done += bool(set(os.listdir(path)) - listed)
        store = TrajectoryStore.open(path)
        store.verify()
        seeds = [e["seed"] for e in store.entries]
        # everything reported as committed is there; at most the one add in flight on top
        if seeds == expected_seeds(reported + 1) and seeds != expected_seeds(reported):
            next_i = reported + 1
        else:
            assert seeds == expected_seeds(reported), (reported, seeds)
            next_i = reported
        for k in range(len(store)):
            want = make(seeds[k], steps=300, cheap=True)
            np.testing.assert_array_equal(store.load(k).states, want.states)
    assert next_i >= 6  # the runs did write
    assert half_done >= 1, "no kill landed inside a write; the test did not test atomicity"
    store = TrajectoryStore.open(path)
    store.add(make(next_i, steps=300, final_equity=equity(next_i), cheap=True))
    ref = TrajectoryStore.open(tmp_path / "ref", create=True, capacity=6)
    for i in range(next_i + 1):
        ref.add(make(i, steps=300, final_equity=equity(i), cheap=True))
    # killed and resumed == uninterrupted, byte for byte, with every orphan cleaned
    assert files_of(path) == files_of(tmp_path / "ref")


# ---- validation -------------------------------------------------------------------------------
@pytest.fixture
def small_store(tmp_path):
    path = tmp_path / "st"
    s = TrajectoryStore.open(path, create=True)
    s.add(make(1))
    s.add(make(2))
    return path


def edit_manifest(path, fn):
    man = json.loads((path / "manifest.json").read_text())
    fn(man)
    (path / "manifest.json").write_text(json.dumps(man))


def replace_file(path, index, arrays):
    """Swap trajectory ``index`` for a crafted npz and make the manifest agree with it."""
    man = json.loads((path / "manifest.json").read_text())
    e = man["trajectories"][index]
    data = npz_bytes(arrays)
    (path / e["file"]).write_bytes(data)
    e["sha256"], e["bytes"] = hashlib.sha256(data).hexdigest(), len(data)
    (path / "manifest.json").write_text(json.dumps(man))


def arrays_of(t):
    meta = np.array(json.dumps(t.metadata()))
    return {"states": t.states, "accounts": t.accounts, "actions": t.actions,
            "rewards": t.rewards, "meta": meta}


def one_line_error(fn, *patterns):
    with pytest.raises(NeurofxError) as exc:
        fn()
    msg = str(exc.value)
    assert "\n" not in msg
    for p in patterns:
        assert p in msg, msg
    return msg


def test_unknown_version_and_foreign_manifest(small_store):
    edit_manifest(small_store, lambda m: m.update(version=3))  # 1 and 2 are read
    one_line_error(lambda: TrajectoryStore.open(small_store), "manifest.json", "'version' is 3")
    edit_manifest(small_store, lambda m: m.update(format="other", version=1))
    one_line_error(lambda: TrajectoryStore.open(small_store), "'format'", "not a neurofx")
    (small_store / "manifest.json").write_text("not json")
    one_line_error(lambda: TrajectoryStore.open(small_store), "manifest.json", "not a neurofx")


def test_foreign_directory_and_missing_store(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    one_line_error(lambda: TrajectoryStore.open(tmp_path), "not a neurofx", "notes.txt")
    one_line_error(lambda: TrajectoryStore.open(tmp_path / "nope"), "no trajectory store")


def test_corrupt_file_sha_and_size(small_store):
    name = json.loads((small_store / "manifest.json").read_text())["trajectories"][1]["file"]
    p = small_store / name
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))
    s = TrajectoryStore.open(small_store)
    s.load(0)  # the intact one still loads
    one_line_error(lambda: s.load(1), name, "'sha256'")
    p.write_bytes(bytes(data[:-10]))
    one_line_error(lambda: TrajectoryStore.open(small_store), name, "'bytes'")
    p.unlink()
    one_line_error(lambda: TrajectoryStore.open(small_store), name, "missing")


@pytest.mark.parametrize(
    "mutate, pattern",
    [
        (lambda a: a.update(states=a["states"][:, :1000]), "field 'states' has shape (40, 1000)"),
        (lambda a: a.update(actions=a["actions"].astype(np.float64)), "field 'actions' has dtype"),
        (lambda a: a["rewards"].__setitem__((3, 1), np.inf), "field 'rewards' holds NaN or inf"),
        (lambda a: a.pop("accounts"), "field 'accounts' is missing"),
        (lambda a: a.update(accounts=a["accounts"][:30]), "field 'accounts' has 30 steps"),
        (lambda a: a.update(meta=np.zeros(3)), "field 'meta'"),
    ],
)
def test_bad_arrays_in_file(small_store, mutate, pattern):
    arrays = {k: np.array(v) for k, v in arrays_of(make(2).discount()).items()}
    mutate(arrays)
    replace_file(small_store, 1, arrays)
    s = TrajectoryStore.open(small_store)
    one_line_error(lambda: s.load(1), "traj_000002.npz", pattern)


def test_steps_mismatch_with_manifest(small_store):
    replace_file(small_store, 0, arrays_of(make(1, steps=39).discount()))
    s = TrajectoryStore.open(small_store)
    one_line_error(lambda: s.load(0), "traj_000001.npz", "field 'steps' is 39")


# ---- info -------------------------------------------------------------------------------------
def test_info_hand_computed(tmp_path):
    s = TrajectoryStore.open(tmp_path / "st", create=True)
    a1, a2 = make(1, steps=6), make(2, steps=4, policy="real-orl", profit=30.0)
    for t in (a1, a2, make(3, profit=20.0)):
        s.add(t)
    info = s.info()
    assert (info.trajectories, info.total_steps) == (3, 6 + 4 + 40)
    assert (info.profit_min, info.profit_median, info.profit_max) == (11.0, 20.0, 30.0)
    assert info.policies == {"random": 2, "real-orl": 1}
    acts = np.concatenate([a1.actions, a2.actions, make(3).actions]).astype(np.float64)
    np.testing.assert_allclose(info.action_mean, acts.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(info.action_std, acts.std(axis=0), rtol=1e-9)
    # buy lots 0.1 on every third step: steps 0,3 of 6; 0,3 of 4; 14 of 40 -> 18 / 50
    assert info.position_share == pytest.approx(18 / 50)
    text = info.to_text()
    assert "3 of 500, 50 steps" in text and "median 20.00" in text and "36.0%" in text
    empty = TrajectoryStore.open(tmp_path / "e", create=True).info()
    assert empty.trajectories == 0 and "0 of 500" in empty.to_text()


# ---- seed .bd import --------------------------------------------------------------------------
def write_bd(path, trajs):
    out = [struct.pack("<i", len(trajs))]
    for states, acc, act, rew in trajs:
        out.append(struct.pack("<if", len(states), 0.99))
        for row in zip(states, acc, act, rew, strict=True):
            for block in row:
                out.append(struct.pack(f"<i{len(block)}f", len(block), *block))
    path.write_bytes(b"".join(out))


def test_import_mt5_bd(tmp_path):
    rng = np.random.default_rng(0)
    trajs = []
    for steps in (3, 5):
        acc = rng.normal(size=(steps, 8)).astype(np.float32)
        acc[:, 0] = 10000 + np.arange(steps) * 2.5
        trajs.append((rng.normal(size=(steps, 1080)).astype(np.float32), acc,
                      rng.normal(size=(steps, 6)).astype(np.float32),
                      rng.normal(size=(steps, 3)).astype(np.float32)))
    write_bd(tmp_path / "x.bd", trajs)
    got = import_mt5_bd(tmp_path / "x.bd")
    assert [t.steps for t in got] == [3, 5]
    for t, (st, acc, act, rew) in zip(got, trajs, strict=True):
        np.testing.assert_array_equal(t.states, st)
        np.testing.assert_array_equal(t.accounts, acc.astype(np.float64))
        np.testing.assert_array_equal(t.actions, act)
        np.testing.assert_array_equal(t.rewards, rew)
        assert t.discounted and t.gamma == pytest.approx(0.99)
        assert t.profit == pytest.approx(2.5 * (t.steps - 1))
    data = (tmp_path / "x.bd").read_bytes()
    (tmp_path / "y.bd").write_bytes(data[:-7])
    one_line_error(lambda: import_mt5_bd(tmp_path / "y.bd"), "y.bd", "'Total' of trajectory 1")
    bad = bytearray(data)
    bad[4 + 8 + 4 + 4320] = 9  # length field of step 0's account block
    (tmp_path / "z.bd").write_bytes(bytes(bad))
    one_line_error(lambda: import_mt5_bd(tmp_path / "z.bd"), "step 0 field 'accounts'")


def test_bad_manifest_entries(small_store):
    edit_manifest(small_store, lambda m: m["trajectories"][1].update(profit="12"))
    one_line_error(lambda: TrajectoryStore.open(small_store), "trajectories[1]", "'profit'")
    edit_manifest(small_store, lambda m: m["trajectories"][1].update(profit=12.0, file="../x.npz"))
    one_line_error(lambda: TrajectoryStore.open(small_store), "'file'", "not a valid file name")
    edit_manifest(small_store, lambda m: m.update(capacity=1))
    one_line_error(lambda: TrajectoryStore.open(small_store), "more than 'capacity'")
    with pytest.raises(NeurofxError, match="'extra' must be plain JSON"):
        Trajectory(**{k: getattr(make(1), k) for k in ("states", "accounts", "actions", "rewards")},
                   profit=1, policy="p", extra={"f": object()})
