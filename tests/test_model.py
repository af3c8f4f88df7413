"""Model public API, learning a known regression, save/load round trip and corrupt files."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from neurofx.nn import Concat, Dense, Model, Sequential
from neurofx.nn.optim import make_optimizer
from neurofx.nn.serialize import ModelFileError, read_model_file


def mlp(n_in=4, hidden=16, n_out=2, seed=0, act="tanh"):
    return Sequential([Dense(n_in, hidden, act, seed=seed),
                       Dense(hidden, hidden, act, seed=seed + 1),
                       Dense(hidden, n_out, seed=seed + 2)])


def test_named_parameters_are_stable_copies_with_torch_shapes():
    model = Model(mlp(), name="m1")
    params = model.named_parameters()
    assert list(params) == ["0.weight", "0.bias", "1.weight", "1.bias", "2.weight", "2.bias"]
    assert params["0.weight"].shape == (16, 4) and params["2.bias"].shape == (2,)
    params["0.weight"][:] = 0  # a copy: the model is unchanged
    assert np.abs(model.named_parameters()["0.weight"]).sum() > 0
    assert model.num_parameters == 16 * 4 + 16 + 16 * 16 + 16 + 2 * 16 + 2


def test_forward_matches_numpy_after_load_parameters():
    model = Model(mlp(), name="m2")
    rng = np.random.default_rng(1)
    new = {k: rng.normal(size=v.shape).astype(np.float32)
           for k, v in model.named_parameters().items()}
    model.load_parameters(new)
    x = rng.normal(size=(5, 4)).astype(np.float32)
    h = np.tanh(x @ new["0.weight"].T + new["0.bias"])
    h = np.tanh(h @ new["1.weight"].T + new["1.bias"])
    y = h @ new["2.weight"].T + new["2.bias"]
    np.testing.assert_allclose(model(x), y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model.predict(x), y, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="shape"):
        model.load_parameters({**new, "0.bias": np.zeros(3)})
    with pytest.raises(ValueError, match="missing"):
        model.load_parameters({k: v for k, v in new.items() if k != "0.bias"})


def test_mlp_learns_known_regression():
    # y = sin(x0) + 0.5 * x1 * x2 on U(-1, 1)^3: smooth, learnable by a 2-layer tanh MLP.
    # The target's variance is ~0.26; predicting the mean gives MSE ~0.26. A model that
    # learned the function gets below 0.01 (4 % of the variance) on held-out points.
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(2048, 3)).astype(np.float32)
    y = (np.sin(x[:, 0]) + 0.5 * x[:, 1] * x[:, 2])[:, None].astype(np.float32)
    model = Model(Sequential([Dense(3, 32, "tanh", seed=1), Dense(32, 1, seed=2)]), name="reg")
    opt = make_optimizer("adam", model.store, lr=1e-2)
    for _epoch in range(60):
        order = rng.permutation(1536)
        for i in range(0, 1536, 64):
            idx = order[i:i + 64]
            model.train_step(x[idx], y[idx], opt)
    val = np.mean((model(x[1536:]) - y[1536:]) ** 2)
    assert np.var(y) > 0.2
    assert val < 0.01, val


def test_train_step_returns_loss_before_update_and_updates_weights():
    model = Model(Sequential([Dense(2, 1, seed=0)]), name="lin")
    w = model.named_parameters()
    x = np.array([[1.0, 2.0], [0.5, -1.0]], np.float32)
    y = np.array([[1.0], [0.0]], np.float32)
    pred = x @ w["0.weight"].T + w["0.bias"]
    opt = make_optimizer("sgd", model.store, lr=0.1)
    loss = model.train_step(x, y, opt)
    np.testing.assert_allclose(loss, np.mean((pred - y) ** 2), rtol=1e-6)
    grad_w = (2 / 2) * ((pred - y).T @ x)
    np.testing.assert_allclose(model.named_parameters()["0.weight"], w["0.weight"] - 0.1 * grad_w,
                               rtol=1e-5)


def test_multi_input_model_concatenates_inputs():
    net = Sequential([Concat(), Dense(5, 2, seed=3)])
    model = Model(net, name="two")
    a = np.ones((3, 2), np.float32)
    b = np.full((3, 3), 2.0, np.float32)
    p = model.named_parameters()
    expected = np.concatenate([a, b], 1) @ p["1.weight"].T + p["1.bias"]
    np.testing.assert_allclose(model(a, b), expected, rtol=1e-5)


def test_save_load_round_trip_is_bit_exact(tmp_path):
    model = Model(mlp(seed=4), name="enc")
    opt = make_optimizer("adam", model.store, lr=1e-3)
    x = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
    model.train_step(x, np.zeros((8, 2), np.float32), opt)
    path = tmp_path / "enc.npz"
    model.save(path, optimizer=opt, extra={"iterations": 1})
    loaded = Model.load(path)
    assert loaded.name == "enc"
    for k, v in model.named_parameters().items():
        np.testing.assert_array_equal(loaded.named_parameters()[k], v)
    np.testing.assert_array_equal(loaded(x), model(x))
    content = read_model_file(path)
    assert content["meta"] == {"iterations": 1}
    assert content["optim"]["type"] == type(opt).__name__
    assert not list(tmp_path.glob(".*tmp"))  # no temporary files left behind


def test_corrupt_and_foreign_model_files(tmp_path):
    model = Model(mlp(), name="m")
    good = tmp_path / "good.npz"
    model.save(good)
    # truncated
    trunc = tmp_path / "trunc.npz"
    trunc.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ModelFileError, match="trunc.npz: not a readable neurofx model file"):
        Model.load(trunc)
    # not a model file at all
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    with pytest.raises(ModelFileError, match="other.npz: not a neurofx model file"):
        Model.load(other)
    # another version
    newer = tmp_path / "newer.npz"
    with np.load(good, allow_pickle=False) as npz:
        data = {k: npz[k] for k in npz.files}
    data["__version__"] = np.array(99)
    np.savez(newer, **data)
    with pytest.raises(ModelFileError, match="format version 99"):
        Model.load(newer)
    # another architecture
    bigger = Model(mlp(hidden=8), name="m")
    with pytest.raises(ModelFileError, match="written for another architecture"):
        bigger.load_weights(good)
    # missing file
    with pytest.raises(ModelFileError, match="model file not found"):
        Model.load(tmp_path / "absent.npz")
    # a pickled object array is refused, never unpickled
    with zipfile.ZipFile(good) as zf:
        assert all(name.endswith(".npy") for name in zf.namelist())
    arch = json.loads(str(np.load(good, allow_pickle=False)["architecture"]))
    assert arch["type"] == "Sequential"


def test_summary_reports_measured_bytes():
    model = Model(Sequential([Dense(1080, 256, "tanh"), Dense(256, 216)]), name="sumtest")
    opt = make_optimizer("adam", model.store, lr=1e-3)
    x = np.zeros((2, 1080), np.float32)
    model.train_step(x, np.zeros((2, 216), np.float32), opt)
    rows = model.memory(batch=32, optimizer=opt, input_shapes=[(1080,)])
    total = rows[-1]
    n = 1080 * 256 + 256 + 256 * 216 + 216
    assert total["params"] == n
    assert n * 4 <= total["param_bytes"] <= n * 4 + 4 * 32 * 4  # alignment padding only
    assert total["optim_bytes"] == opt.state_bytes() >= 2 * 4 * n
    first = rows[0]
    assert first["layer"] == "0" and first["params"] == 1080 * 256 + 256
    assert first["optim_bytes"] == 2 * 4 * first["params"]  # Adam: exp_avg + exp_avg_sq
    mini = make_optimizer("adam-mini", model.store, lr=1e-3)
    mini.step()
    rows_mini = model.memory(optimizer=mini)
    # Adam-mini: full first moment, one second moment per weight row, per element for biases
    assert rows_mini[0]["optim_bytes"] == 4 * (first["params"] + 256 + 256)
    # activations of layer 0 at batch 32: its output and the output's gradient (ops.linear
    # keeps no pre-activation buffers; its backward's dz is a temporary)
    assert first["act_bytes"] >= 2 * 32 * 256 * 4
    text = model.summary(batch=32, optimizer=opt, input_shapes=[(1080,)])
    assert "total" in text and "sumtest" in text
