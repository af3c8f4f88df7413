"""The recurrent autoencoder (seed 002): composite gradients against numpy float64, stateful
steps vs the sequence, the FIFO targets, and the lag study on bundled bars (trained by the
study's Trainer: log, checkpoints, exact resume)."""

from __future__ import annotations

import csv
import json
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

from neurofx.agents.autoencoder import RecurrentAutoencoder
from neurofx.errors import NeurofxError
from neurofx.nn import Model, build_module
from neurofx.reports.training import read_study_log
from neurofx.study.autoencoder import AutoencoderStage, fifo_targets
from neurofx.study.settings import Settings
from neurofx.study.trainer import Trainer, TrainingInterrupted

sys.path.insert(0, str(Path(__file__).parent))
from gradcheck import check_module, exact32  # noqa: E402
from test_layers_lstm import np_lstm  # noqa: E402
from test_layers_norm import np_running  # noqa: E402

EPS = 1e-10  # the builders' norm_eps
SMALL = {"n_vars": 2, "bars_in": 2, "bars_out": 3, "lstm": (3, 2), "latent": 2, "decoder": (3,),
         "norm_window": 4}


def np_autoencoder(p, xs, stats, eps):
    steps, batch, n = xs.shape
    ms, vs = stats
    y = (p["norm.gamma"] * (xs.reshape(-1, n) - ms) / np.sqrt(vs + EPS)
         + p["norm.beta"]).reshape(xs.shape)
    for i in range(len(SMALL["lstm"])):
        y = np_lstm(p, y, prefix=f"lstm.{i}.")[0]
    z = y @ p["to_latent.weight"].T + p["to_latent.bias"]
    k = SMALL["latent"]
    z = z[..., :k] + np.exp(0.5 * z[..., k:]) * eps.reshape(steps, batch, k)
    z = np.tanh(z @ p["decoder.0.weight"].T + p["decoder.0.bias"])
    return z @ p["out.weight"].T + p["out.bias"]


def test_composite_forward_and_bptt_gradients():
    net = RecurrentAutoencoder(**SMALL, seed=1)
    model = Model(net, name="ae_small")
    rng = np.random.default_rng(2)
    model.load_parameters({k: (1.0 + 0.3 * rng.normal(size=v.shape) if k.endswith("gamma")
                               else rng.normal(scale=0.5, size=v.shape)).astype(np.float32)
                           for k, v in model.named_parameters().items()})
    mean0, var0 = rng.normal(size=4), rng.uniform(0.5, 2.0, size=4)
    net.norm.running_mean.assign(mean0)
    net.norm.running_var.assign(var0)
    net.norm.count.assign([4.0])
    xs = exact32(rng.normal(size=(3, 2, 4)))

    def stats(x):
        return np_running(x.reshape(-1, 4), mean0, var0, 4, 4)[:2]

    base = stats(xs)

    def eps():
        return net.vae.last_eps.numpy().astype(np.float64)

    check_module(model, [xs], lambda p, x: np_autoencoder(p, x, stats(x), eps()),
                 np_forward_grad=lambda p, x: np_autoencoder(p, x, base, eps()), seed=3,
                 grad_rtol=3e-4)


def test_stateful_steps_equal_the_sequence_in_eval_mode():
    net = RecurrentAutoencoder(**{**SMALL, "lstm": (5, 4)}, seed=4)
    model = Model(net, name="ae_steps")
    again = Model(build_module(net.describe()), name="ae_steps2")
    assert again.describe() == model.describe()
    xs = exact32(np.random.default_rng(5).normal(size=(6, 3, 4)))
    seq = model.predict(xs)  # eval: the VAE returns its mean
    stepped = np.stack([again.predict(x) for x in xs])
    np.testing.assert_allclose(stepped, seq, rtol=1e-5, atol=1e-6)
    assert seq.shape == (6, 3, 6)


def test_fifo_targets_stack_the_newest_bar_newest_first():
    # norm (T=4, B=1, W=4) with n_vars 2: the newest bar is columns 0..1
    norm = np.arange(16, dtype=float).reshape(4, 1, 4)
    got = fifo_targets(norm, n_vars=2, bars_out=3)
    # step 2: newest bars of steps 2, 1, 0; step 3: of steps 3, 2, 1
    want = np.array([[[8, 9, 4, 5, 0, 1]], [[12, 13, 8, 9, 4, 5]]], float)
    np.testing.assert_array_equal(got, want)


@pytest.fixture(scope="module")
def bars_2023():
    from neurofx.data import load_bars

    bars = load_bars()
    return bars[bars.index.year == 2023].iloc[:1500]


SIZES = ("bars_in", "bars_out", "lstm", "latent", "decoder", "recall_ratio")


def _stage(bars, out, **kw):
    """An AutoencoderStage writing into ``out``; ``kw``: Settings fields and study sizes."""
    sizes = {k: kw.pop(k) for k in SIZES if k in kw}
    kw = {"batch": 8, "seq_len": 60, "lr": 1e-3, "progress": False, **kw}
    kw.setdefault("model_args", {"autoencoder": sizes})
    settings = Settings(stage="autoencoder", store="", run="ae", out=str(out), **kw)
    return AutoencoderStage(settings, bars)


