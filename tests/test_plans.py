"""Captured execution plans (neurofx.nn.plan): replay equals eager bit for bit.

Every registered agent model (baseline and TPM encoder, actor, critic, at small sizes) and the
recurrent autoencoder are run twice from the same weights, once eagerly and once through
plans, in stateful step-by-step inference and in training; outputs, losses and weights must
be identical (np.array_equal, not allclose)."""

import warnings

import numpy as np
import pytest

from neurofx import agents
from neurofx.agents.autoencoder import RecurrentAutoencoder
from neurofx.agents.tpm import LOSSES
from neurofx.nn import Dense, Dropout, Model, Sequential, Tensor, ops
from neurofx.nn.optim import make_optimizer
from neurofx.nn.plan import PlanFallbackWarning, _place

SMALL = {
    ("encoder", "tpm"): dict(bars=12, hidden=16),
    ("actor", "tpm"): dict(embedding=8, heads=2, kv_heads=1, key_size=4, layers=2, hidden=16),
    ("critic", "tpm"): dict(embedding=8, heads=2, kv_heads=1, key_size=4, layers=2, hidden=16),
    ("encoder", "baseline"): dict(hidden=16),
    ("actor", "baseline"): dict(hidden=16),
    ("critic", "baseline"): dict(hidden=16),
    ("encoder", "skip"): dict(hidden=8),
}


def _pair(role, name):
    models = []
    for tag, eager in (("eager", True), ("plan", False)):
        model = agents.build(role, name, model_name=f"{role}_{name}_{tag}", **SMALL[(role, name)])
        model.eager = eager
        if name == "skip":  # a non-trivial fitted path (fresh, it forecasts zeros)
            rng = np.random.default_rng(5)
            for key, state in model.net.named_state():
                if key.startswith("skip_"):
                    state.assign(rng.normal(size=state.shape) * 1e-2)
        models.append(model)
    return tuple(models)


def _inputs(model, rng, batch, steps=None):
    """Random inputs (and a target) fitting ``model``: one bar (B, N) or a sequence."""
    lead = (batch,) if steps is None else (steps, batch)
    probe = model.describe()
    if probe["type"] in ("TPMEncoder", "SkipEncoder"):
        n_in, n_out = probe["bars"] * probe["n_vars"], probe["horizon"] * probe["n_vars"]
        return (rng.normal(size=(*lead, n_in)).astype(np.float32),), \
            rng.normal(size=(*lead, n_out)).astype(np.float32)
    if probe["type"] == "CrossAttentionAgent" or probe["layers"][0]["type"] == "Concat":
        first = probe["n_in"] if probe["type"] == "CrossAttentionAgent" else \
            probe["layers"][1]["n_in"] - 216
        n_out = probe["n_out"] if probe["type"] == "CrossAttentionAgent" else \
            probe["layers"][-1]["k"] if probe["layers"][-1]["type"] == "VAEHead" else \
            probe["layers"][-1]["n_out"]
        return (rng.normal(size=(batch, first)).astype(np.float32),
                rng.normal(size=(batch, 216)).astype(np.float32)), \
            rng.normal(size=(batch, n_out)).astype(np.float32)
    n_in, n_out = probe["layers"][1]["n_in"], probe["layers"][-1]["n_out"]
    return (rng.normal(size=(batch, n_in)).astype(np.float32),), \
        rng.normal(size=(batch, n_out)).astype(np.float32)


def _heads(model):
    return [m for _, m in model.net.modules() if type(m).__name__ == "VAEHead"]


def _weights_equal(a, b):
    wa, wb = a.named_parameters(), b.named_parameters()
    return all(np.array_equal(wa[k], wb[k]) for k in wa)


# stochastic inference only where there is a VAE head to sample: the actors
@pytest.mark.parametrize("role,name,stochastic",
                         [(r, n, False) for r, n in sorted(SMALL)]
                         + [(r, n, True) for r, n in sorted(SMALL) if r == "actor"])
