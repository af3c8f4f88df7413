"""Seed trajectory sampling (spec 5.1) against hand computation and the analytic distribution."""

import math

import numpy as np
import pytest

from neurofx.collectors.sampling import sample_start, sample_trajectory, trajectory_weights
from neurofx.errors import NeurofxError


def normalised(raw):
    total = sum(raw)
    return [r / total for r in raw]


def test_weights_hand_computed():
    # s = 1,2,3,4,10: max 10, min 1 - 0.1*10 = 0, P80 = 4 + 0.2*(10-4) = 5.2, k = -4.8
    # w = s/10 -> w/(w+0.9) = 0.1/1.0, 0.2/1.1, 0.3/1.2, 0.4/1.3, 1/1.9; mult = exp(-(10-s)/4.8)
    want = normalised([
        0.1 / 1.0 * math.exp(-9 / 4.8),
        0.2 / 1.1 * math.exp(-8 / 4.8),
        0.3 / 1.2 * math.exp(-7 / 4.8),
        0.4 / 1.3 * math.exp(-6 / 4.8),
        1.0 / 1.9,
    ])
    np.testing.assert_allclose(trajectory_weights([1, 2, 3, 4, 10]), want, rtol=1e-12)


def test_weights_negative_scores():
    # s = -3,-1,0: max 0, min -3, P80 = -1 + 0.6*1 = -0.4; w = (s+3)/3 = 0, 2/3, 1
    want = normalised([0.0, (2 / 3) / (2 / 3 + 0.9) * math.exp(-1 / 0.4), 1 / 1.9])
    np.testing.assert_allclose(trajectory_weights([-3, -1, 0]), want, rtol=1e-12)


@pytest.mark.parametrize("scores", [[2.5, 2.5, 2.5], [0.0, 0.0], [7.0]])
def test_weights_uniform_when_all_equal(scores):
    np.testing.assert_allclose(trajectory_weights(scores), [1 / len(scores)] * len(scores))


def test_weights_k_zero_limit():
    # s = 1,5,5: P80 = 5 = max -> k = 0; limit k -> 0-: only the maxima keep weight
    np.testing.assert_allclose(trajectory_weights([1, 5, 5]), [0.0, 0.5, 0.5])


def test_weights_bad_input():
    with pytest.raises(NeurofxError, match="non-empty"):
        trajectory_weights([])
    with pytest.raises(NeurofxError, match="NaN"):
        trajectory_weights([1.0, float("nan")])


def test_sample_trajectory_frequencies_and_zero_weight():
    w = np.array([0.1, 0.0, 0.6, 0.3])
    rng = np.random.default_rng(7)
    n = 20000
    counts = np.bincount([sample_trajectory(rng, w) for _ in range(n)], minlength=4)
    assert counts[1] == 0
    # each count within 4 binomial standard deviations of n * w
    sd = np.sqrt(n * w * (1 - w))
    assert (np.abs(counts - n * w) <= 4 * sd + 1e-9).all(), counts


def test_sample_trajectory_deterministic():
    w = trajectory_weights([1, 2, 3, 4, 10])
    a = [sample_trajectory(np.random.default_rng(3), w) for _ in range(5)]
    r1, r2 = np.random.default_rng(11), np.random.default_rng(11)
    assert [sample_trajectory(r1, w) for _ in range(50)] == [
        sample_trajectory(r2, w) for _ in range(50)
    ]
    assert len(set(a)) == 1


def start_cdf(j, span):
    """P(start <= j) for floor(u1*u2*span) conditioned on >= 1, from F(x) = x - x ln x."""

    def f(x):
        x = np.minimum(np.asarray(x, dtype=np.float64), 1.0)
        return np.where(x > 0, x - x * np.log(np.where(x > 0, x, 1.0)), 0.0)

    return (f((j + 1) / span) - f(1 / span)) / (1 - f(1 / span))


def ks_distance(samples, span):
    j = np.arange(1, span)
    emp = np.searchsorted(np.sort(samples), j, side="right") / len(samples)
    return float(np.max(np.abs(emp - start_cdf(j, span))))


def test_sample_start_matches_analytic_distribution():
    total, n_forecast = 1026, 24
    span = total - 2 - n_forecast  # 1000
    rng = np.random.default_rng(2024)
    n = 20000
    starts = np.array([sample_start(rng, total, n_forecast) for _ in range(n)])
    assert starts.min() >= 1 and starts.max() <= span - 1
    bound = 1.95 / math.sqrt(n)  # KS critical value, alpha = 0.001
    assert ks_distance(starts, span) < bound
    # the test discriminates: uniform starts are far outside the bound
    uniform = np.random.default_rng(1).integers(1, span, n)
    assert ks_distance(uniform, span) > 10 * bound
    # strong early bias: P(start < span/4) = F(0.25) ~ 0.597 (vs 0.25 for uniform)
    assert abs(np.mean(starts < span / 4) - 0.25 * (1 - math.log(0.25))) < 0.015


def test_sample_start_deterministic_and_short():
    a = [sample_start(np.random.default_rng(5), 6207) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    r1, r2 = np.random.default_rng(9), np.random.default_rng(9)
    seq = [sample_start(r1, 500) for _ in range(100)]
    assert seq == [sample_start(r2, 500) for _ in range(100)]
    assert seq != [sample_start(np.random.default_rng(10), 500) for _ in range(100)]
    assert sample_start(np.random.default_rng(0), 28, 24) == 1  # span 2: only start 1 is valid
    with pytest.raises(NeurofxError, match="at least 28 steps"):
        sample_start(np.random.default_rng(0), 27, 24)