def test_lag_study_learns_and_writes_its_report(bars_2023, tmp_path):
    stage = _stage(bars_2023, tmp_path, iterations=60, seed=0, batch=8, seq_len=24, lr=3e-3,
                   bars_in=4, bars_out=12, lstm=(24,), latent=8, decoder=(24,), val_share=0.3)
    summary = Trainer(stage).run().report
    with open(tmp_path / "autoencoder_lags.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["lag_bars"]) for r in rows] == list(range(12))
    assert [int(r["in_input"]) for r in rows] == [1] * 4 + [0] * 8
    mse = np.array(summary["mse_by_lag"])
    ref = np.array(summary["mean_square_by_lag"])
    np.testing.assert_allclose([float(r["mse"]) for r in rows], mse, rtol=1e-5)
    persist = np.array(summary["persistence_by_lag"])
    assert np.all(persist[:4] == 0.0) and np.all(persist[4:] > 0.0)
    assert summary["mse_ratio_in_input"] == pytest.approx(np.mean(mse[:4] / ref[:4]))
    assert summary["beats_persistence_lags"] == int(np.sum(mse[4:] < persist[4:]))
    assert json.loads((tmp_path / "autoencoder_study.json").read_text())["iterations"] == 60
    assert (tmp_path / "autoencoder.npz").is_file()
    log = read_study_log(tmp_path / "study_autoencoder.csv")
    assert [r["iteration"] for r in log] == list(range(61))
    losses = [r["train_loss"] for r in log[1:]]
    assert np.mean(losses[-10:]) < 0.8 * np.mean(losses[:10])
    assert summary["final_train_loss"] == pytest.approx(np.mean(losses[-10:]), rel=1e-12)
    # validated at 0, 10, .., 60: the held-out reconstruction error over all lags
    val = [r["val_loss"] for r in log if r["val_loss"] == r["val_loss"]]
    assert len(val) == 7 and val[-1] == pytest.approx(np.mean(mse), rel=1e-9)
    # the bars still in the input are rebuilt better than by the normalised mean
    assert np.all(mse[:4] < ref[:4]), (mse[:4], ref[:4])


def test_lag_study_rejects_bad_settings(bars_2023, tmp_path):
    with pytest.raises(NeurofxError, match="seq_len=20 must be >= 40"):
        _stage(bars_2023, tmp_path, iterations=1, seq_len=20)
    with pytest.raises(NeurofxError, match="too few for seq_len=60"):
        _stage(bars_2023.iloc[:150], tmp_path, iterations=1)
    with pytest.raises(NeurofxError, match="autoencoder.width: unknown; valid: bars_in"):
        _stage(bars_2023, tmp_path, iterations=1, model_args={"autoencoder": {"width": 3}})


def test_lag_study_interrupt_and_resume_is_exact(bars_2023, tmp_path, capsys):
    small = dict(iterations=6, batch=2, seq_len=8, lr=1e-2, seed=3, val_every=2,
                 checkpoint_every=2, bars_in=2, bars_out=4, lstm=(8,), latent=2, decoder=(8,))
    bars = bars_2023.iloc[:600]
    Trainer(_stage(bars, tmp_path / "a", **small)).run()

    def interrupt(it):
        if it == 3:
            signal.raise_signal(signal.SIGINT)  # what Ctrl-C does: finish the batch, checkpoint

    with pytest.raises(TrainingInterrupted):
        Trainer(_stage(bars, tmp_path / "b", **small), on_iteration=interrupt).run()
    assert "checkpoint saved at iteration 3" in capsys.readouterr().err
    assert not (tmp_path / "b/autoencoder_study.json").exists()
    with pytest.raises(NeurofxError, match="already has an autoencoder checkpoint"):
        Trainer(_stage(bars, tmp_path / "b", **small)).run()
    with pytest.raises(NeurofxError, match="made with lr = 0.01, not 0.02"):
        Trainer(_stage(bars, tmp_path / "b", resume=True, **{**small, "lr": 2e-2})).run()
    Trainer(_stage(bars, tmp_path / "b", resume=True, **small)).run()
    for name in ("autoencoder.npz", "checkpoints/autoencoder-0000006-autoencoder.npz"):
        with np.load(tmp_path / "a" / name) as a, np.load(tmp_path / "b" / name) as b:
            assert a.files == b.files
            for k in a.files:
                np.testing.assert_array_equal(a[k], b[k], err_msg=f"{name}: {k}")
    logs = [[{k: v for k, v in r.items() if k != "wall_s"}
             for r in read_study_log(tmp_path / run / "study_autoencoder.csv")]
            for run in ("a", "b")]
    assert logs[0] == logs[1] and len(logs[0]) == 7
    assert ((tmp_path / "a/autoencoder_study.json").read_text()
            == (tmp_path / "b/autoencoder_study.json").read_text())