def test_stateful_inference_replays_bit_for_bit(role, name, stochastic):
    rng = np.random.default_rng(1)
    eager, planned = _pair(role, name)
    for m in (eager, planned):
        m.eval()
        for head in _heads(m):
            head.stochastic = stochastic
    calls = [_inputs(eager, rng, 1)[0] for _ in range(5)]
    with warnings.catch_warnings():
        warnings.simplefilter("error", PlanFallbackWarning)
        for x in calls:
            assert np.array_equal(eager.predict(*x), planned.predict(*x))
    info = planned.plan_info()["predict"]
    assert info["plans"] >= 1 and not info["refused"]
    if stochastic:  # the noise counter advanced in replays as in eager calls
        assert [h.calls for h in _heads(planned)] == [h.calls for h in _heads(eager)] == [5]
        assert np.array_equal(_heads(eager)[0].last_eps.numpy(),
                              _heads(planned)[0].last_eps.numpy())


@pytest.mark.parametrize("role,name", sorted(SMALL))
def test_training_replays_bit_for_bit(role, name):
    rng = np.random.default_rng(2)
    eager, planned = _pair(role, name)
    loss_fn = LOSSES.get(f"{role}:{name}")
    opts = []
    for m in (eager, planned):
        if loss_fn is not None:
            m.loss_fn = loss_fn
        m.train()
        opts.append(make_optimizer("adam", m.store, lr=1e-2))
    seq = name == "tpm" and role == "encoder"
    batches = [_inputs(eager, rng, 3, steps=4 if seq else None) for _ in range(4)]
    with warnings.catch_warnings():
        warnings.simplefilter("error", PlanFallbackWarning)
        for x, y in batches:
            assert eager.train_step(x, y, opts[0]) == planned.train_step(x, y, opts[1])
    assert _weights_equal(eager, planned)
    assert opts[0].step_count == opts[1].step_count == 4
    assert planned.plan_info()["train_step"]["launches"][0] > 0


def test_tpm_encoder_step_training_and_state():
    """Stateful (B, N) training steps: the TPM state carries across replays."""
    rng = np.random.default_rng(3)
    eager, planned = _pair("encoder", "tpm")
    opts = [make_optimizer("adam-mini", m.store, lr=1e-2) for m in (eager, planned)]
    for _ in range(4):
        x, y = _inputs(eager, rng, 2)
        assert eager.train_step(x, y, opts[0]) == planned.train_step(x, y, opts[1])
    assert _weights_equal(eager, planned)
    se, sp = eager.net.tpm.state(), planned.net.tpm.state()
    assert all(np.array_equal(se[k], sp[k]) for k in se)


def _autoencoder_pair():
    kw = dict(n_vars=3, bars_in=4, bars_out=6, lstm=[8, 6], latent=3, decoder=[5], seed=4)
    return tuple(Model(RecurrentAutoencoder(**kw), name=f"ae_{tag}", eager=eager)
                 for tag, eager in (("eager", True), ("plan", False)))


def test_recurrent_autoencoder_inference_and_training():
    rng = np.random.default_rng(4)
    eager, planned = _autoencoder_pair()
    for _ in range(4):  # stateful step inference (running BatchNorm, LSTM states)
        x = rng.normal(size=(2, 12)).astype(np.float32)
        assert np.array_equal(eager.predict(x), planned.predict(x))
    assert np.array_equal(eager.net.last_normalised.numpy(), planned.net.last_normalised.numpy())
    for a, b in zip(eager.net.lstm, planned.net.lstm, strict=True):
        assert all(np.array_equal(u, v) for u, v in zip(a.state(), b.state(), strict=True))
    opts = [make_optimizer("adam", m.store, lr=1e-2) for m in (eager, planned)]
    for _ in range(3):  # sequence training, VAE noise drawn per step
        x = rng.normal(size=(5, 2, 12)).astype(np.float32)
        y = rng.normal(size=(5, 2, 18)).astype(np.float32)
        assert eager.train_step(x, y, opts[0]) == planned.train_step(x, y, opts[1])
    assert _weights_equal(eager, planned)
    assert eager.net.vae.calls == planned.net.vae.calls == 3


