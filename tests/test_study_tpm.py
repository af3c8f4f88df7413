"""The seed's TPM models in `neurofx study`: FreDF loss, sequence training (full BPTT) with
exact resume, and `neurofx study autoencoder`."""

from __future__ import annotations

import csv
import json
import math
import signal

import numpy as np
import pytest
from study_fixtures import build_store

from neurofx.atomic import is_temp_name, json_safe
from neurofx.cli import main
from neurofx.commands import build_parser
from neurofx.commands.study import resolve_settings
from neurofx.study.data import load_dataset
from neurofx.study.encoder import EncoderStage, forecast_mse, gather, load_encoder
from neurofx.study.settings import Settings
from neurofx.study.trainer import Trainer, TrainingInterrupted

# reduced TPM encoder: the input stays 120 bars x 9 (the store's states)
SMALL = ["--model-arg", "encoder.hidden=16", "--model-arg", "encoder.levels=[2,1]"]
SMALL_ARGS = {"encoder": {"hidden": 8, "levels": [2, 1]}}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("tpm") / "store"
    build_store(path, n=6, steps=160)
    return path


def test_auto_is_the_default_model():
    """auto: the fitted skip encoder and the seed's tpm actor and critic (docs/models.md)."""
    args = build_parser().parse_args(["study", "encoder", "--store", "s", "--run", "r"])
    assert args.model is None  # not given: the configuration's [study] model
    assert resolve_settings(args).study.model == "auto"
    assert Settings(stage="encoder", store="s", run="r").model == "auto"


def test_sequence_capability_of_the_registered_models():
    from neurofx import agents
    from neurofx.agents.autoencoder import RecurrentAutoencoder
    from neurofx.nn import Model

    assert agents.build("encoder", "tpm", hidden=4, levels=[1]).supports_sequences
    assert Model(RecurrentAutoencoder(9, 2, 4, (4,), 2, (4,)), name="ae").supports_sequences
    for role in ("encoder", "actor", "critic"):  # the MLPs keep the per-step loop
        assert not agents.build(role, "baseline", hidden=4).supports_sequences
    for role in ("actor", "critic"):  # no recurrent state: trained step by step
        assert not agents.build(role, "tpm", hidden=4, layers=1).supports_sequences


def test_tpm_encoder_trains_on_sequences_and_validation_loss_falls(store, tmp_path, capsys):
    root = tmp_path / "runs"
    assert main(["study", "encoder", "--model", "tpm", "--store", str(store), "--run", "t",
                 "--set", f"runs.root={root}", "--iterations", "20", "--batch", "8",
                 "--seq-len", "12", "--lr", "3e-3", "--val-every", "5", "--no-progress",
                 *SMALL]) == 0
    out = capsys.readouterr().out
    assert "loss fredf_loss(n_vars=9, horizon=24, alpha=0.7" in out
    assert "trained on sequences (full BPTT)" in out
    with open(root / "t/study_encoder.csv") as fh:
        val = [float(r["val_loss"]) for r in csv.DictReader(fh) if r["val_loss"]]
    assert len(val) == 5
    assert val[-1] < 0.95 * val[0], val
    snap = json.loads((root / "t/study_encoder_config.json").read_text())
    part = snap["parts"]["encoder"]
    assert part["loss"].startswith("fredf_loss(") and part["sequence_training"] is True
    assert part["architecture"]["type"] == "TPMEncoder" and part["architecture"]["hidden"] == 16
    model, _ = load_encoder(root / "t/encoder.npz")
    assert model.file_content["meta"]["loss"] == part["loss"]
    assert type(model.net).__name__ == "TPMEncoder"


def test_sequence_validation_equals_stepwise_inference(store, tmp_path):
    """The (T, B, N) validation pass against the model fed bar by bar from a reset state,
    masked rows left out by hand (float64)."""
    settings = Settings(stage="encoder", store=str(store), run="v", runs_root=str(tmp_path),
                        batch=3, seq_len=140, val_batches=2, model_args=SMALL_ARGS,
                        progress=False, model="tpm")
    data = load_dataset(store, 0.2, 0)
    stage = EncoderStage(settings, data)
    model = stage.model
    assert model.supports_sequences
    stage.train_batch(stage.val_windows[0])  # move the weights and the running statistics
    got = forecast_mse(model, stage.states, stage.targets, stage.val_windows)
    sse, n = 0.0, 0.0
    for batch in stage.val_windows:
        model.reset_state()
        for j in range(batch.steps):
            pred = model.predict(gather(stage.states, batch, j)).astype(np.float64)
            err = ((pred - gather(stage.targets, batch, j)) ** 2).mean(axis=1)
            sse += float((err * batch.mask[j]).sum())
            n += float(batch.mask[j].sum())
    assert any(b.mask.min() == 0 for b in stage.val_windows)  # finished windows are masked
    assert got == pytest.approx(sse / n, rel=1e-4)


