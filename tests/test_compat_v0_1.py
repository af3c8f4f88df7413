"""Stores, model files and run folders written by neurofx 0.1.0 before the layout moved (agent
models out of nn/, typed configuration, pipeline layer) still load and run
(tests/fixtures/v0_1/README.md says how they were made)."""

import shutil
from pathlib import Path

import numpy as np

from neurofx.cli import main
from neurofx.collectors.store import TrajectoryStore
from neurofx.nn import Model
from neurofx.study.encoder import load_encoder

OLD = Path(__file__).parent / "fixtures" / "v0_1"


def _run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_old_store_opens_and_reads(tmp_path):
    shutil.copytree(OLD / "store", tmp_path / "store")
    store = TrajectoryStore.open(tmp_path / "store")
    assert (len(store), store.capacity) == (2, 500)
    traj = store.load(1)
    assert traj.states.shape == (traj.steps, 1080) and traj.steps == 239
    assert np.isfinite(traj.accounts).all() and traj.actions.shape == (239, 6)


def test_old_model_files_load_and_predict():
    encoder, scaler = load_encoder(OLD / "run" / "encoder.npz")
    forecast = encoder.predict(np.zeros((1, 1080), np.float32))
    assert forecast.shape == (1, 216) and scaler.size == 9
    # the TPM actor's layer class moved from neurofx.nn.tpm_models to neurofx.agents.tpm
    actor = Model.load(OLD / "run" / "tpm_actor.npz")
    assert type(actor.net).__name__ == "CrossAttentionAgent"
    action = actor.predict(np.zeros((1, 12), np.float32), forecast)
    assert action.shape == (1, 6) and np.isfinite(action).all()


def test_old_run_folder_tests_reports_and_trains_on(capsys, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(OLD / "run", runs / "old")
    shutil.copytree(OLD / "store", tmp_path / "store")
    root = ["--set", f"runs.root={str(runs)!r}"]
    # the old test report is regenerated from its saved data
    rc, out, err = _run(capsys, "report", runs / "old" / "test", *root)
    assert rc == 0, err
    assert (runs / "old" / "test" / "report.html").is_file()
    # the old models trade a new test
    rc, out, err = _run(capsys, "test", "--run", "old", "--start", "2024-01-08", "--end",
                        "2024-01-09", *root)
    assert rc == 0, err
    assert "report:" in out
    # and the old encoder feeds a new actor stage on the old store
    rc, out, err = _run(capsys, "study", "actor", "--store", tmp_path / "store", "--run", "old",
                        "--iterations", "1", "--batch", "2", "--seq-len", "20", "--model",
                        "baseline", "--model-arg", "actor.hidden=8", "--model-arg",
                        "critic.hidden=8", "--no-progress", "--fresh", *root)
    assert rc == 0, err
    assert (runs / "old" / "actor.npz").is_file()
