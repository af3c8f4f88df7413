"""Conv1D against a numpy float64 convolution and finite differences: shared and independent
weights, step > 1, odd sizes, activations."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from neurofx.nn import Model, build_module
from neurofx.nn.layers import Conv1D

sys.path.insert(0, str(Path(__file__).parent))
from gradcheck import check_module  # noqa: E402

ACTS = {"none": lambda z: z, "tanh": np.tanh, "sigmoid": lambda z: 1 / (1 + np.exp(-z))}


def np_conv(p, x, window, step, act="none"):
    """(B, V, L) -> (B, V, U, F) by explicit windows; weight (F, W) or (V, F, W)."""
    w = p["weight"]
    positions = (x.shape[2] - window) // step + 1
    out = []
    for u in range(positions):
        seg = x[:, :, u * step:u * step + window]  # (B, V, W)
        y = np.einsum("bvj,vfj->bvf" if w.ndim == 3 else "bvj,fj->bvf", seg, w)
        if "bias" in p:
            y = y + p["bias"]  # (F,) or (V, F) broadcast over the batch
        out.append(y)
    return ACTS[act](np.stack(out, axis=2))


def randomize(model, seed):
    rng = np.random.default_rng(seed)
    model.load_parameters({k: rng.normal(scale=0.7, size=v.shape).astype(np.float32)
                           for k, v in model.named_parameters().items()})


CASES = [  # batch, n_vars, length, window, step, filters, independent, activation
    (2, 3, 11, 4, 3, 5, True, "none"),
    (3, 2, 9, 3, 1, 4, False, "tanh"),
    (1, 1, 1, 1, 1, 1, False, "none"),
    (1, 1, 1, 1, 1, 1, True, "sigmoid"),
    (2, 4, 10, 3, 2, 3, True, "sigmoid"),
    (3, 5, 12, 5, 4, 1, False, "none"),  # step 4 leaves the last 3 inputs unused
    (2, 3, 9, 9, 9, 9, True, "sigmoid"),  # the seed's per-bar CSCM shape (window = L)
]


@pytest.mark.parametrize("batch,n_vars,length,window,step,filters,indep,act", CASES)
def test_conv_forward_and_gradients(batch, n_vars, length, window, step, filters, indep, act):
    layer = Conv1D(window, step, filters, n_vars=n_vars, independent=indep, activation=act,
                   seed=1)
    model = Model(layer, name=f"conv{batch}{n_vars}{length}{window}{step}{filters}{indep}")
    randomize(model, length)
    x = np.random.default_rng(2).normal(size=(batch, n_vars, length))
    got = check_module(model, [x], lambda p, x: np_conv(p, x, window, step, act), seed=3)
    assert got["weight"].shape == ((n_vars,) if indep else ()) + (filters, window)


def test_flat_input_without_bias_and_shapes():
    layer = Conv1D(3, 2, 4, n_vars=2, bias=False, seed=5)
    model = Model(layer, name="conv_flat")
    assert [s.name for s in model.store.specs] == ["weight"]
    assert model.store.specs[0].block_size == 3
    x = np.random.default_rng(6).normal(size=(3, 14))  # read as (3, 2, 7)
    check_module(model, [x], lambda p, x: np_conv(p, x.reshape(3, 2, 7), 3, 2), seed=7)
    assert layer.output_length(7) == 3


def test_weights_only_gradient_when_input_is_data():
    layer = Conv1D(2, 1, 3, n_vars=3, independent=True, seed=8)
    model = Model(layer, name="conv_nograd_x")
    x = np.random.default_rng(9).normal(size=(2, 3, 5))
    check_module(model, [x], lambda p, x: np_conv(p, x, 2, 1), grad_inputs=False, seed=10)


def test_config_round_trip_and_bad_inputs():
    layer = Conv1D(4, 2, 3, n_vars=5, independent=True, activation="tanh", seed=3)
    again = build_module(layer.describe())
    assert again.config() == layer.config()
    np.testing.assert_array_equal(again.weight.init, layer.weight.init)
    assert layer.weight.init.shape == (5, 3, 4) and layer.bias.init.shape == (5, 3)
    model = Model(Conv1D(4, 1, 2, n_vars=2), name="conv_bad")
    with pytest.raises(ValueError, match=r"input must be \(B, 2, L >= 4\), got \(1, 3, 6\)"):
        model.predict(np.zeros((1, 3, 6), np.float32))
    with pytest.raises(ValueError, match="must be >= 1"):
        Conv1D(0, 1, 1)
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        Conv1D(2, 1, 1, activation="gelu")
