"""The actor's action coding (docs/actions.md): closed-form encoding and decoding, how the mean
of a behaviour that buys and sells alike becomes orders, old files on the seed's coding, and a
small actor trained on random-policy passes that trades when used deterministically."""

from types import SimpleNamespace

import numpy as np
import pytest

from neurofx import agents
from neurofx.agents.actions import (
    DEFAULT_CODING,
    META_KEY,
    RAW,
    SIGNED,
    ActionCoding,
    coding_of,
    signed_units,
)
from neurofx.collectors.store import TrajectoryStore
from neurofx.data import compute_features, load_bars
from neurofx.data.features import FeatureMatrix
from neurofx.errors import NeurofxError
from neurofx.nn import Model
from neurofx.strategies.agent import run_agent_pass
from neurofx.strategies.broker import BrokerConfig, ForexBroker
from neurofx.strategies.feeds import BarArrays
from neurofx.strategies.netting import apply_action
from neurofx.strategies.policies import NeuralPolicy, RandomPolicy
from neurofx.study.actor import ActorStage, fit_coding, load_actor_critic
from neurofx.study.data import load_dataset
from neurofx.study.encoder import EncoderStage
from neurofx.study.settings import Settings
from neurofx.study.targets import TargetScaler
from neurofx.study.trainer import Trainer

# a behaviour like the random policy: 40 % buys, 30 % sells, 30 % flat, one lot size
BEHAVIOUR = np.array([[0.06, 0.5, 0.4, 0.0, 0.3, 0.2]] * 4 + [[0.0, 0.5, 0.4, 0.06, 0.3, 0.2]] * 3
                     + [[0.0, 0.5, 0.4, 0.0, 0.3, 0.2]] * 3)


# ---- the coding in closed form ---------------------------------------------------------------
def test_signed_units_are_net_and_volume():
    a = np.array([[0.05, 0.1, 0.2, 0.0, 0.3, 0.4], [0.0, 0.1, 0.2, 0.02, 0.3, 0.4],
                  [0.07, 0.1, 0.2, 0.03, 0.3, 0.4]])
    np.testing.assert_allclose(signed_units(a), [[0.05, 0.1, 0.2, 0.05, 0.3, 0.4],
                                                 [-0.02, 0.1, 0.2, 0.02, 0.3, 0.4],
                                                 [0.04, 0.1, 0.2, 0.10, 0.3, 0.4]])


def test_fit_gives_the_coded_components_mean_and_population_std():
    c = fit_coding(SIGNED, [SimpleNamespace(actions=BEHAVIOUR[:5]),
                            SimpleNamespace(actions=BEHAVIOUR[5:])])
    # net: 4 x 0.06, 3 x -0.06, 3 x 0 -> mean 0.006, E[x^2] = 7 x 0.0036 / 10
    # volume: 7 x 0.06, 3 x 0 -> mean 0.042, E[x^2] = 0.00252; TP/SL constant -> std floored
    assert c.kind == SIGNED
    np.testing.assert_allclose(c.mean, [0.006, 0.5, 0.4, 0.042, 0.3, 0.2], rtol=1e-12)
    np.testing.assert_allclose(c.std[0], np.sqrt(0.00252 - 0.006 ** 2), rtol=1e-12)
    np.testing.assert_allclose(c.std[3], np.sqrt(0.00252 - 0.042 ** 2), rtol=1e-12)
    np.testing.assert_allclose(c.std[1:3], [5e-4, 4e-4], rtol=1e-9)  # 1e-3 x |mean|
    assert fit_coding(RAW, [SimpleNamespace(actions=BEHAVIOUR)]) == ActionCoding(RAW)


