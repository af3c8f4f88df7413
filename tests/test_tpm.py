"""CSCM, the differentiable LSTM cell and the TPM layer against numpy float64 references:
forward, full-BPTT gradients by finite differences, stateful steps vs the sequence forward."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from neurofx.nn import Model, Tensor, build_module, no_grad
from neurofx.nn.layers.cscm import CSCM
from neurofx.nn.layers.tpm import TPM, lstm_cell
from neurofx.nn.module import Module

sys.path.insert(0, str(Path(__file__).parent))
from gradcheck import assert_close, check_module, exact32  # noqa: E402
from test_layers_plr import np_plr  # noqa: E402


def sig(z):
    return 1.0 / (1.0 + np.exp(-z))


def np_softmax(s):
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def randomize(model, seed, scale=0.5):
    rng = np.random.default_rng(seed)
    model.load_parameters({k: rng.normal(scale=scale, size=v.shape).astype(np.float32)
                           for k, v in model.named_parameters().items()})


def np_cscm(p, x, bars, n_vars, levels, pre=""):
    rows = x.shape[0]

    def conv(name, u, act):  # per-bar dense: weight (bars, F, W), bias (bars, F)
        y = np.einsum("rbw,bfw->rbf", u, p[pre + name + ".weight"]) + p[pre + name + ".bias"]
        return sig(y) if act else y

    y = conv("inp", x.reshape(rows, bars, n_vars), True)
    outs = []
    for k in range(len(levels)):
        y = conv(f"pyramid.{k}", y, True)
        outs.append(y)
    return conv("out", np.concatenate(outs, axis=-1), False).reshape(rows, -1)


def np_cell(p, pre, x, h, c):
    w_ih, w_hh, b = p[pre + "weight_ih"], p[pre + "weight_hh"], p[pre + "bias"]
    hidden = w_hh.shape[1]
    z = x @ w_ih.T + h @ w_hh.T + b
    i, f, g, o = (z[:, k * hidden:(k + 1) * hidden] for k in range(4))
    c = sig(f) * c + sig(i) * np.tanh(g)
    return sig(o) * np.tanh(c), c


def np_tpm(p, xs, bars, n_vars, hidden, levels, min_step=0.2, state=None, pre=""):
    """Reference TPM over a sequence xs (T, B, N) from ``state`` (zeros when None); returns
    the decoder outputs (T, B, H) and the final (h_e, c_e, h_d, c_d)."""
    steps, batch, n = xs.shape
    h_e, c_e, h_d, c_d = state or tuple(np.zeros((batch, hidden)) for _ in range(4))
    q = {k[len(pre):]: v for k, v in p.items() if k.startswith(pre)}
    ys = []
    for x in xs:
        f = np_cscm(q, x, bars, n_vars, levels, "cscm.")
        f_vm = f.reshape(batch, bars, n_vars).transpose(0, 2, 1).reshape(batch, n)
        s = np.tanh(f_vm @ q["feat_attn.weight_x"].T + h_e @ q["feat_attn.weight_h"].T
                    + c_e @ q["feat_attn.weight_c"].T + q["feat_attn.bias"])
        w = np_softmax(s.reshape(batch, n_vars, bars)).reshape(batch, n)
        h_e, c_e = np_cell(q, "enc.", w * f_vm, h_e, c_e)
        plr = np_plr(x, bars, n_vars, True, min_step, bars // 3)
        e = np_softmax(np.tanh(h_e @ q["temp_attn.weight_enc"].T + h_d @ q["temp_attn.weight_h"].T
                               + c_d @ q["temp_attn.weight_c"].T + q["temp_attn.bias"]))
        z = (e * h_e) @ q["mix.weight_a"].T + plr @ q["mix.weight_p"].T + q["mix.bias"]
        h_d, c_d = np_cell(q, "dec.", z, h_d, c_d)
        ys.append(h_d)
    return np.stack(ys), (h_e, c_e, h_d, c_d)


SMALL = {"bars": 4, "n_vars": 3, "hidden": 3, "levels": (2, 1)}


# ---- CSCM ---------------------------------------------------------------------------------
@pytest.mark.parametrize("rows,bars,n_vars,levels", [(2, 3, 3, (2, 1)), (3, 2, 4, (3, 2, 1))])
def test_cscm_forward_and_gradients(rows, bars, n_vars, levels):
    model = Model(CSCM(bars, n_vars, levels, seed=1), name=f"cscm{rows}{bars}{n_vars}")
    randomize(model, 2, 0.8)
    x = np.random.default_rng(3).normal(size=(rows, bars * n_vars))
    check_module(model, [x], lambda p, x: np_cscm(p, x, bars, n_vars, levels), seed=4)


def test_cscm_seed_sizes_per_bar_weights_and_blocks():
    layer = CSCM()  # 120 bars x 9, pyramid 9 -> 6 -> 5 -> 4 -> 1, 16 -> 9
    model = Model(layer, name="cscm_seed")
    specs = {s.name: s for s in model.store.specs}
    assert specs["inp.weight"].shape == (120, 9, 9) and specs["inp.weight"].block_size == 9
    assert specs["pyramid.0.weight"].shape == (120, 6, 9)
    assert specs["pyramid.3.weight"].shape == (120, 1, 4)
    assert specs["out.weight"].shape == (120, 9, 16) and specs["out.weight"].block_size == 16
    assert specs["out.bias"].block_size == 1
    assert model.num_parameters == 120 * (90 + 60 + 35 + 24 + 5 + 153)
    # bars are independent: changing bar 5 changes only bar 5's outputs
    x = np.random.default_rng(0).normal(size=(1, 1080)).astype(np.float32)
    x2 = x.copy()
    x2[0, 45:54] += 1.0
    d = np.abs(model.predict(x2) - model.predict(x)).reshape(120, 9).max(axis=1)
    assert d[5] > 1e-4 and np.delete(d, 5).max() == 0.0
    assert build_module(layer.describe()).config() == layer.config()


# ---- the differentiable cell --------------------------------------------------------------
class CellNet(Module):
    """z = x W^T (so the cell has parameters), then two chained cells with a given c0."""

    def __init__(self):
        from neurofx.nn.tensor import Parameter

        rng = np.random.default_rng(0)
        self.w = Parameter(rng.normal(size=(8, 3)).astype(np.float32), "weight", 3)

    def forward(self, x, c0):
        from neurofx.nn import ops

        z = ops.matmul(x, self.w, trans_b=True)
        h1, c1 = lstm_cell(z, c0)
        h2, c2 = lstm_cell(ops.add(z, ops.concat([h1, h1, c1, c1])), c1)
        return ops.concat([h2, c2, h1])


def np_cellnet(p, x, c0):
    z = x @ p["w"].T

    def cell(z, c):
        i, f, g, o = (z[:, k * 2:(k + 1) * 2] for k in range(4))
        c = sig(f) * c + sig(i) * np.tanh(g)
        return sig(o) * np.tanh(c), c

    h1, c1 = cell(z, c0)
    h2, c2 = cell(z + np.concatenate([h1, h1, c1, c1], axis=1), c1)
    return np.concatenate([h2, c2, h1], axis=1)


def test_lstm_cell_gradients_through_h_and_c():
    model = Model(CellNet(), name="cellnet")
    rng = np.random.default_rng(5)
    check_module(model, [rng.normal(size=(3, 3)), rng.normal(size=(3, 2))], np_cellnet, seed=6)


# ---- TPM ----------------------------------------------------------------------------------
@pytest.mark.parametrize("steps,batch", [(3, 2), (1, 3)])
def test_tpm_sequence_forward_and_bptt_gradients(steps, batch):
    model = Model(TPM(**SMALL, seed=2), name=f"tpm{steps}{batch}")
    randomize(model, 7)
    xs = np.random.default_rng(8).normal(size=(steps, batch, 12))
    check_module(model, [xs], lambda p, xs: np_tpm(p, xs, **SMALL)[0], seed=9, grad_rtol=2e-4)


def test_stateful_steps_equal_the_sequence_forward_and_reset():
    layer = TPM(bars=6, n_vars=3, hidden=5, levels=(2, 1), seed=3)
    model = Model(layer, name="tpm_steps")
    randomize(model, 10, 0.4)
    xs = exact32(np.random.default_rng(11).normal(size=(7, 2, 18)))
    seq = model.predict(xs)
    stepped = np.stack([model.predict(x) for x in xs])
    np.testing.assert_allclose(stepped, seq, rtol=1e-5, atol=1e-6)
    p = {k: v.astype(np.float64) for k, v in model.named_parameters().items()}
    ref, (h_e, c_e, h_d, c_d) = np_tpm(p, xs, 6, 3, 5, (2, 1))
    assert_close(seq, ref)
    kept = layer.state()
    for name, want in (("h_enc", h_e), ("c_enc", c_e), ("h_dec", h_d), ("c_dec", c_d)):
        assert_close(kept[name], want, what=name)
    # the state carries until reset_state(); the sequence mode does not touch it
    again = model.predict(xs[0])
    assert np.abs(again - seq[0]).max() > 1e-4
    model.predict(xs)
    assert np.abs(layer.state()["h_dec"] - again).max() == 0.0
    model.reset_state()
    assert layer.state() is None
    np.testing.assert_allclose(model.predict(xs[0]), seq[0], rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="batch 1 differs from the kept state's 2; call "
                                         "reset_state"):
        model.predict(xs[1, :1])


def test_step_gradient_stops_at_the_kept_state():
    layer = TPM(**SMALL, seed=4)
    model = Model(layer, name="tpm_step_grad")
    randomize(model, 12)
    rng = np.random.default_rng(13)
    with no_grad():
        for x in exact32(rng.normal(size=(2, 2, 12))):
            layer(Tensor.from_numpy(x))
    kept = {k: v.astype(np.float64) for k, v in layer.state().items()}
    start = (kept["h_enc"], kept["c_enc"], kept["h_dec"], kept["c_dec"])
    x = rng.normal(size=(2, 12))
    check_module(model, [x], lambda p, x: np_tpm(p, x[None], **SMALL, state=start)[0][0],
                 seed=14, grad_rtol=2e-4)


def test_tpm_seed_sizes_blocks_and_config_round_trip():
    layer = TPM(hidden=8)
    model = Model(layer, name="tpm_seed")
    specs = {s.name: s for s in model.store.specs}
    assert specs["feat_attn.weight_x"].shape == (1080, 1080)
    assert specs["feat_attn.weight_h"].shape == (1080, 8)
    assert specs["feat_attn.weight_h"].block_size == 8
    assert specs["enc.weight_ih"].shape == (32, 1080)
    assert specs["enc.weight_ih"].block_size == 1080
    assert specs["mix.weight_p"].shape == (8, 1080)
    assert specs["temp_attn.bias"].block_size == 1
    n, h = 1080, 8
    assert model.num_parameters == (44040 + n * (n + 2 * h) + n + 4 * h * (n + h + 1)
                                     + 3 * h * h + h + h * (h + n) + h + 4 * h * (2 * h + 1))
    again = build_module(layer.describe())
    assert isinstance(again, TPM) and again.config() == layer.config()
    np.testing.assert_array_equal(again.mix.weight_p.init, TPM(hidden=8).mix.weight_p.init)


def test_tpm_rejects_bad_input_and_config():
    model = Model(TPM(**SMALL), name="tpm_bad")
    with pytest.raises(ValueError, match=r"input must be \(B, 12\) or \(T, B, 12\)"):
        model.predict(np.zeros((2, 13), np.float32))
    with pytest.raises(ValueError, match="need bars >= 3"):
        TPM(bars=2)
