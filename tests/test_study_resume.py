"""Ctrl-C + --resume continues exactly: same final weights, optimizer state and log."""

from __future__ import annotations

import json
import signal

import numpy as np
import pytest
from study_fixtures import build_store

from neurofx.cli import main
from neurofx.reports.training import read_study_log
from neurofx.study.data import load_dataset
from neurofx.study.encoder import EncoderStage
from neurofx.study.settings import Settings
from neurofx.study.trainer import Trainer, TrainingInterrupted

ARGS = ["--iterations", "6", "--batch", "3", "--seq-len", "6", "--val-every", "2",
        "--checkpoint-every", "2", "--lr", "1e-2", "--no-progress", "--seed", "4"]
TINY = ["--model", "baseline", "--model-arg", "encoder.hidden=8"]
TINY_AC = ["--model", "baseline", "--model-arg", "actor.hidden=8", "--model-arg", "critic.hidden=8"]


def _final_arrays(run_dir, stage):
    doc = json.loads((run_dir / "checkpoints" / f"{stage}.json").read_text())
    out = {}
    for part, fname in doc["files"].items():
        with np.load(run_dir / "checkpoints" / fname, allow_pickle=False) as npz:
            out.update({f"{part}:{k}": npz[k] for k in npz.files if k != "meta"})
            out[f"{part}:meta"] = json.loads(str(npz["meta"]))
    return doc, out


def _log_without_wall(path):
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in read_study_log(path)]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("resume") / "store"
    build_store(path, n=5, steps=80)
    return path


def _interrupt_at(k):
    def hook(it):
        if it == k:
            signal.raise_signal(signal.SIGINT)  # what Ctrl-C does: finish the batch, checkpoint
    return hook


def _settings(store, root, stage, **kw):
    return Settings(stage=stage, store=str(store), run="b", runs_root=str(root), iterations=6,
                    batch=3, seq_len=6, val_every=2, checkpoint_every=2, lr=1e-2, seed=4,
                    progress=False, model="baseline", **kw)


def _assert_same(run_a, run_b, stage):
    doc_a, arr_a = _final_arrays(run_a, stage)
    doc_b, arr_b = _final_arrays(run_b, stage)
    assert doc_a["iteration"] == doc_b["iteration"] == 6
    assert doc_a["rng"] == doc_b["rng"]
    assert arr_a.keys() == arr_b.keys()
    for key in arr_a:
        if key.endswith(":meta"):
            assert arr_a[key] == arr_b[key]
        else:
            np.testing.assert_array_equal(arr_a[key], arr_b[key], err_msg=key)
    log_a = _log_without_wall(run_a / f"study_{stage}.csv")
    assert log_a == _log_without_wall(run_b / f"study_{stage}.csv")
    assert len(log_a) == 7


def test_encoder_interrupt_and_resume_is_exact(store, tmp_path, capsys):
    root = tmp_path / "runs"
    assert main(["study", "encoder", "--store", str(store), "--run", "a",
                 "--set", f"runs.root={root}"] + ARGS + TINY) == 0
    data = load_dataset(store, 0.2, 4)
    stage = EncoderStage(_settings(store, root, "encoder",
                                   model_args={"encoder": {"hidden": 8}}), data)
    with pytest.raises(TrainingInterrupted):
        Trainer(stage, on_iteration=_interrupt_at(3)).run()
    doc = json.loads((root / "b/checkpoints/encoder.json").read_text())
    assert doc["iteration"] == 3 and len(doc["log"]) == 4
    assert "checkpoint saved at iteration 3" in capsys.readouterr().err
    assert main(["study", "encoder", "--store", str(store), "--run", "b", "--resume",
                 "--set", f"runs.root={root}"] + ARGS + TINY) == 0
    _assert_same(root / "a", root / "b", "encoder")
    # the kept best model is the same file content too
    with np.load(root / "a/encoder.npz") as a, np.load(root / "b/encoder.npz") as b:
        for k in a.files:
            np.testing.assert_array_equal(a[k], b[k])


def test_actor_interrupt_and_resume_is_exact(store, tmp_path):
    root = tmp_path / "runs"
    enc = ["study", "encoder", "--store", str(store), "--set", f"runs.root={root}",
           "--iterations", "2", "--batch", "2", "--seq-len", "4", "--no-progress"] + TINY
    assert main(enc + ["--run", "a"]) == 0
    assert main(enc + ["--run", "b"]) == 0
    base = ["study", "actor", "--store", str(store), "--set", f"runs.root={root}"] + ARGS
    assert main(base + ["--run", "a"] + TINY_AC) == 0
    from neurofx.study.actor import ActorStage

    data = load_dataset(store, 0.2, 4)
    stage = ActorStage(_settings(store, root, "actor", model_args={
        "actor": {"hidden": 8}, "critic": {"hidden": 8}}), data)
    with pytest.raises(TrainingInterrupted):
        Trainer(stage, on_iteration=_interrupt_at(3)).run()
    assert main(base + ["--run", "b", "--resume"] + TINY_AC) == 0
    _assert_same(root / "a", root / "b", "actor")
    doc, arrays = _final_arrays(root / "b", "actor")
    assert arrays["actor:meta"]["counters"]  # the VAE head's noise counter is restored
    # and the actor's action coding statistics (docs/actions.md), refitted and checked too
    assert doc["target_scalers"] == {"critic": stage.critic_scaler.to_dict(),
                                     "actor": {"version": 1, "mean": list(stage.coding.mean),
                                               "std": list(stage.coding.std)}}


def test_resume_refuses_other_settings(store, tmp_path, capsys):
    root = tmp_path / "runs"
    cmd = ["study", "encoder", "--store", str(store), "--run", "c",
           "--set", f"runs.root={root}"] + ARGS + TINY
    assert main(cmd) == 0
    capsys.readouterr()
    assert main(cmd + ["--resume", "--batch", "4"]) == 2
    err = capsys.readouterr().err.strip()
    assert "with batch = 3, not 4; resume with the same settings" in err and "\n" not in err
    assert main(cmd) == 2  # an existing checkpoint is never overwritten silently
    assert "add --resume to continue it, --fresh to start over" in capsys.readouterr().err
    # the checkpoint carries the target scaler; one that differs from the refit is refused
    ckpt = root / "c/checkpoints/encoder.json"
    original = ckpt.read_text()
    doc = json.loads(original)
    scaler = doc["target_scalers"]["encoder"]
    assert scaler == EncoderStage(_settings(store, root, "encoder", model_args={
        "encoder": {"hidden": 8}}), load_dataset(store, 0.2, 4)).scaler.to_dict()
    scaler["mean"][0] += 1e-9
    ckpt.write_text(json.dumps(doc))
    assert main(cmd + ["--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert "field 'target_scalers.encoder' differs from the scaler fitted" in err
    assert "start over with --fresh" in err and "\n" not in err
    del doc["target_scalers"]
    ckpt.write_text(json.dumps(doc))
    assert main(cmd + ["--resume"]) == 2
    assert "field 'target_scalers.encoder' is missing or invalid" in capsys.readouterr().err
    ckpt.write_text(original)
    assert main(cmd + ["--resume", "--iterations", "8"]) == 0  # extending is allowed
    assert len(read_study_log(root / "c/study_encoder.csv")) == 9
