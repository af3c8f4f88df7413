"""neurofx.study: targets, sampling, losses, and that training learns on a fixture store."""

from __future__ import annotations

import numpy as np
import pytest
from study_fixtures import build_store, make_trajectory

from neurofx.collectors.sampling import sample_start, sample_trajectory, trajectory_weights
from neurofx.nn import agents
from neurofx.nn.optim import make_optimizer
from neurofx.nn.tensor import Tensor
from neurofx.study import files
from neurofx.study.actor import ActorStage, improvement_loss
from neurofx.study.data import Window, WindowSampler, load_dataset, make_batch
from neurofx.study.encoder import EncoderStage, forecast, load_encoder
from neurofx.study.loop import Settings, masked_mse, run_stage
from neurofx.study.targets import (
    TargetScaler,
    actor_inputs,
    clones,
    critic_targets,
    encoder_targets,
)

TINY = {"encoder": {"hidden": 16}, "actor": {"hidden": 16}, "critic": {"hidden": 16}}


# ---- targets ----
def test_encoder_target_is_next_24_bars_newest_first():
    traj, raw = make_trajectory(60, phase=0.3, offset=0.01, seed=1)
    bars = raw["bars"]  # bar of step i's newest position: i + 119
    y = encoder_targets(traj.states)
    assert y.shape == (60 - 24, 216)
    for i in (0, 7, 35):
        expect = np.concatenate([bars[i + 119 + 24 - b] for b in range(24)])
        np.testing.assert_allclose(y[i], expect.astype(np.float32), rtol=0, atol=0)


