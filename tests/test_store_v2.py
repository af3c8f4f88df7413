"""Store format version 2 (issue 13): one feature matrix per store, bar indices per step,
windows built on read; version-1 stores still read and migrated; studies give the same weights
on either; passes of other bars or feature settings refused in one line."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from neurofx.cli import main as cli_main
from neurofx.collectors.store import TrajectoryStore
from neurofx.collectors.trajectory import Trajectory
from neurofx.data import compute_features, load_bars
from neurofx.data.features import FeatureMatrix, state_windows
from neurofx.errors import NeurofxError

SHORT = ["--start", "2023-03-06", "--end", "2023-03-11"]
FAST = ["--iterations", "3", "--batch", "2", "--seq-len", "4", "--no-progress", "--model",
        "baseline", "--val-share", "0.25"]


@pytest.fixture(scope="module")
def bars_file(spring_2023_bars):
    return spring_2023_bars


def _sets(root, bars_file, *more):
    out = ["--set", f'runs.root="{root / "runs"}"', "--set", f'data.file="{bars_file}"']
    for m in more:
        out += ["--set", m]
    return out


@pytest.fixture(scope="module")
def stores(tmp_path_factory, bars_file):
    """A version-2 store of 6 research passes, the same passes as a version-1 store, and that
    store migrated."""
    root = tmp_path_factory.mktemp("v2")
    assert cli_main(["research", *SHORT, *_sets(root, bars_file), "--store", str(root / "v2"),
                     "--passes", "6", "--seed", "3", "--jobs", "1",
                     "--min-profit=-1e9"]) == 0
    v2 = TrajectoryStore.open(root / "v2")
    for name in ("v1", "migrated"):
        v1 = TrajectoryStore.open(root / name, create=True)
        for i, t in enumerate(v2):
            raw = Trajectory(states=np.asarray(t.states), accounts=t.accounts,
                             actions=t.actions, rewards=t.rewards, profit=t.profit,
                             policy=t.policy, seed=t.seed, period=t.period,
                             final_equity=t.final_equity, discounted=True, extra=t.extra)
            assert v1.add(raw, min_profit=-1e9, key=v2.decided[i]).kept
        assert v1.version == 1
    assert cli_main(["research", "migrate", "--store", str(root / "migrated"),
                     *_sets(root, bars_file)]) == 0
    return root


def _digests(store: TrajectoryStore) -> list[str]:
    return [e["sha256"] for e in store.entries]


def test_v2_layout_windows_and_bytes(stores):
    v2, v1 = TrajectoryStore.open(stores / "v2"), TrajectoryStore.open(stores / "v1")
    man = json.loads((stores / "v2" / "manifest.json").read_text())
    assert man["version"] == 2 and v2.version == 2 and v1.version == 1
    f = man["features"]
    assert f["file"] == f"features_{f['key']}.npy" and (stores / "v2" / f["file"]).is_file()
    assert f["settings"]["tick_volume"] == "normalized" and f["settings"]["history"] == 120
    # per step only the bar index (int32) besides account, action and rewards
    with np.load(stores / "v2" / v2.entries[0]["file"]) as npz:
        assert sorted(npz.files) == ["accounts", "actions", "bars", "meta", "rewards"]
        assert npz["bars"].dtype == np.int32
    # the windows are the version-1 states, value for value
    for a, b in zip(v2, v1, strict=True):
        np.testing.assert_array_equal(np.asarray(a.states), b.states)
        np.testing.assert_array_equal(a.states[3], b.states[3])
        np.testing.assert_array_equal(a.states[:, :9], b.states[:, :9])
        np.testing.assert_array_equal(a.accounts, b.accounts)
    # the matrix is memory-mapped once and shared
    assert isinstance(v2.matrix().newest_first, np.memmap)
    assert v2.load(0).states.matrix is v2.load(1).states.matrix
    size = lambda s: sum(e["bytes"] for e in s.entries)  # noqa: E731
    assert size(v2) * 3 < size(v1)  # the deflated v1 windows: ~60x smaller than in memory
    assert "v2" in v2.info().to_text()


def test_migrated_store_equals_a_collected_one(stores, capsys):
    v2, mig = TrajectoryStore.open(stores / "v2"), TrajectoryStore.open(stores / "migrated")
    assert mig.version == 2 and _digests(mig) == _digests(v2)  # record files byte-identical
    assert mig.features == v2.features and mig.decided == v2.decided
    assert not list((stores / "migrated").glob(".tmp-*"))
    names = sorted(p.name for p in (stores / "migrated").iterdir() if p.name != ".neurofx.lock")
    assert names == sorted([mig.features["file"], "manifest.json",
                            *[e["file"] for e in mig.entries]])
    # migrating again does nothing
    assert cli_main(["research", "migrate", "--store", str(stores / "migrated"),
                     "--set", f'runs.root="{stores / "runs"}"']) == 0
    assert "version 2 already" in capsys.readouterr().out


def _weights(path):
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files if npz[k].dtype.kind == "f"}


def test_study_gives_the_same_weights_on_v1_v2_and_migrated(stores, bars_file):
    runs = {}
    for name in ("v1", "v2", "migrated"):
        for stage in ("encoder", "actor"):
            assert cli_main(["study", stage, "--store", str(stores / name), "--run", name,
                             *FAST, "--set", f'runs.root="{stores / "runs"}"']) == 0
        runs[name] = {f: _weights(stores / "runs" / name / f)
                      for f in ("encoder.npz", "actor.npz", "critic.npz")}
    for name in ("v2", "migrated"):
        for f, arrays in runs["v1"].items():
            assert arrays.keys() == runs[name][f].keys() and arrays
            for k in arrays:
                np.testing.assert_array_equal(arrays[k], runs[name][f][k], err_msg=f"{f} {k}")


def test_other_settings_or_bars_are_refused_in_one_line(stores, bars_file, tmp_path, capsys):
    capsys.readouterr()
    before = (stores / "v2" / "manifest.json").read_bytes()
    assert cli_main(["research", *SHORT, "--store", str(stores / "v2"), "--passes", "1",
                     "--jobs", "1", *_sets(tmp_path, bars_file, 'data.tick_volume="raw"')]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "other feature settings: tick_volume 'raw' (store: " \
        "'normalized')" in err[0], err
    other = tmp_path / "other.csv"
    load_bars().loc["2022-10-01":"2023-03-31"].to_csv(other)
    assert cli_main(["research", *SHORT, "--store", str(stores / "v2"), "--passes", "1",
                     "--jobs", "1", *_sets(tmp_path, other)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "this pass was made on other bars" in err[0], err
    assert (stores / "v2" / "manifest.json").read_bytes() == before
    # migrating with other settings names the file and the step
    assert cli_main(["research", "migrate", "--store", str(stores / "v1"),
                     *_sets(tmp_path, bars_file, 'data.tick_volume="raw"')]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "field 'states' step 0 differs" in err[0], err
    assert TrajectoryStore.open(stores / "v1").version == 1


def test_records_and_matrix_are_checked(tmp_path):
    frame = load_bars().loc["2022-11-01":"2023-02-01"]
    feats = compute_features(frame)
    m = FeatureMatrix.from_features(feats, "b" * 64)
    acc = np.zeros((50, 8))
    acc[:, 0] = acc[:, 1] = 10_000.0
    traj = Trajectory(states=m.windows(np.arange(300, 350)), accounts=acc,
                      actions=np.zeros((50, 6)), rewards=np.ones((50, 3)) * 1e-4, profit=20.0,
                      policy="p", seed=1)
    np.testing.assert_array_equal(np.asarray(traj.states),
                                  state_windows(feats, np.arange(300, 350)))
    store = TrajectoryStore.open(tmp_path / "s", create=True)
    assert store.add(traj).kept and store.version == 2
    # raw states into a version-2 store: one line
    raw = Trajectory(states=np.asarray(traj.states), accounts=acc, actions=traj.actions,
                     rewards=traj.rewards, profit=20.0, policy="p")
    with pytest.raises(NeurofxError, match="version-2 store keeps windows"):
        store.add(raw)
    # a window before the warm-up is refused when the record is made
    with pytest.raises(NeurofxError, match="warm-up"):
        m.windows(np.arange(10, 20))
    # a corrupt matrix file is named by the reader
    f = tmp_path / "s" / store.features["file"]
    data = bytearray(f.read_bytes())
    data[-5] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(NeurofxError, match="features_.*sha256"):
        TrajectoryStore.open(tmp_path / "s").load(0)
    # an uncommitted matrix (a killed first write) is an orphan: ignored, then deleted
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / f.name).write_bytes(b"half")
    t = TrajectoryStore.open(tmp_path / "t")
    assert len(t) == 0 and t.version is None
    assert t.add(traj).kept
    assert hashlib.sha256((tmp_path / "t" / f.name).read_bytes()).hexdigest() == \
        t.features["sha256"]