def test_encode_decode_closed_form():
    c = ActionCoding(SIGNED, mean=(0.0, 0.5, 0.5, 0.04, 0.5, 0.5),
                     std=(0.05, 0.25, 0.25, 0.02, 0.25, 0.25))
    # buy 0.06: net 0.06 -> z 1.2; volume 0.06 -> z (0.06 - 0.04) / 0.02 = 1; TP 0.75 -> 1
    y = c.encode([[0.06, 0.75, 0.25, 0.0, 0.5, 1.0]])
    np.testing.assert_allclose(y, [[1.2, 1.0, -1.0, 1.0, 0.0, 2.0]], rtol=1e-6)
    assert y.dtype == np.float32
    np.testing.assert_allclose(c.decode(y), [[0.06, 0.75, 0.25, 0.0, 0.5, 1.0]], atol=1e-7)
    # the side from the sign of the net, the lots from the volume (floored at 0)
    out = c.decode(np.array([[-0.1, 0.0, 0.0, -0.5, 0.0, 0.0],    # net -0.005: sell 0.03
                             [0.0, 0.0, 0.0, 3.0, 0.0, 0.0],      # net 0: no side
                             [0.2, 0.0, 0.0, -2.5, 0.0, 0.0]]))   # volume -0.01: 0 lots
    np.testing.assert_allclose(out, [[0.0, 0.5, 0.5, 0.03, 0.5, 0.5],
                                     [0.0, 0.5, 0.5, 0.0, 0.5, 0.5],
                                     [0.0, 0.5, 0.5, 0.0, 0.5, 0.5]], atol=1e-12)
    raw = ActionCoding(RAW)
    x = np.array([[0.013, 0.4, 0.3, 0.021, 0.2, 0.1]], np.float32)
    np.testing.assert_array_equal(raw.encode(x), x)
    np.testing.assert_array_equal(raw.decode(x), x.astype(np.float64))


def _orders(action) -> list[tuple[str, float]]:
    fx = ForexBroker(BrokerConfig(min_spread_points=0.0))
    fx.open_bar(1_700_000_000, 1.1, 10)
    apply_action(fx, action)
    return [(p.side, p.lots) for p in fx.positions]


def test_the_mean_of_a_two_sided_behaviour_trades_only_in_the_signed_coding():
    """The cloning optimum of an MSE is the mean of the stored actions: in the seed's raw
    coding buy 0.024 and sell 0.018 lots, which net to 0.006 < the min lot (no order); in the
    signed coding net +0.006 (buy) with the behaviour's mean volume 0.042 (0.04 lots)."""
    raw_mean = BEHAVIOUR.mean(axis=0)
    np.testing.assert_allclose(raw_mean[[0, 3]], [0.024, 0.018])
    assert _orders(raw_mean) == []
    c = fit_coding(SIGNED, [SimpleNamespace(actions=BEHAVIOUR)])
    signed_mean = c.encode(BEHAVIOUR).astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(signed_mean, 0.0, atol=1e-6)  # the mean is z = 0
    decoded = c.decode(signed_mean)
    np.testing.assert_allclose(decoded, [0.042, 0.5, 0.4, 0.0, 0.3, 0.2], atol=1e-7)
    assert _orders(decoded) == [("buy", 0.04)]


def test_coding_travels_in_the_meta_and_old_files_stay_raw(tmp_path):
    c = fit_coding(SIGNED, [SimpleNamespace(actions=BEHAVIOUR)])
    assert ActionCoding.from_dict(c.to_dict(), "f") == c
    assert ActionCoding.from_dict(ActionCoding(RAW).to_dict(), "f") == ActionCoding(RAW)
    for bad in (None, {"version": 1, "kind": "polar"},
                {"version": 1, "kind": SIGNED, "mean": [0.0] * 6, "std": [1.0] * 5},
                {"version": 1, "kind": SIGNED, "mean": [0.0] * 6, "std": [0.0] * 6}):
        with pytest.raises(NeurofxError, match="f: field 'action_coding'"):
            ActionCoding.from_dict(bad, "f")
    with pytest.raises(NeurofxError, match="actor.coding=polar"):
        fit_coding("polar", [SimpleNamespace(actions=BEHAVIOUR)])
    with pytest.raises(NeurofxError, match="positive stds"):
        ActionCoding.signed([0.0] * 6, [1.0] * 5 + [0.0])
    model = agents.build("actor", "baseline", hidden=4)
    assert coding_of(model) == ActionCoding(RAW)  # built in memory: the seed's coding
    model.save(tmp_path / "a.npz", extra={META_KEY: c.to_dict()})
    assert coding_of(Model.load(tmp_path / "a.npz")) == c
    assert DEFAULT_CODING == SIGNED


