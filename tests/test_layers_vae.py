"""VAEHead: reparameterised sample and KL term against numpy float64 with the noise the kernel
drew, the noise's distribution and reproducibility, eval and stochastic modes."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from neurofx.nn import Dense, Model, Sequential, build_module
from neurofx.nn.layers import VAEHead

sys.path.insert(0, str(Path(__file__).parent))
from gradcheck import assert_close, check_module, exact32  # noqa: E402


def np_kl(x, k, mult):
    mu, lv = x[:, :k], x[:, k:]
    return np.array([mult * np.mean(-0.5 * np.sum(1 + lv - mu**2 - np.exp(lv), axis=1))])


def inputs(batch, k, seed):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(size=(batch, k)), rng.uniform(-2, 1, size=(batch, k))], 1)


@pytest.mark.parametrize("batch,k", [(1, 1), (3, 5), (4, 1081)])
def test_sample_forward_and_gradients_with_the_drawn_eps(batch, k):
    head = VAEHead(k, seed=7)
    model = Model(head, name=f"vae{batch}_{k}")

    def ref(p, x):  # called after the engine forward: uses the eps the kernel drew
        eps = head.last_eps.numpy().astype(np.float64)
        return x[:, :k] + np.exp(0.5 * x[:, k:]) * eps

    check_module(model, [inputs(batch, k, batch)], ref, seed=1)
    assert head.last_eps.shape == (batch, k)


@pytest.mark.parametrize("batch,k,mult", [(1, 1, 1.0), (3, 5, 1e-3), (2, 1081, 0.5)])
def test_kl_term_and_gradients(batch, k, mult):
    head = VAEHead(k, kld_mult=mult)
    model = Model(head, name=f"vae_kl{batch}_{k}")

    def kl_of(x):
        head(x)
        (kl,) = head._extra_losses
        return kl

    check_module(model, [inputs(batch, k, k)], lambda p, x: np_kl(x, k, mult), call=kl_of,
                 seed=2)


def test_model_loss_adds_the_kl_term():
    net = Sequential([Dense(3, 4, seed=1), VAEHead(2, kld_mult=0.1, seed=3)])
    model = Model(net, name="vae_loss")
    rng = np.random.default_rng(4)
    x, y = exact32(rng.normal(size=(5, 3))), exact32(rng.normal(size=(5, 2)))
    loss = model.loss(x, y).item()
    p = {k: v.astype(np.float64) for k, v in model.named_parameters().items()}
    h = x @ p["0.weight"].T + p["0.bias"]
    eps = net.layers[1].last_eps.numpy().astype(np.float64)
    out = h[:, :2] + np.exp(0.5 * h[:, 2:]) * eps
    assert_close(loss, np.mean((out - y) ** 2) + np_kl(h, 2, 0.1)[0])


def test_noise_is_standard_normal_and_reproducible():
    x = np.zeros((256, 128), np.float32)  # mu = 0, logvar = 0: the output is eps itself
    head = VAEHead(64, seed=11)
    model = Model(head, name="vae_eps")
    model.train()
    eps = model.forward(x).numpy().ravel()
    # 16384 draws: sampling error of the mean ~0.008, of the std ~0.006
    assert abs(eps.mean()) < 0.03 and abs(eps.std() - 1) < 0.03
    assert abs(np.mean(np.abs(eps) < 1) - 0.6827) < 0.02
    assert abs(np.mean(np.abs(eps) < 2) - 0.9545) < 0.01
    again = Model(VAEHead(64, seed=11), name="vae_eps2").train()
    np.testing.assert_array_equal(again.forward(x).numpy().ravel(), eps)  # same seed, call 1
    second = model.forward(x).numpy().ravel()  # call 2: fresh noise
    assert abs(np.corrcoef(eps, second)[0, 1]) < 0.05
    other = Model(VAEHead(64, seed=12), name="vae_eps3").train()
    assert abs(np.corrcoef(eps, other.forward(x).numpy().ravel())[0, 1]) < 0.05


def test_eval_is_deterministic_mean_unless_stochastic():
    x = exact32(inputs(3, 4, 5))
    head = VAEHead(4, seed=2)
    model = Model(head, name="vae_eval")
    np.testing.assert_array_equal(model.predict(x), x[:, :4])
    assert head._extra_losses == [] and head.calls == 0
    head.stochastic = True
    sampled = model.predict(x)
    eps = head.last_eps.numpy()
    assert_close(sampled, x[:, :4] + np.exp(0.5 * x[:, 4:]) * eps)
    assert np.abs(eps).max() > 0.1 and head._extra_losses == []  # eval: no KL term
    # the switch is a run-time setting, not part of the architecture
    assert build_module(head.describe()).config() == {"k": 4, "kld_mult": 1e-3, "seed": 2}
    with pytest.raises(ValueError, match=r"input must be \(B, 8\) = \[mu \| logvar\], "
                                         r"got \(3, 6\)"):
        model.predict(np.zeros((3, 6), np.float32))
