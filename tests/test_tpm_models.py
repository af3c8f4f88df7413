"""The TPM encoder, actor and critic: composite gradient checks at reduced sizes against numpy
float64, the registered builders, the FreDF losses, save/load, and a short training on the
bundled 2023 bars that must beat the naive "next bars = last bar" forecast."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from neurofx import agents
from neurofx.agents.tpm import LOSSES, CrossAttentionAgent, TPMEncoder
from neurofx.errors import NeurofxError
from neurofx.nn import Model, Tensor, build_module, no_grad
from neurofx.nn.losses import masked_loss

sys.path.insert(0, str(Path(__file__).parent))
from gradcheck import assert_close, check_module, exact32  # noqa: E402
from test_layers_attention import np_block  # noqa: E402
from test_layers_norm import np_running  # noqa: E402
from test_revin_fredf import np_fredf  # noqa: E402
from test_tpm import np_tpm, sig  # noqa: E402

EPS = 1e-10  # the builders' norm_eps
ENC = {"bars": 4, "n_vars": 3, "hidden": 3, "horizon": 2, "levels": (2, 1), "norm_window": 4}


def set_params(model, seed, scale=0.5):
    """Random weights; norm gammas near 1 (so RevIN's clamp stays inactive)."""
    rng = np.random.default_rng(seed)
    vals = {}
    for k, v in model.named_parameters().items():
        vals[k] = rng.normal(scale=scale, size=v.shape)
        if k.endswith("gamma"):
            vals[k] = 1.0 + 0.3 * vals[k]
    model.load_parameters({k: v.astype(np.float32) for k, v in vals.items()})


def np_encoder(p, xs, stats, revin):
    """xs (T, B, N); stats = per-row (mean, var) (T*B, N) and the final (mean, var)."""
    steps, batch, n = xs.shape
    ms, vs, mean_f, var_f = stats
    g, b = p["norm.gamma"], p["norm.beta"]
    xn = (g * (xs.reshape(-1, n) - ms) / np.sqrt(vs + EPS) + b).reshape(xs.shape)
    y, _ = np_tpm(p, xn, ENC["bars"], ENC["n_vars"], ENC["hidden"], ENC["levels"], pre="tpm.")
    z = y @ p["head.0.weight"].T + p["head.0.bias"]
    y = sig(np.where(z > 0, z, 0.01 * z) @ p["head.1.weight"].T + p["head.1.bias"])
    y = np.tanh(y @ p["head.2.weight"].T + p["head.2.bias"])
    if revin:
        k = np.arange(y.shape[-1]) % n
        gk = np.copysign(np.maximum(np.abs(g[k]), 1e-3), g[k])
        y = (y - b[k]) * np.sqrt(var_f[k] + EPS) / gk + mean_f[k]
    return y


@pytest.mark.parametrize("revin", [True, False])
def test_encoder_composite_forward_and_gradients(revin):
    net = TPMEncoder(**ENC, revin=revin, seed=3)
    model = Model(net, name=f"enc_small{int(revin)}")
    set_params(model, 4)
    rng = np.random.default_rng(5)
    mean0, var0 = rng.normal(size=12), rng.uniform(0.5, 2.0, size=12)
    net.norm.running_mean.assign(mean0)
    net.norm.running_var.assign(var0)
    net.norm.count.assign([4.0])  # a full window: every row updates with N = 4
    xs = exact32(rng.normal(size=(2, 2, 12)))

    def stats(x):
        ms, vs, mean_f, var_f, _ = np_running(x.reshape(-1, 12), mean0, var0, 4, 4)
        return ms, vs, mean_f, var_f

    base = stats(xs)
    check_module(model, [xs], lambda p, x: np_encoder(p, x, stats(x), revin),
                 np_forward_grad=lambda p, x: np_encoder(p, x, base, revin), seed=6,
                 grad_rtol=3e-4)


def np_agent(p, x, ctx, cfg, eps=None):
    c = ctx.reshape(len(ctx), cfg["kv_dim"], cfg["kv_tokens"]).transpose(0, 2, 1)
    h = sig(x @ p["embed.weight"].T + p["embed.bias"])[:, None, :]
    q = {k[len("cross."):]: v for k, v in p.items() if k.startswith("cross.")}
    h = np_block(q, h, c, heads=cfg["heads"], kv_heads=cfg["kv_heads"], layers=cfg["layers"],
                 kv_step=cfg["kv_step"])[:, 0, :]
    for i in range(cfg["depth"]):
        h = sig(h @ p[f"body.{i}.weight"].T + p[f"body.{i}.bias"])
    y = h @ p["out.weight"].T + p["out.bias"]
    if eps is None:
        return y
    k = y.shape[1] // 2
    return y[:, :k] + np.exp(0.5 * y[:, k:]) * eps


AGENT = {"q_dim": 4, "kv_dim": 3, "kv_tokens": 2, "heads": 2, "kv_heads": 1, "key_size": 2,
         "layers": 2, "kv_step": 1, "hidden": 5}


@pytest.mark.parametrize("vae,depth,n_in,n_out", [(True, 2, 4, 2), (False, 3, 2, 3)])
def test_actor_and_critic_composite_forward_and_gradients(vae, depth, n_in, n_out):
    net = CrossAttentionAgent(n_in, n_out, **AGENT, depth=depth, vae=vae, seed=7)
    model = Model(net, name=f"agent{int(vae)}")
    set_params(model, 8)
    rng = np.random.default_rng(9)
    x, ctx = rng.normal(size=(3, n_in)), rng.normal(size=(3, 6))
    cfg = {**AGENT, "depth": depth}

    def ref(p, x, ctx):
        eps = net.vae.last_eps.numpy().astype(np.float64) if vae else None
        return np_agent(p, x, ctx, cfg, eps)

    check_module(model, [x, ctx], ref, seed=10, grad_rtol=3e-4)


def test_encoder_steps_equal_sequence_and_save_load(tmp_path):
    net = TPMEncoder(**{**ENC, "bars": 6, "hidden": 4}, revin=True, seed=11)
    model = Model(net, name="enc_steps")
    set_params(model, 12, 0.4)
    xs = exact32(np.random.default_rng(13).normal(size=(5, 2, 18)))
    path = tmp_path / "enc.npz"
    model.save(path)
    again = Model.load(path, name="enc_loaded")
    assert again.net.revin is not None and again.net.revin._source() is again.net.norm
    # without RevIN the modes agree exactly; compare the tanh layer by disabling it
    seq_full = model.predict(xs)
    stepped_full = np.stack([again.predict(x) for x in xs])
    np.testing.assert_allclose(stepped_full[-1], seq_full[-1], rtol=1e-5, atol=1e-5)
    net.revin = again.net.revin = None
    model.reset_state()
    again.reset_state()
    seq = model.predict(xs)
    stepped = np.stack([again.predict(x) for x in xs])
    np.testing.assert_allclose(stepped, seq, rtol=1e-5, atol=1e-6)


def test_registered_builders_sizes_and_overrides():
    enc = agents.describe("encoder", "tpm")
    assert (enc["type"], enc["bars"], enc["n_vars"], enc["hidden"], enc["horizon"]) == (
        "TPMEncoder", 120, 9, 256, 24)
    act = build_module(agents.describe("actor", "tpm"))
    assert (act.n_in, act.n_out, act.q_dim, act.cross.kv_tokens, act.cross.kv_dim) == (
        12, 6, 32, 9, 24)
    assert (act.cross.heads, act.cross.kv_heads, act.cross.key_size, act.cross.n_layers) == (
        8, 4, 32, 9)
    assert act.vae is not None and act.vae.k == 6 and len(act.body) == 2
    crit = build_module(agents.describe("critic", "tpm"))
    assert (crit.n_in, crit.n_out, crit.vae, len(crit.body)) == (6, 3, None, 3)
    # parameter count of the seed-size actor by hand: embed, 9 layers of cross-attention
    # (+ 9 K/V projections), two 256 sigmoid layers, 12 outputs
    model = Model(act, name="actor_count")
    cross = 9 * (2 * 128 * 24 + 128) + 9 * (256 * 32 + 256 + 32 * 256 + 32 + 4 * 32
                                            + 128 * 32 + 128 + 32 * 128 + 32)
    assert model.num_parameters == (12 * 32 + 32) + cross + (32 * 256 + 256) + (
        256 * 256 + 256) + (256 * 12 + 12)
    out = model.predict(np.zeros((2, 12), np.float32), np.zeros((2, 216), np.float32))
    assert out.shape == (2, 6)
    small = agents.describe("encoder", "tpm", bars=8, hidden=16)
    assert (small["bars"], small["hidden"]) == (8, 16)
    with pytest.raises(NeurofxError, match="override hidden=0 must be an integer >= 1"):
        agents.describe("encoder", "tpm", hidden=0)
    with pytest.raises(NeurofxError, match="kv_heads=3 must divide heads=8"):
        agents.describe("actor", "tpm", kv_heads=3)
    with pytest.raises(NeurofxError, match="bad override"):
        agents.describe("critic", "tpm", bogus=1)


def test_losses_are_fredf_and_masked_loss_ignores_inactive_rows():
    rng = np.random.default_rng(14)
    pred, target = exact32(rng.normal(size=(3, 216))), exact32(rng.normal(size=(3, 216)))
    got = LOSSES["encoder:tpm"](Tensor.from_numpy(pred), Tensor.from_numpy(target)).item()
    assert_close(got, float(np.squeeze(np_fredf(pred, target, 9, 24, 0.7, True))), 1e-5)
    a, b = exact32(rng.normal(size=(4, 6))), exact32(rng.normal(size=(4, 6)))
    d = a - b
    want = 0.3 * np.mean(d ** 2) + 0.7 * np.mean(np.abs(d))
    assert_close(LOSSES["actor:tpm"](Tensor.from_numpy(a), Tensor.from_numpy(b)).item(), want,
                 1e-5)
    mask = np.array([1, 0, 1], np.float32)
    masked = masked_loss(LOSSES["encoder:tpm"], Tensor.from_numpy(pred),
                         Tensor.from_numpy(target), mask).item()
    want = np_fredf(pred[[0, 2]], target[[0, 2]], 9, 24, 0.7, True)
    assert_close(masked, float(np.squeeze(want)), 1e-5)


def test_brief_training_on_2023_beats_the_naive_forecast():
    # The encoder (24-bar window, hidden 8) trained for 40 batches of 8 x 16 steps on the
    # first 80 % of 2023; held-out = the rest of 2023 in consecutive 16-step windows from a
    # reset state. Targets: the next 24 bars' features standardised with training statistics.
    from neurofx.data import compute_features, first_decision_bar, load_bars, state_windows
    from neurofx.nn.optim import make_optimizer

    bars, seq = 24, 16
    data = load_bars()
    feats = compute_features(data).astype(np.float64)
    year = np.flatnonzero(data.index.year == 2023)
    ts = np.arange(max(year[0], first_decision_bar(feats, bars)), year[-1] - 22)
    split = ts[int(0.8 * len(ts))]
    train = ts[ts + 24 <= split]
    mean, std = feats[train - 1].mean(axis=0), feats[train - 1].std(axis=0)
    ahead = ts[:, None] + 23 - np.arange(24)
    y_all = ((feats[ahead] - mean) / std).reshape(len(ts), -1).astype(np.float32)
    x_all = state_windows(feats, ts, bars).astype(np.float32)
    model = agents.build("encoder", "tpm", bars=bars, hidden=8, model_name="enc_fc")
    model.loss_fn = LOSSES["encoder:tpm"]
    opt = make_optimizer("adam", model.store, lr=1e-3)
    rng = np.random.default_rng(0)
    for _ in range(40):
        rows = rng.integers(0, len(train) - seq, 8)[None, :] + np.arange(seq)[:, None]
        model.train_step(x_all[rows], y_all[rows], opt)
    first = int(np.searchsorted(ts, split))
    n_win = (len(ts) - first) // seq
    rows = first + np.arange(n_win)[None, :] * seq + np.arange(seq)[:, None]
    model.reset_state()
    with no_grad():
        pred = model.predict(x_all[rows]).astype(np.float64)
    y = y_all[rows]
    naive = np.tile((feats[ts[rows] - 1] - mean) / std, (1, 1, 24))
    mse_model, mse_naive = np.mean((pred - y) ** 2), np.mean((naive - y) ** 2)
    print(f"held-out MSE: model {mse_model:.4f}, naive {mse_naive:.4f}, "
          f"training mean {np.mean(y.astype(np.float64) ** 2):.4f}")
    assert mse_model < mse_naive, f"model {mse_model:.4f} vs naive {mse_naive:.4f}"