def test_tpm_encoder_interrupt_and_resume_is_exact(store, tmp_path, capsys):
    root = tmp_path / "runs"
    args = ["study", "encoder", "--model", "tpm", "--store", str(store),
            "--set", f"runs.root={root}",
            "--iterations", "4", "--batch", "3", "--seq-len", "6", "--val-every", "2",
            "--checkpoint-every", "2", "--lr", "1e-2", "--no-progress", "--seed", "4",
            "--model-arg", "encoder.hidden=8", "--model-arg", "encoder.levels=[2,1]"]
    assert main(args + ["--run", "a"]) == 0
    settings = Settings(stage="encoder", store=str(store), run="b", runs_root=str(root),
                        iterations=4, batch=3, seq_len=6, val_every=2, checkpoint_every=2,
                        lr=1e-2, seed=4, model_args=SMALL_ARGS, progress=False, model="tpm")

    def interrupt(it):
        if it == 1:
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(TrainingInterrupted):
        Trainer(EncoderStage(settings, load_dataset(store, 0.2, 4)), on_iteration=interrupt).run()
    assert main(args + ["--run", "b", "--resume"]) == 0
    with np.load(root / "a/encoder.npz") as a, np.load(root / "b/encoder.npz") as b:
        assert a.files == b.files
        for k in a.files:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    logs = []
    for run in ("a", "b"):
        with open(root / run / "study_encoder.csv") as fh:
            logs.append([{k: v for k, v in r.items() if k != "wall_s"}
                         for r in csv.DictReader(fh)])
    assert logs[0] == logs[1] and len(logs[0]) == 5


def test_json_safe_replaces_non_finite_values():
    got = json_safe({"a": math.nan, "b": [1.5, math.inf, np.float32(2.0)], "c": (None, -math.inf),
                     "d": "x", "e": 3})
    assert got == {"a": None, "b": [1.5, "inf", 2.0], "c": [None, "-inf"], "d": "x", "e": 3}


def test_study_autoencoder_command_writes_its_report(tmp_path, capsys):
    root = tmp_path / "runs"
    argv = ["study", "autoencoder", "--run", "ae", "--iterations", "3", "--batch", "2",
            "--seq-len", "8", "--seed", "2", "--no-progress",
            "--set", f"runs.root={root}", "--set", 'research.start="2023-01-01"',
            "--set", 'research.end="2023-02-15"',
            "--model-arg", "autoencoder.bars_in=2", "--model-arg", "autoencoder.bars_out=4",
            "--model-arg", "autoencoder.lstm=[8]", "--model-arg", "autoencoder.latent=2",
            "--model-arg", "autoencoder.decoder=[8]"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "3 iterations" in out and "of 4, " in out
    folder = root / "ae"
    summary = json.loads((folder / "autoencoder_study.json").read_text())
    assert (summary["iterations"], summary["batch"], summary["seq_len"], summary["seed"]) == (
        3, 2, 8, 2)
    assert (summary["bars_in"], summary["bars_out"], summary["lstm"], summary["decoder"]) == (
        2, 4, [8], [8])
    with open(folder / "autoencoder_lags.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["lag_bars"]) for r in rows] == [0, 1, 2, 3]
    np.testing.assert_allclose([float(r["mse"]) for r in rows], summary["mse_by_lag"],
                               rtol=1e-5)
    with open(folder / "study_autoencoder.csv") as fh:
        assert [int(r["iteration"]) for r in csv.DictReader(fh)] == [0, 1, 2, 3]
    assert (folder / "autoencoder.npz").is_file()
    assert not [p for p in folder.iterdir() if is_temp_name(p.name)]
    # bad settings: one line, exit 2
    assert main(argv[:-2] + ["--model-arg", "autoencoder.width=3"]) == 2
    err = capsys.readouterr().err.strip()
    assert "autoencoder.width: unknown; valid: bars_in" in err and "\n" not in err
    assert main(["study", "encoder", "--run", "x", "--set", f"runs.root={root}"]) == 2
    assert "study encoder: --store is required" in capsys.readouterr().err
    # a checkpointed run is not overwritten silently; --resume extends it
    assert main(argv) == 2
    assert "already has an autoencoder checkpoint; add --resume" in capsys.readouterr().err
    assert main(argv + ["--resume", "--iterations", "4"]) == 0
    assert json.loads((folder / "autoencoder_study.json").read_text())["iterations"] == 4
    with open(folder / "study_autoencoder.csv") as fh:
        assert [int(r["iteration"]) for r in csv.DictReader(fh)] == [0, 1, 2, 3, 4]
