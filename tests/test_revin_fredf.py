"""RevIN de-normalisation (round trips through BatchNorm, gradients into x, gamma and beta) and
the FreDF loss against numpy's rfft, both against float64 finite differences."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from neurofx.nn import Dense, Model, Module, Tensor
from neurofx.nn.layers import BatchNorm
from neurofx.nn.layers.revin import RevIN
from neurofx.nn.losses import fredf_loss
from neurofx.nn.ops.forecast import dft_matrix

sys.path.insert(0, str(Path(__file__).parent))
from gradcheck import assert_close, check_module, exact32, fd_grads  # noqa: E402

BN_EPS = 1e-5


# ---- RevIN --------------------------------------------------------------------------------
class NormDenseRevin(Module):
    """BatchNorm(n_src) -> Dense(n_src -> n_out) -> RevIN(n_out, n_src) bound to the norm."""

    def __init__(self, n_src, n_out, index_map=None):
        self.bn = BatchNorm(n_src)
        self.dense = Dense(n_src, n_out, seed=1)
        self.revin = RevIN(n_out, n_src, index_map).bind(self.bn)

    def forward(self, x):
        return self.revin(self.dense(self.bn(x)))


def set_stats(bn, rng, gamma=None):
    n = bn.n
    mean, var = rng.normal(size=n), rng.uniform(0.2, 3.0, size=n)
    bn.running_mean.assign(mean)
    bn.running_var.assign(var)
    return exact32(mean), exact32(var)


def np_revin(x, idx, gamma, beta, mean, var, min_gamma=1e-3):
    g = np.where(np.abs(gamma) >= min_gamma, gamma, np.copysign(min_gamma, gamma))[idx]
    return (x - beta[idx]) * np.sqrt(var[idx] + BN_EPS) / g + mean[idx]


@pytest.mark.parametrize("bar_map", [False, True])
def test_revin_forward_and_gradients_into_x_gamma_beta(bar_map):
    """12 normalised inputs (4 bars x 3 features), 6 outputs (2 bars x 3); one gamma below
    the clamp and one negative."""
    idx_map = RevIN.latest_bar_map(2, 3) if bar_map else None
    net = NormDenseRevin(12, 6, idx_map)
    model = Model(net, name=f"revin{bar_map}").eval()
    rng = np.random.default_rng(3)
    mean, var = set_stats(net.bn, rng)
    gamma = rng.uniform(0.5, 1.5, size=12)
    gamma[1], gamma[2] = 4e-4, -0.8
    params = model.named_parameters()
    params.update({"bn.gamma": gamma, "bn.beta": rng.normal(size=12),
                   "dense.weight": rng.normal(scale=0.5, size=(6, 12))})
    model.load_parameters(params)
    idx = np.array(idx_map) if bar_map else np.arange(6)
    assert set(idx) >= {1, 2}  # the clamped and the negative gamma are used

    def ref(p, x):
        z = p["bn.gamma"] * (x - mean) / np.sqrt(var + BN_EPS) + p["bn.beta"]
        h = z @ p["dense.weight"].T + p["dense.bias"]
        return np_revin(h, idx, p["bn.gamma"], p["bn.beta"], mean, var)

    # gamma[1] = 4e-4 is used as 1e-3 by RevIN (a 2.5x different output without the clamp)
    # and as itself by the BatchNorm; the finite differences see both
    check_module(model, [rng.normal(size=(3, 12))], ref, seed=4)


@pytest.mark.parametrize("mode", ["batch", "running"])
def test_revin_inverts_the_normaliser(mode):
    """RevIN(BatchNorm(x)) == x with the default map and n_out == n_src (eval stats in batch
    mode; in running mode one sample per call, whose stats are the ones after the update)."""
    bn = BatchNorm(7, mode=mode, window=50)
    holder = Model(bn, name=f"bn_inv_{mode}").eval()
    rng = np.random.default_rng(5)
    holder.load_parameters({"gamma": rng.uniform(0.5, 2.0, size=7), "beta": rng.normal(size=7)})
    if mode == "batch":
        set_stats(bn, rng)
    revin = RevIN(7, 7).bind(bn)
    for _ in range(3):
        x = rng.normal(loc=1.0, scale=2.0, size=(1, 7)).astype(np.float32)
        z = holder.forward(Tensor.from_numpy(x))
        back = revin(z).numpy()
        np.testing.assert_allclose(back, x, rtol=1e-5, atol=1e-5)


def test_revin_seed_shapes_default_map():
    """1080 normalised inputs, 216 forecast outputs: output j uses input element j."""
    bn = BatchNorm(1080)
    Model(bn, name="bn_seed").eval()
    rng = np.random.default_rng(6)
    mean, var = set_stats(bn, rng)
    revin = RevIN(216, 1080).bind(bn)
    x = exact32(rng.normal(size=(2, 216)))
    y = revin(Tensor.from_numpy(x)).numpy()
    assert_close(y, np_revin(x, np.arange(216), np.ones(1080), np.zeros(1080), mean, var), 1e-5)
    assert RevIN.latest_bar_map(24, 9)[:11] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1]


def test_revin_errors():
    revin = RevIN(4, 8)
    with pytest.raises(ValueError, match=r"no normaliser bound; call revin.bind"):
        revin(Tensor.from_numpy(np.zeros((1, 4), np.float32)))
    with pytest.raises(ValueError, match="source normaliser has 5 features, expected n_src=8"):
        revin.bind(BatchNorm(5))
    with pytest.raises(ValueError, match=r"index_map must hold 4 integers in \[0, 8\)"):
        RevIN(4, 8, [0, 1, 2, 8])


# ---- FreDF --------------------------------------------------------------------------------
def np_fredf(pred, target, n_vars, horizon, alpha, time_major):
    b = pred.shape[0]
    shape = (b, horizon, n_vars) if time_major else (b, n_vars, horizon)
    axis = 1 if time_major else 2
    d = pred.reshape(shape) - target.reshape(shape)
    freq = np.abs(np.fft.rfft(d, axis=axis)).mean()
    return np.array([(1 - alpha) * np.mean(d**2) + alpha * freq])


def test_dft_matrix_is_numpy_rfft():
    for horizon in (1, 5, 24):
        x = np.random.default_rng(horizon).normal(size=horizon)
        s = dft_matrix(horizon) @ x
        k = horizon // 2 + 1
        ref = np.fft.rfft(x)
        np.testing.assert_allclose(s[:k] + 1j * s[k:], ref, atol=1e-12)


@pytest.mark.parametrize("b,n_vars,horizon,time_major,alpha", [
    (2, 9, 24, True, 0.7), (3, 9, 24, False, 0.7), (2, 3, 5, True, 0.3), (1, 2, 6, False, 1.0),
])
def test_fredf_value_and_gradient(b, n_vars, horizon, time_major, alpha):
    rng = np.random.default_rng(horizon + b)
    pred = exact32(rng.normal(size=(b, n_vars * horizon)))
    target = exact32(rng.normal(size=(b, n_vars * horizon)))
    p = Tensor.from_numpy(pred, requires_grad=True)
    loss = fredf_loss(p, Tensor.from_numpy(target), n_vars, horizon, alpha, time_major)
    assert loss.shape == (1,)
    expected = np_fredf(pred, target, n_vars, horizon, alpha, time_major)
    assert_close(loss.numpy(), expected, 1e-5, what="loss")
    loss.backward()
    (num,) = fd_grads(lambda x: np_fredf(x, target, n_vars, horizon, alpha, time_major),
                      [pred], np.ones(1))
    assert_close(p.grad(), num, 1e-4, floor=1e-3, what="d loss / d pred")


def test_fredf_single_step_is_mse_plus_mae():
    """Horizon 1 (the actor's FreDF over 6 actions, count 1): only the DC bin, |d|."""
    pred = np.array([[1.0, -2.0, 0.5, 0.0, 3.0, 1.0]], np.float32)
    target = np.array([[0.0, 0.0, 0.5, 1.0, 1.0, -1.0]], np.float32)
    loss = fredf_loss(Tensor.from_numpy(pred), Tensor.from_numpy(target), 6, 1)
    d = pred - target  # 1, -2, 0, -1, 2, 2
    assert loss.item() == pytest.approx(0.3 * 14 / 6 + 0.7 * 8 / 6, rel=1e-6)
    assert np.abs(d).sum() == 8 and (d**2).sum() == 14


def test_fredf_alpha_zero_is_the_engine_mse():
    rng = np.random.default_rng(8)
    pred, target = rng.normal(size=(2, 216)), rng.normal(size=(2, 216))
    tp, tt = Tensor.from_numpy(pred), Tensor.from_numpy(target)
    from neurofx.nn import ops

    assert fredf_loss(tp, tt, 9, 24, alpha=0.0).item() == pytest.approx(
        ops.mse_loss(tp, tt).item(), rel=1e-6)


@pytest.mark.parametrize("args,match", [
    (((2, 216), (2, 215), 9, 24, 0.7), r"prediction \(2, 216\) and target \(2, 215\) differ"),
    (((2, 216), (2, 216), 9, 24, 1.5), r"alpha must be in \[0, 1\], got 1.5"),
    (((2, 200), (2, 200), 9, 24, 0.7), "is not a batch of horizon=24 x n_vars=9"),
])
def test_fredf_errors(args, match):
    ps, ts, n_vars, horizon, alpha = args
    with pytest.raises(ValueError, match=match):
        fredf_loss(Tensor.from_numpy(np.zeros(ps, np.float32)),
                   Tensor.from_numpy(np.zeros(ts, np.float32)), n_vars, horizon, alpha)
