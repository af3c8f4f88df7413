"""`neurofx study` through the CLI: error cases (one line, exit 2, nothing written) and the
optimizer comparison."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from study_fixtures import build_store

from neurofx import agents
from neurofx.cli import main
from neurofx.collectors.store import TrajectoryStore
from neurofx.nn.optim import make_optimizer
from neurofx.reports.training import read_study_log
from neurofx.study import files

FAST = ["--iterations", "2", "--batch", "2", "--seq-len", "4", "--no-progress", "--model",
        "baseline"]


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    build_store(root / "good", n=4, steps=60)
    build_store(root / "losers", n=3, steps=60, profitable=0)
    TrajectoryStore.open(root / "empty", create=True)
    return root


def _study(root, *args):
    return main(["study", *args, "--set", f"runs.root={root / 'runs'}"])


def _one_line_error(capsys, text):
    err = capsys.readouterr().err.strip()
    assert text in err, err
    assert err.startswith("neurofx study: error: ") and "\n" not in err
    return err


def test_empty_store(stores, tmp_path, capsys):
    assert _study(tmp_path, "encoder", "--store", str(tmp_path / "missing"), "--run", "x",
                  *FAST) == 2
    _one_line_error(capsys, "no trajectory store here")
    assert _study(tmp_path, "encoder", "--store", str(stores / "empty"), "--run", "x",
                  *FAST) == 2
    _one_line_error(capsys, "the trajectory store is empty")
    assert not (tmp_path / "runs").exists()


def test_unknown_optimizer_writes_nothing(stores, tmp_path, capsys):
    assert _study(tmp_path, "encoder", "--store", str(stores / "good"), "--run", "x",
                  "--optimizer", "adamx", *FAST) == 2
    # checked with the configuration, before the store is read (issue 11)
    _one_line_error(capsys, "--optimizer 'adamx': must be an optimizer name, one of sgd, ")
    assert _study(tmp_path, "encoder", "--store", str(stores / "good"), "--run", "x",
                  "--compare-optimizers", "adam,nope", *FAST) == 2
    _one_line_error(capsys, "unknown optimizer 'nope'")
    assert _study(tmp_path, "encoder", "--store", str(stores / "good"), "--run", "x",
                  "--opt-arg", "momentum=0.5", *FAST) == 2
    _one_line_error(capsys, "unknown hyper-parameter 'momentum'")
    assert not (tmp_path / "runs").exists()


def test_actor_needs_profitable_trajectories_and_an_encoder(stores, tmp_path, capsys):
    assert _study(tmp_path, "actor", "--store", str(stores / "good"), "--run", "r",
                  *FAST) == 2
    _one_line_error(capsys, "encoder.npz: model file not found")
    assert _study(tmp_path, "encoder", "--store", str(stores / "good"), "--run", "r",
                  "--model-arg", "encoder.hidden=8", *FAST) == 0
    capsys.readouterr()
    before = sorted(p.name for p in (tmp_path / "runs/r").iterdir())
    assert _study(tmp_path, "actor", "--store", str(stores / "losers"), "--run", "r",
                  *FAST) == 2
    _one_line_error(capsys, "no profitable trajectory")
    assert sorted(p.name for p in (tmp_path / "runs/r").iterdir()) == before


def test_mismatched_model_files(stores, tmp_path, capsys):
    run = tmp_path / "runs/m"
    actor = agents.build("actor", "baseline", hidden=8)
    actor.save(run / "encoder.npz", extra={"role": "actor"})
    assert _study(tmp_path, "actor", "--store", str(stores / "good"), "--run", "m", *FAST) == 2
    _one_line_error(capsys, "holds a actor model, not an encoder")
    # a checkpoint whose model file is of another architecture
    assert _study(tmp_path, "encoder", "--store", str(stores / "good"), "--run", "m",
                  "--model-arg", "encoder.hidden=8", *FAST) == 0
    capsys.readouterr()
    doc = files.read_checkpoint(run, "encoder")
    other = agents.build("encoder", "baseline", hidden=4)
    other.save(run / "checkpoints" / doc["files"]["encoder"])
    assert _study(tmp_path, "encoder", "--store", str(stores / "good"), "--run", "m",
                  "--model-arg", "encoder.hidden=8", "--resume", *FAST) == 2
    _one_line_error(capsys, "written for another architecture")


def test_bad_flags(stores, tmp_path, capsys):
    good = str(stores / "good")
    assert _study(tmp_path, "encoder", "--store", good, "--run", "x", "--model-arg",
                  "actor.hidden=8", *FAST) == 2
    _one_line_error(capsys, "role 'actor' is not trained by this stage")
    assert _study(tmp_path, "encoder", "--store", good, "--run", "x", "--batch", "0") == 2
    _one_line_error(capsys, "--batch 0: must be >= 1")
    assert _study(tmp_path, "encoder", "--store", good, "--run", "../x", *FAST) == 2
    _one_line_error(capsys, "--run '../x'")
    assert not (tmp_path / "runs").exists()


def test_compare_optimizers(stores, tmp_path, capsys):
    assert _study(tmp_path, "encoder", "--store", str(stores / "good"), "--run", "cmp",
                  "--compare-optimizers", "adam,adam-mini", "--model-arg", "encoder.hidden=8",
                  "--iterations", "3", "--batch", "2", "--seq-len", "4", "--val-every", "1",
                  "--no-progress", "--model", "baseline") == 0
    out = capsys.readouterr().out
    assert "| adam-mini |" in out
    folder = tmp_path / "runs/cmp/compare_encoder"
    with open(folder / "comparison.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["optimizer"] for r in rows] == ["adam", "adam-mini"]
    logs = {n: read_study_log(folder / n / "study_encoder.csv") for n in ("adam", "adam-mini")}
    # same initial weights and validation windows: identical loss before training
    assert logs["adam"][0]["val_loss"] == logs["adam-mini"][0]["val_loss"]
    assert logs["adam"][1]["val_loss"] != logs["adam-mini"][1]["val_loss"]
    # optimizer-state bytes: those of the optimizers themselves after one step
    model = agents.build("encoder", "baseline", hidden=8)
    expect = {}
    for name in ("adam", "adam-mini"):
        opt = make_optimizer(name, model.store)
        model.zero_grad()
        opt.step()
        expect[name] = opt.state_bytes()
    assert [int(r["optimizer_state_bytes"]) for r in rows] == [expect["adam"],
                                                               expect["adam-mini"]]
    ratio = float(rows[1]["state_vs_adam"])
    assert ratio == pytest.approx(expect["adam-mini"] / expect["adam"], rel=1e-6) and ratio < 0.6
    assert float(rows[0]["state_vs_adam"]) == 1.0
    for r in rows:
        best = float(r["best_val_loss"])
        vals = [x["val_loss"] for x in logs[r["optimizer"]]]
        assert best == pytest.approx(min(vals), rel=1e-9)
        assert float(r["final_val_loss"]) == pytest.approx(vals[-1], rel=1e-9)
        assert int(r["samples"]) == logs[r["optimizer"]][-1]["samples"]
    assert (folder / "comparison.md").read_text().startswith("| optimizer |")
    assert (folder / "comparison.png").stat().st_size > 5000
    assert np.isfinite([float(r["samples_per_s"]) for r in rows]).all()
