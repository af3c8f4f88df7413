"""LSTM: forward and full-BPTT gradients against numpy float64, stateful step mode, and a
recall task it must learn."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from neurofx.nn import Dense, Model, Sequential, Tensor, build_module, no_grad
from neurofx.nn.layers import LSTM

sys.path.insert(0, str(Path(__file__).parent))
from gradcheck import assert_close, check_module, exact32  # noqa: E402


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def np_lstm(p, x, h0=None, c0=None, prefix=""):
    """Reference LSTM in float64, torch gate order i, f, g, o; returns (T, B, H), h, c."""
    w_ih, w_hh, b = p[prefix + "weight_ih"], p[prefix + "weight_hh"], p[prefix + "bias"]
    hidden = w_hh.shape[1]
    h = np.zeros((x.shape[1], hidden)) if h0 is None else h0
    c = np.zeros((x.shape[1], hidden)) if c0 is None else c0
    ys = []
    for xt in x:
        z = xt @ w_ih.T + h @ w_hh.T + b
        i, f, g, o = (z[:, k * hidden:(k + 1) * hidden] for k in range(4))
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        ys.append(h)
    return np.stack(ys), h, c


def randomize(model, seed, scale=0.6):
    """Larger-than-init weights so every gate is far from linear (a stronger check)."""
    rng = np.random.default_rng(seed)
    model.load_parameters({k: rng.normal(scale=scale, size=v.shape).astype(np.float32)
                           for k, v in model.named_parameters().items()})


@pytest.mark.parametrize("steps,batch,n_in,hidden", [(5, 2, 3, 4), (6, 3, 1, 1), (7, 1, 2, 3),
                                                     (5, 4, 3, 17)])
def test_sequence_forward_and_bptt_gradients(steps, batch, n_in, hidden):
    model = Model(LSTM(n_in, hidden, seed=1), name=f"lstm{steps}{batch}{n_in}{hidden}")
    randomize(model, steps)
    x = np.random.default_rng(2).normal(size=(steps, batch, n_in))
    check_module(model, [x], lambda p, x: np_lstm(p, x)[0], seed=3)


def test_last_step_output_and_gradients():
    model = Model(LSTM(2, 3, return_sequence=False, seed=4), name="lstm_last")
    randomize(model, 5)
    x = np.random.default_rng(6).normal(size=(5, 3, 2))
    check_module(model, [x], lambda p, x: np_lstm(p, x)[0][-1], seed=7)


def test_parameters_shapes_blocks_and_config_round_trip():
    layer = LSTM(3, 5, seed=2)
    model = Model(layer, name="lstm_shapes")
    specs = {s.name: s for s in model.store.specs}
    assert specs["weight_ih"].shape == (20, 3) and specs["weight_ih"].block_size == 3
    assert specs["weight_hh"].shape == (20, 5) and specs["weight_hh"].block_size == 5
    assert specs["bias"].shape == (20,) and specs["bias"].block_size == 1
    bound = 1 / np.sqrt(5)
    assert all(np.abs(v).max() <= bound for v in model.named_parameters().values())
    again = build_module(layer.describe())
    assert isinstance(again, LSTM) and again.config() == layer.config()
    np.testing.assert_array_equal(again.weight_hh.init, LSTM(3, 5, seed=2).weight_hh.init)


def test_step_mode_matches_sequence_and_reset_state():
    steps, batch = 9, 3
    layer = LSTM(4, 6, seed=8)
    model = Model(layer, name="lstm_step")
    randomize(model, 9)
    x = exact32(np.random.default_rng(10).normal(size=(steps, batch, 4)))
    seq = model.predict(x)
    stepped = np.stack([model.predict(x[t]) for t in range(steps)])
    np.testing.assert_allclose(stepped, seq, rtol=1e-5, atol=1e-6)
    ref, h, c = np_lstm({k: v.astype(np.float64) for k, v in model.named_parameters().items()}, x)
    assert_close(seq, ref)
    h_kept, c_kept = layer.state()
    assert_close(h_kept, h)
    assert_close(c_kept, c)
    # the state persists across calls until reset_state()
    again = model.predict(x[0])
    assert np.abs(again - seq[0]).max() > 1e-3
    model.reset_state()
    assert layer.state() is None
    np.testing.assert_allclose(model.predict(x[0]), seq[0], rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="batch 2 differs from the kept state's 3; call "
                                         "reset_state"):
        model.predict(x[1, :2])


def test_step_gradient_stops_at_the_kept_state():
    # A training step in step mode backpropagates through that step only: the kept (h, c)
    # are constants (the seed's one-step truncation).
    layer = LSTM(3, 4, seed=11)
    model = Model(layer, name="lstm_step_grad")
    randomize(model, 12)
    rng = np.random.default_rng(13)
    warm = exact32(rng.normal(size=(2, 2, 3)))
    with no_grad():
        for t in range(2):
            layer.step(Tensor.from_numpy(warm[t]))
    h0, c0 = (a.astype(np.float64) for a in layer.state())
    x = rng.normal(size=(2, 3))
    check_module(model, [x], lambda p, x: np_lstm(p, x[None], h0, c0)[1], seed=14)
    np.testing.assert_allclose(layer.state()[0], np_lstm(
        {k: v.astype(np.float64) for k, v in model.named_parameters().items()},
        exact32(x)[None], h0, c0)[1], rtol=1e-5, atol=1e-6)


def test_bad_inputs_are_rejected():
    model = Model(LSTM(3, 2), name="lstm_bad")
    with pytest.raises(ValueError, match=r"input must be \(T, B, 3\) or \(B, 3\)"):
        model.predict(np.zeros((4, 2, 5), np.float32))
    with pytest.raises(ValueError, match="n_in and hidden must be >= 1"):
        LSTM(0, 2)


def test_lstm_learns_to_recall_a_value_k_steps_back():
    # Sequences of 8 values ~ U(-1, 1); the target is x[T-1-k] with k = 3, seen 3 steps
    # before the output is read. The target's variance is 1/3: predicting the mean, or any
    # function of the last inputs alone (independent of the target), leaves MSE ~0.33. Below
    # 10 % of the variance (0.033) on fresh sequences the LSTM must be carrying the value in
    # its cell state.
    from neurofx.nn.optim import make_optimizer

    steps, k, hidden = 8, 3, 16
    rng = np.random.default_rng(0)
    net = Sequential([LSTM(1, hidden, return_sequence=False, seed=1), Dense(hidden, 1, seed=2)])
    model = Model(net, name="recall")
    opt = make_optimizer("adam", model.store, lr=1e-2)

    def batch(n):
        x = rng.uniform(-1, 1, size=(steps, n, 1)).astype(np.float32)
        return x, x[steps - 1 - k].copy()

    losses = [model.train_step(*batch(64), opt) for _ in range(600)]
    x_test, y_test = batch(512)
    test_mse = float(np.mean((model.predict(x_test) - y_test) ** 2))
    assert np.mean(losses[:20]) > 0.2  # it did start out unable to recall
    assert test_mse < 0.1 / 3, f"held-out MSE {test_mse:.4f}"