def test_plans_invalidate_on_reset_reload_and_respect_the_cache_limit(monkeypatch, tmp_path):
    rng = np.random.default_rng(5)
    eager, planned = _pair("encoder", "tpm")
    xs = [_inputs(eager, rng, 1)[0] for _ in range(3)]
    for x in xs:
        planned.predict(*x)
    assert planned.plan_info()["predict"]["plans"] == 2  # first bar (no state), later bars
    planned.reset_state()
    assert planned.plan_info()["predict"]["plans"] == 0
    for x in xs:  # after the reset, replay and eager agree again from a zero state
        eager.predict(*x)
    eager.reset_state()
    for x in xs:
        assert np.array_equal(eager.predict(*x), planned.predict(*x))
    planned.load_parameters(planned.named_parameters())
    assert planned.plan_info()["predict"]["plans"] == 0
    monkeypatch.setenv("NEUROFX_PLAN_CACHE", "2")
    mlp = Model(Sequential([Dense(4, 3, "tanh", seed=0)]), name="mlp_cache")
    for batch in (1, 2, 3):
        mlp.predict(np.ones((batch, 4), np.float32))
    assert mlp.plan_info()["predict"]["plans"] == 2


def test_eager_calls_between_replays_keep_the_state_right():
    """An eager forward between replays replaces the kept state: the next replay starts from
    it (copied into the plan's state buffers), exactly as an eager call would."""
    rng = np.random.default_rng(6)
    eager, planned = _pair("encoder", "tpm")
    xs = [_inputs(eager, rng, 1)[0] for _ in range(6)]
    for i, x in enumerate(xs):
        ref = eager.predict(*x)
        if i == 3:
            planned.eager = True
        got = planned.predict(*x)
        planned.eager = False
        assert np.array_equal(ref, got)


def test_dropout_masks_advance_in_replays():
    def net():
        return Sequential([Dense(6, 8, "relu", seed=1), Dropout(0.5, seed=3),
                           Dense(8, 2, seed=2)])
    models = [Model(net(), name=f"drop_{e}", eager=e) for e in (True, False)]
    opts = [make_optimizer("sgd", m.store, lr=0.1) for m in models]
    rng = np.random.default_rng(7)
    for _ in range(4):
        x, y = rng.normal(size=(5, 6)).astype(np.float32), rng.normal(size=(5, 2)).astype(
            np.float32)
        assert models[0].train_step(x, y, opts[0]) == models[1].train_step(x, y, opts[1])
    assert _weights_equal(*models)


def test_capture_refuses_host_uploads_inside_the_call():
    model = Model(Sequential([Dense(4, 2, seed=0)]), name="refuse")
    bias = np.arange(2, dtype=np.float32)

    def fn(x):  # uploads host data inside: cannot be replayed with new data
        return ops.add(model.forward(x), Tensor.from_numpy(np.broadcast_to(bias, (3, 2))))

    call = model.capture(fn, "custom")
    x = np.ones((3, 4), np.float32)
    with pytest.warns(PlanFallbackWarning, match="uploaded inside the call"):
        first = call(x)
    bias[:] = 5.0  # eager every time: the new host value is used
    second = call(x)
    assert not np.array_equal(first, second)
    assert model.plan_info()["custom"]["plans"] == 0


