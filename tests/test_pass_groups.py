"""Passes in groups (issue 14): a group of passes replayed side by side, one batch actor forward
per bar, gives every pass exactly what it gets alone: the row-seeded VAE noise against a numpy
reference of the device RNG, dense products across the GEMM tile boundaries, the registered
actors at group sizes up to MAX_GROUP, and byte-identical research stores and test deals for
group sizes 1, 3 and 16 and --jobs 1 and 2."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from neurofx.cli import main as cli_main
from neurofx.data import compute_features, load_bars
from neurofx.nn import Model, get_device
from neurofx.nn.gemm import Gemm, get_gemm
from neurofx.nn.layers import VAEHead
from neurofx.nn.ops.vae import vae_sample, vae_sample_rows
from neurofx.nn.tensor import Tensor
from neurofx.strategies.agent import MAX_GROUP
from neurofx.strategies.backtest import Period, run_neural_passes
from neurofx.strategies.broker import BrokerConfig
from neurofx.strategies.policies import NeuralPolicy, pass_seed
from neurofx.strategies.trained_agent import LoadedPolicy


# ---- the device pieces ----------------------------------------------------------------------
def _hash_u32(x):
    x = np.asarray(x, np.uint64) & 0xFFFFFFFF
    for shift, mult in ((16, 0x7FEB352D), (15, 0x846CA68B)):
        x ^= x >> shift
        x = (x * mult) & 0xFFFFFFFF
    return x ^ (x >> 16)


def np_uniform01(seed, counter, i):
    """kernels/common.h uniform01 in numpy."""
    inner = _hash_u32((np.asarray(i, np.uint64) + 0x632BE5AB) & 0xFFFFFFFF)
    mid = _hash_u32(((counter * 0x9E3779B9) & 0xFFFFFFFF) ^ inner)
    h = _hash_u32(np.uint64(seed) ^ mid)
    return ((h >> 8).astype(np.float64) + 0.5) / 16777216.0


def test_row_seeded_noise_matches_numpy_and_batches_of_one():
    k, seeds, counter = 6, [7, 123456789, 4294967295], 5
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=(3, k)), rng.uniform(-2, 1, (3, k))], 1).astype(np.float32)
    dev = get_device()
    buf = dev.to_device(np.array(seeds, np.uint32).view(np.float32), "other", "test.seeds")
    y, eps = vae_sample_rows(Tensor.from_numpy(x), buf, counter)
    y, eps = y.numpy(), eps.numpy()
    j = np.arange(k)
    for b, seed in enumerate(seeds):
        u1 = np_uniform01(seed, counter, 2 * j)
        u2 = np_uniform01(seed, counter, 2 * j + 1)
        ref = np.sqrt(-2 * np.log(u1)) * np.cos(2 * np.pi * u2)
        np.testing.assert_allclose(eps[b], ref, rtol=2e-5, atol=2e-5)
        np.testing.assert_allclose(y[b], x[b, :k] + np.exp(0.5 * x[b, k:]) * ref, rtol=1e-4,
                                   atol=1e-4)
        # bit for bit what a batch of one row with that seed draws
        one_y, one_eps = vae_sample(Tensor.from_numpy(x[b:b + 1]), seed, counter)
        np.testing.assert_array_equal(one_eps.numpy()[0], eps[b])
        np.testing.assert_array_equal(one_y.numpy()[0], y[b])


def test_head_with_row_seeds_is_planned_per_row_count():
    """The row count is part of a captured plan's key: switching between groups of 1 and 3
    replays what eager calls give."""
    x = np.random.default_rng(1).normal(size=(3, 8)).astype(np.float32)
    outs = {}
    for eager in (True, False):
        head = VAEHead(4, seed=2, stochastic=True)
        model = Model(head, name=f"vae_rows_{eager}", eager=eager)
        got = []
        for rows in (3, 1, 3, 1, 3):
            head.set_row_seeds([11, 12, 13][:rows])
            got.append(model.predict(x[:rows]))
        outs[eager] = got
        with pytest.raises(ValueError, match="1 row seeds set for a batch of 3 rows"):
            head.set_row_seeds([11])
            model.predict(x)
    for a, b in zip(outs[True], outs[False], strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(outs[True][0], outs[True][2])  # the counter advanced


@pytest.mark.parametrize("m", [3, 4, 5, 9, 17, MAX_GROUP])
def test_dense_rows_equal_products_of_one_row(m):
    """Every row of a dense forward of m rows (DOT_TM-row tiles plus the one-row remainder
    kernel) equals the product of that row alone, bit for bit."""
    n, k = 37, 300  # k not a multiple of the 16-wide dot vectors
    rng = np.random.default_rng(m)
    x = rng.normal(size=(m, k)).astype(np.float32)
    w = rng.normal(size=(n, k)).astype(np.float32)
    bias = rng.normal(size=n).astype(np.float32)
    gemm, dev = get_gemm(), get_device()
    xb, wb, bb = (dev.to_device(a, "other", "test") for a in (x, w, bias))
    yb = dev.alloc(4 * m * n, "other", "test")
    gemm.dense(xb, wb, yb, m, n, k, bb, act=0)
    y = dev.to_host(yb, (m, n))
    np.testing.assert_allclose(y, x.astype(np.float64) @ w.T.astype(np.float64) + bias,
                               rtol=1e-4, atol=1e-3)
    for r in range(m):
        rb, ob = dev.to_device(x[r:r + 1], "other", "test"), dev.alloc(4 * n, "other", "test")
        gemm.dense(rb, wb, ob, 1, n, k, bb, act=0)
        one = dev.to_host(ob, (1, n))
        np.testing.assert_array_equal(one[0], y[r])


def test_max_group_stays_below_the_packed_path():
    # the packed path sums in another order; a group never reaches it (strategies/agent.py)
    assert not Gemm._use_packed(MAX_GROUP, 4096, 4096)
    assert Gemm._use_packed(128, 4096, 4096)


def test_shared_context_is_exact_and_for_inference_only():
    """The TPM actor attends to one forecast row for the whole batch: the same outputs as the
    forecast repeated per row; with a graph (training) a shared context is refused."""
    from neurofx import agents

    actor = agents.build("actor", "tpm", model_name="actor_shared")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(5, 12)).astype(np.float32)
    context = rng.normal(size=(1, 216)).astype(np.float32)
    np.testing.assert_array_equal(actor.predict(x, context),
                                  actor.predict(x, np.repeat(context, 5, axis=0)))
    with pytest.raises(ValueError, match="only inference"):
        actor.forward(x, context)


@pytest.mark.parametrize("name", ["tpm", "baseline"])
def test_registered_actors_decide_each_row_as_alone(name):
    policy = NeuralPolicy(name, name, stochastic=True)
    rng = np.random.default_rng(2)
    states = rng.normal(size=(3, 1080)).astype(np.float32)
    for rows in (3, 16, MAX_GROUP):
        vectors = rng.normal(size=(3, rows, 12)).astype(np.float32)
        seeds = [int(s) for s in rng.integers(0, 2**32, rows)]
        policy.reset_rows(seeds)
        together = [policy.act_rows(t, states[t], vectors[t]) for t in range(3)]
        for i in range(0, rows, max(1, rows // 5)):
            policy.reset(seeds[i])
            alone = [policy.act(t, states[t], vectors[t, i]) for t in range(3)]
            assert alone == [together[t][i] for t in range(3)], (rows, i)
        assert len({together[0][i] for i in range(rows)}) == rows  # each row its own noise


# ---- research and test ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def bars_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("bars") / "eurusd_h1_trim.csv"
    load_bars().loc["2022-09-01":"2023-03-31"].to_csv(path)
    return path


def _digest(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir())}


def test_neural_research_store_bytes_same_for_any_group_and_jobs(tmp_path, bars_file, capsys):
    """16 passes of the full-size TPM agent (random weights, exploring) over two days."""
    common = ["research", "--policy", "neural", "--passes", "16", "--seed", "3",
              "--min-profit=-1e9", "--start", "2023-03-07", "--end", "2023-03-09",
              "--set", f'runs.root="{tmp_path / "runs"}"', "--set", f'data.file="{bars_file}"']
    digests = {}
    for group, jobs in (("1", "1"), ("3", "1"), ("16", "1"), ("3", "2"), ("16", "2")):
        store = tmp_path / f"g{group}j{jobs}"
        assert cli_main([*common, "--group", group, "--jobs", jobs, "--store", str(store)]) == 0
        digests[group, jobs] = _digest(store)
    first = digests["1", "1"]
    assert len(first) >= 3
    assert all(d == first for d in digests.values())
    capsys.readouterr()
    assert cli_main([*common, "--group", "65", "--store", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--group 65" in err[0] and "1..64" in err[0]


def test_stochastic_test_deals_same_for_any_group():
    bars = load_bars().loc["2023-11-01":"2024-01-10"]
    features = compute_features(bars)
    period = Period(date(2024, 1, 2), date(2024, 1, 4))
    policy = NeuralPolicy("tpm", "tpm", stochastic=True)
    loaded = LoadedPolicy(policy, {}, 216)
    runs = {g: run_neural_passes(loaded, bars, features, period, BrokerConfig(), passes=16,
                                 seed=5, group=g) for g in (1, 3, 16)}
    base = runs[1]
    assert [o.seed for o in base] == [pass_seed(5, i) for i in range(16)]
    assert sum(len(o.replay.deals) for o in base) > 0
    assert len({round(o.replay.final.balance_usd, 2) for o in base}) > 1  # passes differ
    for g in (3, 16):
        for a, b in zip(base, runs[g], strict=True):
            assert a.replay.deals == b.replay.deals
            for name, values in a.replay.records.items():
                np.testing.assert_array_equal(values, b.replay.records[name], err_msg=name)
            np.testing.assert_array_equal(a.replay.strategy.actions, b.replay.strategy.actions)
