"""BatchNorm in both modes against numpy float64: batch statistics (torch BatchNorm1d rules),
eval with running stats, and the seed's running per-element normaliser (spec 9.1)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from neurofx.nn import Model, build_module
from neurofx.nn.layers import BatchNorm

sys.path.insert(0, str(Path(__file__).parent))
from gradcheck import assert_close, check_module, exact32  # noqa: E402

EPS = 1e-5


def np_batch(p, x):
    m = x.mean(axis=0)
    v = x.var(axis=0)
    return p["gamma"] * (x - m) / np.sqrt(v + EPS) + p["beta"]


def np_running(x, mean, var, count, window):
    """Sequential spec-9.1 update; returns the per-row stats used and the final state."""
    ms, vs = [], []
    mean, var = mean.copy(), var.copy()
    for r, row in enumerate(x):
        n = min(count + r + 1, window)
        mean = (mean * (n - 1) + row) / n
        var = (var * (n - 1) + (row - mean) ** 2) / n
        ms.append(mean)
        vs.append(var)
    return np.array(ms), np.array(vs), mean, var, min(count + len(x), window)


def randomize(model, seed):
    rng = np.random.default_rng(seed)
    model.load_parameters({"gamma": rng.uniform(0.5, 1.5, size=model.parameter("gamma").shape),
                           "beta": rng.normal(size=model.parameter("beta").shape)})


@pytest.mark.parametrize("rows,n", [(5, 3), (3, 1), (7, 1081)])
def test_batch_mode_training_forward_gradients_and_running_stats(rows, n):
    layer = BatchNorm(n, momentum=0.2)
    model = Model(layer, name=f"bn_batch{rows}_{n}")
    randomize(model, n)
    x = np.random.default_rng(1).normal(loc=2.0, scale=3.0, size=(rows, n))
    check_module(model, [x], np_batch, seed=2)
    # one forward happened: running stats moved 20 % towards (mean, unbiased var)
    xs = exact32(x)
    stats = layer.stats()
    assert_close(stats["mean"], 0.2 * xs.mean(axis=0))
    assert_close(stats["var"], 0.8 + 0.2 * xs.var(axis=0, ddof=1))


def test_batch_mode_eval_uses_running_stats_as_constants():
    layer = BatchNorm(4)
    model = Model(layer, name="bn_eval")
    randomize(model, 3)
    rng = np.random.default_rng(4)
    mean, var = rng.normal(size=4), rng.uniform(0.5, 2.0, size=4)
    layer.running_mean.assign(mean)
    layer.running_var.assign(var)
    m32, v32 = exact32(mean), exact32(var)
    model.eval()
    x = rng.normal(size=(3, 4))

    def ref(p, x):
        return p["gamma"] * (x - m32) / np.sqrt(v32 + EPS) + p["beta"]

    check_module(model, [x], ref, seed=5)
    assert_close(layer.stats()["mean"], m32)  # eval leaves the stats alone
    out = model.predict(np.ones((1, 4), np.float32))  # a single sample is fine in eval
    assert_close(out, ref(model.named_parameters(), np.ones((1, 4))))


def test_batch_mode_leading_dims_are_samples():
    layer = BatchNorm(3)
    model = Model(layer, name="bn_3d")
    x = np.random.default_rng(6).normal(size=(2, 4, 3))
    check_module(model, [x], lambda p, x: np_batch(p, x.reshape(8, 3)).reshape(2, 4, 3), seed=7)


def test_batch_mode_training_rejects_a_single_sample():
    model = Model(BatchNorm(3), name="bn_one")
    with pytest.raises(ValueError, match="at least 2 rows per feature, got 1; use eval mode or "
                                         "mode='running'"):
        model.forward(np.zeros((1, 3), np.float32))


@pytest.mark.parametrize("n", [1, 3, 1081])
def test_running_mode_sequence_of_calls(n):
    # window 4: the first calls average cumulatively (N = 1, 2, 3), then the seed's rule
    # with N = 4; stats change on every call, training or inference.
    window = 4
    layer = BatchNorm(n, mode="running", window=window)
    model = Model(layer, name=f"bn_run{n}")
    randomize(model, 8)
    rng = np.random.default_rng(9)
    mean, var, count = np.zeros(n), np.ones(n), 0
    for call, rows in enumerate([1, 2, 3, 1]):
        x = exact32(rng.normal(loc=1.0, scale=2.0, size=(rows, n)))
        p = {k: v.astype(np.float64) for k, v in model.named_parameters().items()}
        ms, vs, mean, var, count = np_running(x, mean, var, count, window)

        def frozen(p, x, ms=ms, vs=vs):  # the gradient treats the row's stats as constants
            return p["gamma"] * (x - ms) / np.sqrt(vs + EPS) + p["beta"]

        if call == 0:
            assert_close(frozen(p, x), p["beta"][None])  # first sample: mean = x, var = 0
        if call % 2:
            check_module(model, [x], lambda p, x: frozen(p, x), seed=call)
        else:
            assert_close(model.predict(x), frozen(p, x))  # inference updates the stats too
        stats = layer.stats()
        assert_close(stats["mean"], mean, what=f"mean after call {call}")
        assert_close(stats["var"], var, what=f"var after call {call}")
        assert stats["count"][0] == count
    assert count == window


def test_running_mode_state_is_saved_and_config_round_trips():
    layer = BatchNorm(5, mode="running", window=100, eps=1e-3)
    model = Model(layer, name="bn_state")
    assert dict(model.net.named_state()).keys() == {"running_mean", "running_var", "count"}
    assert [s.block_size for s in model.store.specs] == [5, 5]
    again = build_module(layer.describe())
    assert again.config() == layer.config() == {"n": 5, "mode": "running", "momentum": 0.1,
                                                "eps": 1e-3, "window": 100}
    assert "count" not in dict(BatchNorm(5).named_state())
    with pytest.raises(ValueError, match="unknown mode 'layer'; valid: batch, running"):
        BatchNorm(3, mode="layer")
    with pytest.raises(ValueError, match="input last dimension is 4"):
        model.predict(np.zeros((2, 4), np.float32))


def test_save_load_round_trip_keeps_running_stats(tmp_path):
    from neurofx.nn import Dense, Sequential
    from neurofx.nn.layers import LSTM, Conv1D, VAEHead

    net = Sequential([BatchNorm(6, mode="running", window=50), Dense(6, 8, "tanh", seed=1),
                      VAEHead(4, seed=2)])
    model = Model(net, name="bn_save")
    x = np.random.default_rng(3).normal(size=(5, 6)).astype(np.float32)
    model.predict(x)  # moves the stats away from their initial values
    model.save(tmp_path / "m.npz")
    loaded = Model.load(tmp_path / "m.npz")
    assert loaded.describe() == model.describe()
    for name, tensor in model.net.named_state():
        np.testing.assert_array_equal(dict(loaded.net.named_state())[name].numpy(),
                                      tensor.numpy())
    assert dict(loaded.net.named_state())["0.count"].numpy()[0] == 5
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    for layer in (LSTM(3, 4, return_sequence=False, seed=5),
                  Conv1D(3, 2, 4, n_vars=2, independent=True, activation="tanh", seed=6)):
        m = Model(layer, name=f"save_{type(layer).__name__}")
        m.save(tmp_path / "l.npz")
        back = Model.load(tmp_path / "l.npz")
        assert back.describe() == m.describe()
        xin = np.random.default_rng(7).normal(size=(5, 2, 3)).astype(np.float32)
        np.testing.assert_array_equal(back.predict(xin), m.predict(xin))
