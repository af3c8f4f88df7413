"""Policies: seeded random trader, the neural encoder+actor pair (checked against a float64
numpy forward), Real-ORL actions, and pass seeds."""

import numpy as np
import pytest

from neurofx import agents
from neurofx.data import compute_features, load_bars
from neurofx.errors import NeurofxError
from neurofx.nn import Model
from neurofx.strategies.agent import run_agent_pass
from neurofx.strategies.feeds import BarArrays
from neurofx.strategies.policies import (
    NeuralPolicy,
    RandomPolicy,
    RealORLPolicy,
    ScriptedPolicy,
    pass_seed,
)

STATE = np.linspace(-1, 1, 1080, dtype=np.float32)
ACC = np.linspace(0, 1, 12, dtype=np.float32)


@pytest.fixture(scope="module")
def data():
    frame = load_bars().loc["2022-09-01":"2023-03-31"]
    return BarArrays.from_frame(frame), compute_features(frame)


# ---- random ---------------------------------------------------------------------------------
def test_random_policy_is_seeded_and_in_range():
    def run(seed):
        p = RandomPolicy(seed=seed)
        p.reset(seed)
        return np.array([p.act(t, STATE, ACC) for t in range(4000)])

    a, b, c = run(5), run(5), run(6)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    lots = a[:, [0, 3]]
    assert ((lots == 0) | ((lots >= 0.01) & (lots <= 0.1))).all()
    assert (np.minimum(lots[:, 0], lots[:, 1]) == 0).all()  # one side only
    assert ((a[:, [1, 2, 4, 5]] >= 0.1) & (a[:, [1, 2, 4, 5]] <= 1.0)).all()
    changes = np.any(a[1:] != a[:-1], axis=1).mean()
    assert 0.035 < changes < 0.065  # a new target on ~5 % of bars (hold_prob 0.95)
    side = np.where(a[:, 0] > 0, 1, np.where(a[:, 3] > 0, -1, 0))
    assert {-1, 0, 1} <= set(side.tolist())


def test_random_policy_trades_open_and_close(data):
    bars, feats = data
    res = run_agent_pass(bars, feats, RandomPolicy(), "2023-02-01", "2023-03-01", seed=11)
    reasons = {d.reason for d in res.replay.deals}
    sides = {d.side for d in res.replay.deals if d.entry == "in"}
    outs = [d for d in res.replay.deals if d.entry == "out"]
    assert sides == {"buy", "sell"} and len(outs) > 20
    assert {"agent", "tp", "sl"} <= reasons
    assert res.flat.any() and not res.flat.all()
    again = run_agent_pass(bars, feats, RandomPolicy(), "2023-02-01", "2023-03-01", seed=11)
    np.testing.assert_array_equal(again.actions, res.actions)
    np.testing.assert_array_equal(again.accounts, res.accounts)


def test_random_policy_rejects_bad_ranges():
    with pytest.raises(NeurofxError, match="hold_prob"):
        RandomPolicy(hold_prob=1.5)
    with pytest.raises(NeurofxError, match="max_lots"):
        RandomPolicy(max_lots=0.0)


def test_pass_seeds_differ_and_repeat():
    seeds = [pass_seed(7, i) for i in range(100)]
    assert len(set(seeds)) == 100 and seeds == [pass_seed(7, i) for i in range(100)]
    assert pass_seed(7, 0) != pass_seed(8, 0)
    with pytest.raises(NeurofxError):
        pass_seed(-1, 0)


# ---- neural -----------------------------------------------------------------------------------
def small_encoder():
    return Model({"type": "Sequential", "layers": [
        {"type": "Dense", "n_in": 1080, "n_out": 8, "activation": "tanh", "seed": 3},
        {"type": "Dense", "n_in": 8, "n_out": 216, "activation": "none", "seed": 4},
    ]}, name="encoder")


def small_actor():
    return agents.build("actor", "baseline", model_name="actor", hidden=8)


def numpy_forward(enc, act, state, acc):
    """float64 reference: the encoder MLP, then the actor MLP up to (mu, logvar)."""
    pe = {k: v.astype(np.float64) for k, v in enc.named_parameters().items()}
    pa = {k: v.astype(np.float64) for k, v in act.named_parameters().items()}
    h = np.tanh(pe["0.weight"] @ state + pe["0.bias"])
    f = pe["1.weight"] @ h + pe["1.bias"]
    x = np.concatenate([acc, f])
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    h = sig(pa["1.weight"] @ x + pa["1.bias"])
    h = sig(pa["2.weight"] @ h + pa["2.bias"])
    out = pa["3.weight"] @ h + pa["3.bias"]
    return out[:6], out[6:]


def test_neural_mean_action_matches_numpy():
    enc, act = small_encoder(), small_actor()
    pol = NeuralPolicy(enc, act, stochastic=False)
    pol.reset(1)
    mu, _ = numpy_forward(enc, act, STATE.astype(np.float64), ACC.astype(np.float64))
    np.testing.assert_allclose(pol.act(0, STATE, ACC), mu, rtol=1e-4, atol=1e-5)