# ---- a small actor trained on random passes trades deterministically -------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """6 random-policy passes over Oct-Dec 2023, a baseline encoder and a small actor (the
    default signed coding) trained on them briefly: ~20 s on 2 cores."""
    root = tmp_path_factory.mktemp("actor_trades")
    frame = load_bars().loc["2023-01-01":"2024-01-31"]
    bars = BarArrays.from_frame(frame)
    features = FeatureMatrix.from_features(compute_features(frame))
    store = TrajectoryStore.open(root / "store", create=True)
    for k in range(6):
        res = run_agent_pass(bars, features, RandomPolicy(), "2023-10-01", "2024-01-01", seed=k)
        assert store.add(res.to_trajectory("random"), min_profit=-1e9).kept
    common = dict(store=str(root / "store"), run="r", runs_root=str(root / "runs"),
                  model="baseline", batch=8, seq_len=20, lr=3e-3, val_every=5, progress=False,
                  seed=1)
    enc = Settings(stage="encoder", iterations=3, model_args={"encoder": {"hidden": 16}},
                   **common)
    Trainer(EncoderStage(enc, load_dataset(enc.store, enc.val_share, enc.seed))).run()
    act = Settings(stage="actor", iterations=15,
                   model_args={"actor": {"hidden": 16}, "critic": {"hidden": 16}}, **common)
    stage = ActorStage(act, load_dataset(act.store, act.val_share, act.seed))
    Trainer(stage).run()
    return root, bars, features, stage


def test_small_actor_trades_when_deterministic(trained):
    root, bars, features, stage = trained
    actor, critic, _ = load_actor_critic(root / "runs/r")
    assert coding_of(actor) == coding_of(critic) == stage.coding
    assert stage.coding.kind == SIGNED
    # the cloning targets and the critic's inputs are the coded actions; resume checks them
    assert stage.parts["actor"].scaler == TargetScaler(stage.coding.mean, stage.coding.std)
    policy = NeuralPolicy(root / "runs/r/encoder.npz", root / "runs/r/actor.npz",
                          stochastic=False)
    assert policy.coding == stage.coding
    res = run_agent_pass(bars, features, policy, "2024-01-01", "2024-02-01")
    opened = [d for d in res.replay.deals if d.entry == "in"]
    assert len(opened) > 0
    # every executed action is a decoded mean action: one side, lots >= the min lot
    traded = res.actions[(res.actions[:, 0] > 0) | (res.actions[:, 3] > 0)]
    assert len(traded) and (np.minimum(traded[:, 0], traded[:, 3]) == 0).all()
    assert (np.maximum(traded[:, 0], traded[:, 3]) >= 0.01).all()


def test_raw_coding_keeps_the_seed_targets(trained):
    """``--model-arg actor.coding=raw``: the cloning targets and critic inputs are the stored
    actions as they are, the files say ``raw`` and the actor is built without the key."""
    root, *_, stage = trained
    settings = Settings(**{**stage.settings.__dict__, "model_args": {
        "actor": {"hidden": 16, "coding": RAW}, "critic": {"hidden": 16}}})
    raw = ActorStage(settings, stage.data)
    assert raw.coding == ActionCoding(RAW) and raw.parts["actor"].scaler is None
    assert raw.parts["actor"].meta[META_KEY] == {"version": 1, "kind": RAW}
    k = stage.data.train[0]
    np.testing.assert_array_equal(raw.actions[k], stage.data.trajs[k].actions)
    assert not np.array_equal(stage.actions[k], stage.data.trajs[k].actions)
