"""neurofx.study: targets, sampling, losses, and that training learns on a fixture store."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from study_fixtures import build_store, make_trajectory

from neurofx import agents
from neurofx.collectors.sampling import sample_start, sample_trajectory, trajectory_weights
from neurofx.collectors.store import TrajectoryStore
from neurofx.collectors.trajectory import Trajectory
from neurofx.errors import NeurofxError
from neurofx.nn.optim import make_optimizer
from neurofx.nn.tensor import Tensor
from neurofx.reports.training import read_study_log
from neurofx.study import files
from neurofx.study.actor import (
    ActorStage,
    critic_rewards,
    improvement_loss,
    load_actor_critic,
    load_critic,
)
from neurofx.study.data import Dataset, Window, WindowSampler, load_dataset, make_batch
from neurofx.study.encoder import EncoderStage, forecast, load_encoder
from neurofx.study.losses import masked_mse
from neurofx.study.settings import Settings
from neurofx.study.targets import (
    TargetScaler,
    actor_inputs,
    clones,
    critic_targets,
    encoder_targets,
    improvement_targets,
)
from neurofx.study.trainer import Trainer

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
    with pytest.raises(NeurofxError, match="x.npz: field 'target_scaler'"):
        TargetScaler.from_dict({"version": 1, "mean": [0.0] * 9, "std": [0.0] * 9}, "x.npz")
    with pytest.raises(NeurofxError, match=r"3 means and 3 positive stds expected\); redo"):
        TargetScaler.from_dict(scaler.to_dict(), "c.npz", size=3, fix="redo")


def test_target_scaler_std_floor_and_reward_rows():
    # columns: ordinary; constant 5; rounding noise around 2; all zero
    rows = np.array([[1.0, 5.0, 2.0, 0.0], [3.0, 5.0, 2.0 + 1e-9, 0.0],
                     [2.0, 5.0, 2.0 - 1e-9, 0.0], [6.0, 5.0, 2.0, 0.0]])
    sc = TargetScaler.from_rows(rows)
    assert sc.mean == pytest.approx((3.0, 5.0, 2.0, 0.0), rel=1e-12, abs=1e-15)
    # population std of [1, 3, 2, 6] = sqrt(3.5); the others floored at 1e-3 x rms; zeros: 1
    assert sc.std == pytest.approx((3.5 ** 0.5, 5e-3, 2e-3, 1.0), rel=1e-9)
    z = sc.transform(np.array([[3.0, 5.01, 2.0, 0.5]]))
    np.testing.assert_allclose(z, [[0.0, 2.0, 0.0, 0.5]], rtol=1e-5, atol=1e-6)
    # the critic's scaler: per-component statistics of the immediate rewards (width 3)
    trajs = [make_trajectory(50, phase=p, offset=o, seed=k)[0]
             for k, (p, o) in enumerate(((0.1, 0.01), (1.3, -0.01)))]
    rsc = TargetScaler.fit_rewards(trajs)
    raw = np.concatenate([t.immediate_rewards() for t in trajs])
    np.testing.assert_allclose(rsc.mean, raw.mean(axis=0), rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(rsc.std, raw.std(axis=0), rtol=1e-6)
    np.testing.assert_allclose(rsc.transform(raw[:4]), (raw[:4] - raw.mean(0)) / raw.std(0),
                               rtol=1e-4, atol=1e-5)
    assert TargetScaler.from_dict(rsc.to_dict(), "c.npz", size=3) == rsc


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


@pytest.mark.parametrize("q, mean, std, expect", [
    # raw = q*std + mean; target raw = raw*1.01 if raw >= 0 else raw*0.99; back to z by hand
    ((0.5, 1.0, -2.0), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (0.505, 1.01, -1.98)),
    # raw 3 >= 0 although z < 0: target raw 3.03 -> z (3.03 - 5) / 2
    ((-1.0, 0.0, 0.0), (5.0, 0.0, 0.0), (2.0, 1.0, 1.0), (-0.985, 0.0, 0.0)),
    # z 0 (the training mean) still moves when the mean reward is not 0: raw -4 -> -3.96
    ((0.0, 0.0, 0.5), (-4.0, 2e-4, -1e-4), (1.0, 1e-4, 1e-5), (0.04, 0.02, 0.595)),
])
def test_improvement_targets_follow_the_raw_reward_sign(q, mean, std, expect):
    sc = TargetScaler(mean, std)
    got = improvement_targets(np.array([q]), sc)
    np.testing.assert_allclose(got[0], expect, rtol=1e-6, atol=1e-7)
    raw = sc.inverse(np.array([q]))  # the same as re-standardising the moved raw reward
    np.testing.assert_allclose(got, sc.transform(np.where(raw >= 0, raw * 1.01, raw * 0.99)),
                               rtol=1e-6, atol=1e-6)


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
    scaler = TargetScaler((0.3, -0.2, 1e-4), (0.5, 2.0, 1e-3))
    loss, q = improvement_loss(critic, actor.forward(acc, f), f, mask, scaler, up=2.0, down=0.5)
    # the target rule on the raw reward: x up if >= 0, x down otherwise (per component)
    m, sd = np.array(scaler.mean), np.array(scaler.std)
    raw = q.astype(np.float64) * sd + m
    target = (np.where(raw >= 0, 2.0 * raw, 0.5 * raw) - m) / sd
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
# the actor fixture's rewards per unit of action: balance, equity and a negative "risk" reward
# with a mean ~4x its spread (like -ATR/balance); sizes ~1e-5..1e-4, like real rewards
REWARD_PER_ACTION = 1e-3 * np.array([[0.4, -0.2, 0.1, -0.4, 0.2, -0.1],
                                     [-0.1, 0.1, -0.3, 0.1, -0.1, 0.3],
                                     [-0.02, -0.1, -0.02, -0.02, -0.02, -0.02]])
BALANCE_EDGE = 3e-5  # +- per step on the balance reward: about half its spread


def build_actor_store(path, n: int = 6, steps: int = 160, profitable: int = 4):
    """The actor's fixture store: one market for all passes (phase 0), so only the account
    vector tells the stored actions apart and held-out passes are in distribution. Immediate
    rewards are a fixed linear function of the action (learnable by the critic; the balance
    reward centred on each pass) plus +BALANCE_EDGE on the balance reward of the first
    ``profitable`` passes and -BALANCE_EDGE on the others (what makes a pass profitable; the
    critic cannot see it)."""
    store = TrajectoryStore.open(path, create=True)
    for k in range(n):
        base, _ = make_trajectory(steps, phase=0.0, offset=0.0, seed=k)
        r = base.actions.astype(np.float64) @ REWARD_PER_ACTION.T
        r[:, 0] += (BALANCE_EDGE if k < profitable else -BALANCE_EDGE) - r[:, 0].mean()
        traj = Trajectory(states=base.states, accounts=base.accounts, actions=base.actions,
                          rewards=r.astype(np.float32), profit=100.0 if k < profitable else -50.0,
                          policy="fixture", seed=k)
        assert store.add(traj, min_profit=-1e9).kept
        assert clones(traj.discount()) == (k < profitable)
    return store


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    build_store(root / "store", n=6, steps=160)
    build_actor_store(root / "store_actor")
    common = dict(run="r", runs_root=str(root / "runs"), model="baseline", batch=16, seq_len=10,
                  lr=1e-2, val_every=10, progress=False)
    enc = Settings(stage="encoder", store=str(root / "store"), iterations=30,
                   model_args=TINY, **common)
    data = load_dataset(enc.store, enc.val_share, enc.seed)
    enc_summary = Trainer(EncoderStage(enc, data)).run()
    # the critic learns the small action -> reward map best from more rows at a lower rate
    act = Settings(stage="actor", store=str(root / "store_actor"), iterations=60,
                   model_args={**TINY, "actor": {"hidden": 16, "kld_mult": 0.0}},
                   **{**common, "batch": 32, "lr": 3e-3})
    act_data = load_dataset(act.store, act.val_share, act.seed)
    act_stage = ActorStage(act, act_data)
    act_summary = Trainer(act_stage).run()
    return root, data, enc_summary, act_data, act_summary, act_stage


def _val(rows, key):
    return [r[key] for r in rows if r.get(key) is not None]


def test_encoder_training_lowers_validation_loss(trained):
    root, data, summary, *_ = trained
    val = _val(summary.rows, "val_loss")
    assert len(val) == 4 and val[-1] < 0.5 * val[0]  # iterations 0, 10, 20, 30
    log = read_study_log(root / "runs/r/study_encoder.csv")
    assert [r["iteration"] for r in log] == list(range(31))
    np.testing.assert_allclose([r["val_loss"] for r in log if r["val_loss"] == r["val_loss"]],
                               val, rtol=1e-15)
    model, scaler = load_encoder(root / "runs/r/encoder.npz")
    assert scaler == TargetScaler.fit([data.trajs[i] for i in data.train])
    assert model.file_content["meta"]["val_loss"] == pytest.approx(min(val))
    raw = forecast(model, scaler, data.trajs[0].states[:3])
    assert raw.shape == (3, 216)
    assert (root / "runs/r/loss_encoder.png").stat().st_size > 5000


def test_critic_targets_are_standardised_with_training_statistics(trained):
    root, _, _, data, _, stage = trained
    train_raw = np.concatenate([critic_targets(data.trajs[i]) for i in data.train])
    sc = stage.critic_scaler
    np.testing.assert_allclose(sc.mean, train_raw.astype(np.float64).mean(0), rtol=1e-9)
    np.testing.assert_allclose(sc.std, train_raw.astype(np.float64).std(0), rtol=1e-9)
    assert not np.allclose(TargetScaler.fit_rewards(data.trajs).mean, sc.mean, rtol=1e-2)
    # held-out passes with wild rewards leave the scaler unchanged
    wild = list(data.trajs)
    for i in data.val:
        wild[i] = dataclasses.replace(wild[i], rewards=wild[i].rewards * 1000 + 1)
    wild_data = Dataset(data.path, data.files, wild, data.train, data.val)
    assert ActorStage(stage.settings, wild_data).critic_scaler == sc
    k = data.val[0]
    np.testing.assert_allclose(stage.rewards[k], (critic_targets(data.trajs[k]) - sc.mean)
                               / sc.std, rtol=1e-5, atol=1e-5)
    assert max(sc.std) < 2e-4  # raw rewards of realistic size
    critic, file_sc = load_critic(root / "runs/r/critic.npz")
    assert file_sc == sc
    actor, critic2, sc2 = load_actor_critic(root / "runs/r")
    assert sc2 == sc and critic2.file_content["meta"]["role"] == "critic"
    doc = files.read_checkpoint(root / "runs/r", "actor")
    # the actor's: the statistics of the coded actions (docs/actions.md)
    coded = TargetScaler(stage.coding.mean, stage.coding.std)
    assert doc["target_scalers"] == {"critic": sc.to_dict(), "actor": coded.to_dict()}


def test_destandardised_critic_predicts_the_immediate_rewards(trained):
    """On held-out passes, the critic's raw-unit predictions of the stored actions' rewards
    beat the training mean (what a critic that learnt nothing in standardised units outputs):
    per component, and overall by a wide margin."""
    root, _, _, data, _, stage = trained
    critic, sc = load_critic(root / "runs/r/critic.npz")
    snap = files.snapshot_state(stage.encoder)
    pred, true = [], []
    for k in data.val:
        t = data.trajs[k]
        steps = np.arange(1, t.steps - 24)  # the steps training samples from
        for chunk in np.array_split(steps, 8):
            f = stage.encoder.predict(t.states[chunk])
            pred.append(critic_rewards(critic, sc, t.actions[chunk], f))
        true.append(critic_targets(t)[steps].astype(np.float64))
    files.restore_state(stage.encoder, snap)
    pred, true = np.concatenate(pred), np.concatenate(true)
    mse = ((pred - true) ** 2).mean(axis=0)
    mse_mean = ((np.array(sc.mean) - true) ** 2).mean(axis=0)
    # measured 0.22, 0.027, 0.046 (the balance reward's hidden +-edge is unlearnable); with raw
    # targets (no scaler) the critic ends 57-169x worse than the mean
    assert (mse < 0.4 * mse_mean).all(), (mse, mse_mean)
    assert mse.sum() < 0.2 * mse_mean.sum(), (mse, mse_mean)


def test_actor_stage_lowers_critic_loss_and_clones_actions(trained):
    root, _, _, data, summary, stage = trained
    critic = _val(summary.rows, "val_critic")  # standardised units: ~1 = predicting the mean
    assert len(critic) == 7 and critic[0] > 0.5 and critic[-1] < 0.1 * critic[0]
    actor = _val(summary.rows, "val_actor")
    # cloning on held-out passes: the error of the mean action ends well below that of
    # predicting each component's average (the variance), which the initial actor exceeds;
    # both in the action coding's units (standardised: docs/actions.md)
    stored = np.concatenate([stage.coding.encode(data.trajs[i].actions) for i in data.val
                             if clones(data.trajs[i])])
    baseline = float(stored.var(axis=0).mean())
    assert actor[0] > baseline and actor[-1] < 0.6 * baseline
    for name in ("actor.npz", "critic.npz", "study_actor.csv", "loss_actor.png",
                 "study_actor_config.json"):
        assert (root / "runs/r" / name).exists()