def test_target_scaler_fit_transform_inverse():
    trajs = [make_trajectory(50, phase=p, offset=0.01, seed=k)[0]
             for k, p in enumerate((0.1, 1.3))]
    scaler = TargetScaler.fit(trajs)
    rows = np.concatenate([t.states[:, :9] for t in trajs]).astype(np.float64)
    np.testing.assert_allclose(scaler.mean, rows.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(scaler.std, rows.std(axis=0), rtol=1e-12)
    raw = encoder_targets(trajs[0].states).astype(np.float64)
    z = scaler.transform(raw)
    mean, std = np.tile(rows.mean(0), 24), np.tile(rows.std(0), 24)
    np.testing.assert_allclose(z, (raw - mean) / std, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(scaler.inverse(z), raw, rtol=1e-5, atol=1e-5)  # float32 z
    back = TargetScaler.from_dict(scaler.to_dict(), "x.npz")
    assert back == scaler
    with pytest.raises(Exception, match="x.npz: field 'target_scaler'"):
        TargetScaler.from_dict({"version": 1, "mean": [0.0] * 9, "std": [0.0] * 9}, "x.npz")


def test_actor_inputs_by_hand():
    acc = np.array([[1000.0, 990.0, 0.1, 0.0, -5.0, 0.0, -2.0, 86_400 * 3 + 3600 * 6],
                    [1010.0, 1030.0, 0.0, 0.2, 0.0, 20.0, 4.0, 86_400 * 3 + 3600 * 7]])
    x = actor_inputs(acc)
    t = acc[1, 7]
    expect = [10 / 1000, 1030 / 1000, 40 / 990, 0.0, 0.2, 0.0, 20 / 1000, 4 / 1000,
              np.sin(2 * np.pi * t / 31_536_000), np.cos(2 * np.pi * t / 2_592_000),
              np.sin(2 * np.pi * t / 604_800), np.sin(2 * np.pi * t / 86_400)]
    np.testing.assert_allclose(x[1], expect, rtol=1e-6, atol=1e-7)
    assert x[0, 0] == 0 and x[0, 1] == pytest.approx(0.99) and x[0, 2] == 0  # prev = itself
    zero = actor_inputs(np.zeros((1, 8)))  # zero balance and t = 0: every value 0, finite
    assert zero.dtype == np.float32 and zero[0].tolist() == [0.0] * 12


def test_critic_targets_are_the_raw_rewards_and_cloning_rule():
    traj, raw = make_trajectory(40, phase=0.0, offset=0.01, seed=2)
    np.testing.assert_allclose(critic_targets(traj), raw["raw_rewards"], atol=2e-6)
    assert clones(traj)
    bad, _ = make_trajectory(40, phase=0.0, offset=-0.01, seed=2)
    assert not clones(bad)


# ---- sampling and batches ----
def test_window_sampler_follows_the_seed_sampling(tmp_path):
    build_store(tmp_path / "s", n=5, steps=90)
    data = load_dataset(tmp_path / "s", 0.0, seed=0)
    ids = [0, 2, 3, 4]
    sampler = WindowSampler(data.trajs, ids, seq_len=30, rng=np.random.default_rng(5))
    got = [sampler.window() for _ in range(50)]
    rng = np.random.default_rng(5)
    w = trajectory_weights([data.trajs[i].score for i in ids])
    for win in got:
        k = ids[sample_trajectory(rng, w)]
        start = sample_start(rng, data.trajs[k].steps, 24)
        assert (win.traj, win.start, win.length) == (k, start, min(30, 90 - 24 - start))
    # early starts dominate (density -ln x)
    starts = np.array([s.start for s in got])
    assert np.mean(starts < 64 / 2) > 0.6


def test_make_batch_masks_short_windows():
    b = make_batch([Window(0, 5, 3), Window(1, 10, 1)])
    assert b.index.tolist() == [[5, 10], [6, 10], [7, 10]]
    assert b.mask.tolist() == [[1, 1], [1, 0], [1, 0]]
    assert b.samples == 4 and b.steps == 3


def test_split_is_stratified_whole_and_seeded(tmp_path):
    build_store(tmp_path / "s", n=8, steps=40, profitable=5)
    a = load_dataset(tmp_path / "s", 0.25, seed=1)
    b = load_dataset(tmp_path / "s", 0.25, seed=1)
    assert a.val == b.val and sorted(a.train + a.val) == list(range(8))
    prof = [clones(t) for t in a.trajs]
    assert sum(prof[i] for i in a.val) == 1 and sum(not prof[i] for i in a.val) == 1


# ---- losses ----
def test_masked_mse_value_and_gradient():
    rng = np.random.default_rng(0)
    out_np = rng.normal(size=(4, 3)).astype(np.float32)
    tgt = rng.normal(size=(4, 3)).astype(np.float32)
    mask = np.array([1, 0, 1, 1], np.float32)
    out = Tensor.from_numpy(out_np, requires_grad=True)
    loss = masked_mse(out, tgt, mask)
    loss.backward()
    d = (out_np.astype(np.float64) - tgt) * mask[:, None]
    assert loss.item() == pytest.approx((d ** 2).sum() / (3 * 3), rel=1e-5)
    np.testing.assert_allclose(out.grad(), 2 * d / 9, rtol=1e-5, atol=1e-7)


def test_improvement_step_flows_through_frozen_critic_into_actor():
    actor = agents.build("actor", "baseline", hidden=8)
    critic = agents.build("critic", "baseline", hidden=8)
    actor.eval()  # deterministic mean action, so finite differences see the same function
    rng = np.random.default_rng(3)
    acc = rng.normal(size=(3, 12)).astype(np.float32)
    f = Tensor.from_numpy(rng.normal(size=(3, 216)).astype(np.float32))
    mask = np.array([1, 1, 0], np.float32)
    opt = make_optimizer("sgd", actor.store, lr=0.1)
    critic_before = critic.named_parameters()
    actor.zero_grad()
    critic.zero_grad()
    loss, q = improvement_loss(critic, actor.forward(acc, f), f, mask, up=2.0, down=0.5)
    # the target rule: x up if >= 0, x down otherwise (per component)
    target = np.where(q >= 0, 2.0 * q, 0.5 * q)
    d = (q.astype(np.float64) - target) * mask[:, None]
    assert loss.item() == pytest.approx((d ** 2).sum() / 6, rel=1e-5)
    loss.backward()
    grad = actor.named_gradients()["3.weight"]
    # finite differences of the same loss (target held fixed) w.r.t. two actor weights
    w0 = actor.named_parameters()
    for idx in np.argsort(-np.abs(grad).ravel())[:2]:
        vals = []
        for h in (1e-2, -1e-2):
            w = {k: v.copy() for k, v in w0.items()}
            w["3.weight"].ravel()[idx] += h
            actor.load_parameters(w)
            qh = critic.predict(actor.predict(acc, f.numpy()), f.numpy()).astype(np.float64)
            vals.append((((qh - target) * mask[:, None]) ** 2).sum() / 6)
        fd = (vals[0] - vals[1]) / 2e-2
        assert grad.ravel()[idx] == pytest.approx(fd, rel=5e-2)
    actor.load_parameters(w0)
    opt.step()
    after = critic.named_parameters()
    assert all(np.array_equal(critic_before[k], after[k]) for k in after)  # critic frozen
    assert not np.array_equal(actor.named_parameters()["3.weight"], w0["3.weight"])


# ---- training learns ----
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    build_store(root / "store", n=6, steps=160)
    # the actor's store: one market for all passes, so only the account vector tells the
    # stored actions apart and held-out passes are in distribution
    build_store(root / "store_actor", n=6, steps=160, phase_step=0.0)
    common = dict(run="r", runs_root=str(root / "runs"), batch=16, seq_len=10, lr=1e-2,
                  val_every=10, progress=False)
    enc = Settings(stage="encoder", store=str(root / "store"), iterations=30,
                   model_args=TINY, **common)
    data = load_dataset(enc.store, enc.val_share, enc.seed)
    enc_summary = run_stage(EncoderStage(enc, data))
    act = Settings(stage="actor", store=str(root / "store_actor"), iterations=60,
                   model_args={**TINY, "actor": {"hidden": 16, "kld_mult": 0.0}}, **common)
    act_data = load_dataset(act.store, act.val_share, act.seed)
    act_summary = run_stage(ActorStage(act, act_data))
    return root, data, enc_summary, act_data, act_summary


def _val(rows, key):
    return [r[key] for r in rows if r.get(key) is not None]


def test_encoder_training_lowers_validation_loss(trained):
    root, data, summary, _, _ = trained
    val = _val(summary.rows, "val_loss")
    assert len(val) == 4 and val[-1] < 0.5 * val[0]  # iterations 0, 10, 20, 30
    log = files.read_log(root / "runs/r/study_encoder.csv")
    assert [r["iteration"] for r in log] == list(range(31))
    np.testing.assert_allclose([r["val_loss"] for r in log if r["val_loss"] == r["val_loss"]],
                               val, rtol=1e-15)
    model, scaler = load_encoder(root / "runs/r/encoder.npz")
    assert scaler == TargetScaler.fit([data.trajs[i] for i in data.train])
    assert model.file_content["meta"]["val_loss"] == pytest.approx(min(val))
    raw = forecast(model, scaler, data.trajs[0].states[:3])
    assert raw.shape == (3, 216)
    assert (root / "runs/r/loss_encoder.png").stat().st_size > 5000


def test_actor_stage_lowers_critic_loss_and_clones_actions(trained):
    root, _, _, data, summary = trained
    critic = _val(summary.rows, "val_critic")
    assert len(critic) == 7 and critic[-1] < 0.01 * critic[0]
    actor = _val(summary.rows, "val_actor")
    # cloning on held-out passes: the error of the mean action ends well below that of
    # predicting each component's average (the variance), which the initial actor exceeds
    stored = np.concatenate([data.trajs[i].actions for i in data.val if clones(data.trajs[i])])
    baseline = float(stored.var(axis=0).mean())
    assert actor[0] > baseline and actor[-1] < 0.6 * baseline
    for name in ("actor.npz", "critic.npz", "study_actor.csv", "loss_actor.png",
                 "study_actor_config.json"):
        assert (root / "runs/r" / name).exists()