def test_capture_of_a_custom_step_with_device_inputs():
    """A user step (forward, masked MSE with a device mask, backward, SGD) captured once."""
    models = [Model(Sequential([Dense(4, 3, "sigmoid", seed=0)]), name=f"cap_{e}", eager=e)
              for e in (True, False)]
    opts = [make_optimizer("sgd", m.store, lr=0.5) for m in models]

    def step(model, opt):
        def fn(x, y, mask):
            model.zero_grad()
            loss = ops.mse_loss(ops.mul(model.forward(x), mask), ops.mul(y, mask))
            loss.backward()
            opt.step()
            return loss
        return fn

    calls = [m.capture(step(m, o), "step") for m, o in zip(models, opts, strict=True)]
    rng = np.random.default_rng(8)
    for _ in range(3):
        args = [rng.normal(size=(2, 4)), rng.normal(size=(2, 3)),
                (rng.random((2, 3)) > 0.5).astype(np.float32)]
        args = [np.asarray(a, np.float32) for a in args]
        eager_loss = step(models[0], opts[0])(*(Tensor.from_numpy(a) for a in args)).numpy()
        assert np.array_equal(eager_loss, calls[1](*args))
    assert _weights_equal(*models)
    assert models[1].plan_info()["step"]["plans"] == 1


def test_arena_placement_reuses_only_disjoint_lifetimes():
    first = {0: 0, 1: 1, 2: 3, 3: 3}
    last = {0: 2, 1: 4, 2: 5, 3: 3}
    offsets, size = _place(first, last, [100, 100, 100, 300], 128)
    spans = {i: (offsets[i], offsets[i] + -(-[100, 100, 100, 300][i] // 128) * 128)
             for i in offsets}
    for i in spans:
        for j in spans:
            overlap_time = i < j and first[j] <= last[i] and first[i] <= last[j]
            if overlap_time:
                assert spans[i][1] <= spans[j][0] or spans[j][1] <= spans[i][0]
    assert offsets[2] == offsets[0]  # 0 ended at command 2, 2 starts at 3
    assert size < sum(-(-n // 128) * 128 for n in (100, 100, 100, 300))


def test_encoder_to_actor_chain_without_a_host_round_trip():
    """encoder.predict(..., sync=False) hands a device tensor to the actor's plan: one wait per
    bar, the same bits as the eager chain."""
    rng = np.random.default_rng(9)
    enc_e, enc_p = _pair("encoder", "tpm")
    act_e, act_p = _pair("actor", "tpm")
    for _ in range(4):
        (x,), _ = _inputs(enc_e, rng, 1)
        account = rng.normal(size=(1, 12)).astype(np.float32)
        ref = act_e.predict(account, enc_e.predict(x))
        forecast = enc_p.predict(x, sync=False)
        assert isinstance(forecast, Tensor)
        assert np.array_equal(ref, act_p.predict(account, forecast))


def test_a_new_loss_function_records_a_new_training_plan():
    models = [Model(Sequential([Dense(4, 2, seed=0)]), name=f"lossfn_{e}", eager=e)
              for e in (True, False)]
    opts = [make_optimizer("sgd", m.store, lr=0.1) for m in models]
    x, y = np.ones((3, 4), np.float32), np.zeros((3, 2), np.float32)
    for m, o in zip(models, opts, strict=True):
        m.train_step(x, y, o)
        m.train_step(x, y, o)
        m.loss_fn = lambda p, t: ops.scale(ops.mse_loss(p, t), 2.0)
    assert models[0].train_step(x, y, opts[0]) == models[1].train_step(x, y, opts[1])
    assert _weights_equal(*models)


def test_summary_accounts_for_plan_arenas():
    model = Model(Sequential([Dense(8, 16, "tanh", seed=0), Dense(16, 4, seed=1)]),
                  name="arena_sum")
    opt = make_optimizer("sgd", model.store, lr=0.1)
    model.train_step(np.ones((3, 8), np.float32), np.zeros((3, 4), np.float32), opt)
    arena = sum(p.arena_bytes for c in model._captured for p in c.plans.values())
    rows = model.memory()
    assert arena > 0 and rows[-2]["layer"] == "(plan arenas)"
    assert rows[-2]["act_bytes"] == arena == rows[-1]["act_bytes"]