def test_neural_stochastic_head_samples_and_reset_repeats_the_noise():
    enc, act = small_encoder(), small_actor()
    pol = NeuralPolicy(enc, act, stochastic=True)
    mu, logvar = numpy_forward(enc, act, STATE.astype(np.float64), ACC.astype(np.float64))
    head = pol._heads[0]

    def run(seed):
        pol.reset(seed)
        outs, eps = [], []
        for t in range(5):
            outs.append(pol.act(t, STATE, ACC))
            eps.append(head.last_eps.numpy().reshape(-1).astype(np.float64))
        return np.array(outs), np.array(eps)

    y1, e1 = run(123)
    np.testing.assert_allclose(y1, mu + np.exp(0.5 * logvar) * e1, rtol=1e-4, atol=1e-5)
    assert np.abs(e1).max() > 0.1 and not np.allclose(e1[0], e1[1])  # fresh noise each bar
    y2, _ = run(123)
    np.testing.assert_array_equal(y1, y2)
    y3, _ = run(124)
    assert not np.allclose(y1, y3)


def test_neural_state_restored_each_pass_and_files_load(tmp_path):
    enc = agents.build("encoder", "baseline", model_name="encoder", hidden=8)  # running norm
    act = small_actor()
    enc.save(tmp_path / "enc.npz")
    act.save(tmp_path / "act.npz")
    pol = NeuralPolicy(enc, act, stochastic=True)
    states = [STATE * (1 + 0.1 * t) for t in range(4)]

    def run(p, seed):
        p.reset(seed)
        return np.array([p.act(t, s, ACC) for t, s in enumerate(states)])

    before = {n: t.numpy().copy() for n, t in enc.net.named_state()}
    a = run(pol, 9)
    moved = {n: t.numpy() for n, t in enc.net.named_state()}
    assert any(not np.array_equal(before[n], moved[n]) for n in before)  # stats did update
    b = run(pol, 9)
    np.testing.assert_array_equal(a, b)  # ... and were restored by reset
    from_files = NeuralPolicy(tmp_path / "enc.npz", tmp_path / "act.npz", stochastic=True)
    np.testing.assert_array_equal(run(from_files, 9), a)


def test_later_passes_share_the_encoders_forecasts_with_the_same_result(tmp_path):
    agents.build("encoder", "baseline", model_name="encoder", hidden=8).save(tmp_path / "e.npz")
    small_actor().save(tmp_path / "a.npz")
    enc, act = tmp_path / "e.npz", tmp_path / "a.npz"  # each policy loads its own models
    states = [STATE * (1 + 0.1 * t) for t in range(5)]
    other = states[:2] + [STATE * -0.5 + 0.01 * t for t in range(3)]  # shares 2 steps

    def run(p, seed, seq):
        p.reset(seed)
        return np.array([p.act(t, s, ACC) for t, s in enumerate(seq)])

    def fresh(seed, seq):
        return run(NeuralPolicy(enc, act, stochastic=True), seed, seq)

    pol = NeuralPolicy(enc, act, stochastic=True)
    first = run(pol, 9, states)
    calls = []
    real = pol.encoder.predict
    pol.encoder.predict = lambda *x, **kw: calls.append(1) or real(*x, **kw)
    second = run(pol, 3, states)
    assert calls == []  # every forecast came from the first pass
    np.testing.assert_array_equal(first, fresh(9, states))
    np.testing.assert_array_equal(second, fresh(3, states))
    # a pass over other states reuses what matches, then brings the encoder up to date
    np.testing.assert_array_equal(run(pol, 4, other), fresh(4, other))
    assert len(calls) == 2 + 3  # replay of the 2 shared steps, then the 3 new ones
    np.testing.assert_array_equal(run(pol, 3, states), second)


def test_neural_bad_model_spec_is_one_line_error(tmp_path):
    with pytest.raises(NeurofxError, match="no registered encoder"):
        NeuralPolicy(encoder="nosuchmodel")
    with pytest.raises(NeurofxError, match="not found"):
        NeuralPolicy(encoder=tmp_path / "missing.npz")


def test_neural_pass_records_the_netted_policy_actions(data):
    bars, feats = data

    class Recording(NeuralPolicy):
        def act_rows(self, t, state, account_vectors):
            out = super().act_rows(t, state, account_vectors)
            self.raw.extend(out)
            return out

    pol = Recording(small_encoder(), small_actor())
    pol.raw = []
    res = run_agent_pass(bars, feats, pol, "2023-03-06 04:00", "2023-03-07 04:00", seed=2)
    raw = np.array(pol.raw)
    assert raw.shape == (24, 6)
    netted = raw.copy()
    buy = raw[:, 0] >= raw[:, 3]
    netted[buy, 0] -= raw[buy, 3]
    netted[buy, 3] = 0
    netted[~buy, 3] -= raw[~buy, 0]
    netted[~buy, 0] = 0
    np.testing.assert_array_equal(res.actions, netted)
    pol.raw = []
    again = run_agent_pass(bars, feats, pol, "2023-03-06 04:00", "2023-03-07 04:00", seed=2)
    np.testing.assert_array_equal(again.actions, res.actions)


# ---- Real-ORL and scripted ----------------------------------------------------------------------
def test_realorl_policy_returns_its_rows():
    acts = np.arange(18, dtype=float).reshape(3, 6)
    p = RealORLPolicy(acts)
    p.reset(5)
    assert [p.act(t, STATE, ACC) for t in range(3)] == [tuple(r) for r in acts]
    with pytest.raises(NeurofxError, match="shape"):
        RealORLPolicy(np.zeros((3, 5)))


def test_scripted_policy_defaults_and_records():
    p = ScriptedPolicy({2: (0.1, 0.5, 0.5, 0, 0, 0)})
    assert p.act(0, STATE, ACC) == (0.0,) * 6
    assert p.act(2, STATE, ACC) == (0.1, 0.5, 0.5, 0.0, 0.0, 0.0)
    assert [c[0] for c in p.calls] == [0, 2]
    p.reset()
    assert p.calls == []
