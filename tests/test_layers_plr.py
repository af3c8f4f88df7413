"""PLR features against a hand-computed series, a numpy float64 zigzag + np.polyfit
reference, and finite differences with the segmentation fixed."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from neurofx.nn import Model, Tensor, build_module
from neurofx.nn.layers.plr import PLR

sys.path.insert(0, str(Path(__file__).parent))
from gradcheck import assert_close, check_module, exact32  # noqa: E402

# L = 12, min_step 0.2: turning points 0, 2, 6, 10, 11 (worked out by hand in the docstring
# of test_hand_computed_series)
HAND = [0.0, 0.5, 1.0, 0.75, 0.3, 0.35, 0.1, 0.6, 0.62, 0.61, 0.9, 0.2]


def np_turning_points(y, min_step):
    """Threshold zigzag, written from the definition: keep the running extreme of the current
    leg; it becomes a turning point once the series moves min_step away from it."""
    points = [0]
    hi = lo = 0
    leg = None  # "up" or "down" once the first move of min_step happened
    ext = None
    for i in range(1, len(y)):
        if leg is None:
            hi = i if y[i] > y[hi] else hi
            lo = i if y[i] < y[lo] else lo
            if y[hi] - y[lo] >= min_step:
                first, ext = (lo, hi) if lo < hi else (hi, lo)
                leg = "up" if lo < hi else "down"
                if first > 0:
                    points.append(first)
        elif leg == "up":
            if y[i] >= y[ext]:
                ext = i
            elif y[ext] - y[i] >= min_step:
                points.append(ext)
                leg, ext = "down", i
        else:
            if y[i] <= y[ext]:
                ext = i
            elif y[i] - y[ext] >= min_step:
                points.append(ext)
                leg, ext = "up", i
    points.append(len(y) - 1)
    return points


def np_plr_series(y, min_step, max_segments):
    out = np.zeros(len(y))
    pts = np_turning_points(y, min_step)[: max_segments + 1]
    for s, (t0, t1) in enumerate(zip(pts[:-1], pts[1:], strict=True)):
        slope, intercept = np.polyfit(np.arange(t1 - t0 + 1.0), y[t0:t1 + 1], 1)
        out[3 * s:3 * s + 3] = slope, intercept, (t1 - t0) / len(y)
    return out, pts


def np_plr(x, length, n_vars, time_major, min_step, max_segments):
    """x (B, L*V) -> (B, L*V); series along time per variable."""
    b = x.shape[0]
    xs = x.reshape(b, length, n_vars).transpose(0, 2, 1) if time_major else x.reshape(
        b, n_vars, length)
    out = np.array([[np_plr_series(s, min_step, max_segments)[0] for s in row] for row in xs])
    return (out.transpose(0, 2, 1) if time_major else out).reshape(b, -1)


def test_hand_computed_series():
    """Zigzag on HAND: up 0 -> 1.0 (t=2), down to 0.1 (t=6; 0.35 at t=5 rises only 0.05),
    up to 0.9 (t=10; the dip 0.62 -> 0.61 is too small), down to 0.2 (t=11, the end)."""
    model = Model(PLR(12, 1, time_major=False), name="plr_hand")
    y = model.predict(np.array([HAND], np.float32))
    expected = [0.5, 0.0, 2 / 12, -0.22, 0.94, 4 / 12, 0.161, 0.244, 4 / 12, -0.7, 0.9, 1 / 12]
    np.testing.assert_allclose(y[0], expected, atol=2e-6)
    assert model.net.last_segments.host(model.device) == [[[0, 2, 6, 10, 11]]]
    assert np_turning_points(exact32(HAND), 0.2) == [0, 2, 6, 10, 11]


def test_max_segments_keeps_the_first_in_time_order_and_flat_series_is_one_line():
    model = Model(PLR(12, 2, time_major=False, max_segments=2), name="plr_cap")
    x = np.array([HAND + [0.3] * 12], np.float32)
    y = model.predict(x).reshape(2, 12)
    np.testing.assert_allclose(y[0, :6], [0.5, 0.0, 2 / 12, -0.22, 0.94, 4 / 12], atol=2e-6)
    np.testing.assert_array_equal(y[0, 6:], 0.0)
    np.testing.assert_allclose(y[1], [0.0, 0.3, 11 / 12] + [0.0] * 9, atol=1e-6)
    assert model.net.last_segments.host(model.device) == [[[0, 2, 6], [0, 11]]]


def random_walks(rng, b, length, n_vars):
    return np.cumsum(rng.normal(scale=0.15, size=(b, length, n_vars)), axis=1)


@pytest.mark.parametrize("time_major", [True, False])
def test_random_series_forward_turning_points_and_gradient(time_major):
    length, n_vars, b = 24, 3, 2
    layer = PLR(length, n_vars, time_major=time_major)
    model = Model(layer, name=f"plr{time_major}")
    rng = np.random.default_rng(4)
    walk = random_walks(rng, b, length, n_vars)
    x = (walk if time_major else walk.transpose(0, 2, 1)).reshape(b, -1)

    def ref(_p, x):
        return np_plr(x, length, n_vars, time_major, 0.2, length // 3)

    got = check_module(model, [x], ref, seed=5)
    series = exact32(walk).transpose(0, 2, 1)  # (B, V, L)
    expected_pts = [[np_turning_points(s, 0.2)[: length // 3 + 1] for s in row] for row in series]
    assert layer.last_segments.host(model.device) == expected_pts
    assert max(len(p) for row in expected_pts for p in row) >= 4  # several segments tested
    assert np.abs(got["input0"]).max() > 0.1
    # a loss on the length entries only (times 3s+2) sends no gradient to the input
    seed = np.zeros((b, length, n_vars) if time_major else (b, n_vars, length), np.float32)
    if time_major:
        seed[:, 2::3, :] = 1.0
    else:
        seed[:, :, 2::3] = 1.0
    t = Tensor.from_numpy(x, requires_grad=True)
    layer(t).backward(seed.reshape(b, -1))
    np.testing.assert_array_equal(t.grad(), 0.0)


def test_seed_shapes_120_bars_by_9_features():
    model = Model(PLR(120, 9), name="plr_seed")
    rng = np.random.default_rng(6)
    x = random_walks(rng, 2, 120, 9).reshape(2, 1080)
    y = model.predict(x)
    assert y.shape == (2, 1080)
    assert_close(y, np_plr(exact32(x), 120, 9, True, 0.2, 40), 1e-4)
    t = Tensor.from_numpy(x.reshape(2, 120, 9).astype(np.float32))
    assert model.forward(t).shape == (2, 120, 9)
    assert build_module(model.describe()).config() == model.net.config()


@pytest.mark.parametrize("kwargs,match", [
    ({"length": 2, "n_vars": 1}, "need length >= 3"),
    ({"length": 12, "n_vars": 1, "max_segments": 5}, r"max_segments=5 must be in \[1, "),
    ({"length": 12, "n_vars": 1, "min_step": 0.0}, "min_step > 0"),
])
def test_rejects_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PLR(**kwargs)


def test_rejects_wrong_input_shape():
    model = Model(PLR(12, 2), name="plr_bad")
    with pytest.raises(ValueError, match=r"PLR: input must be \(B, 24\) or \(B, 12, 2\)"):
        model.predict(np.zeros((1, 20), np.float32))
