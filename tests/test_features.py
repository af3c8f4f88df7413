"""Seed features against a slow float64 loop, no look-ahead, window layout, tick-volume modes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neurofx.data import load_bars
from neurofx.data.features import (
    compute_features,
    first_decision_bar,
    first_valid_row,
    state_window,
    state_windows,
)
from neurofx.errors import NeurofxError
from neurofx.schema import BAR_FEATURES, HISTORY_BARS


@pytest.fixture(scope="module")
def bundled():
    return load_bars()


@pytest.fixture(scope="module")
def bars(bundled):
    return bundled.loc["2023-01-02":"2023-02-10"]  # 720 bars of the training year


def random_bars(n: int, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 1.1 + np.cumsum(rng.normal(0, 5e-4, n))
    open_ = np.r_[1.1, close[:-1]] + rng.normal(0, 1e-5, n)
    high = np.maximum(open_, close) + rng.exponential(3e-4, n)
    low = np.minimum(open_, close) - rng.exponential(3e-4, n)
    tv = rng.integers(100, 5000, n).astype(float)
    idx = pd.date_range("2023-01-02", periods=n, freq="h", name="time")
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close,
                         "tick_volume": tv, "spread": 0.0}, index=idx)


# ------------------------------------------------------------------ slow reference (float64)


def ref_features(b: pd.DataFrame, mode: str, median_bars: int = 120) -> np.ndarray:
    """One bar at a time, the conventions of the ta library written out:
    RSI/ATR with Wilder smoothing (alpha 1/14, ta's RSI seeds with a zero change at bar 0,
    its ATR with the mean of the first 14 true ranges), CCI with the mean absolute deviation
    and constant 0.015 (0 when the deviation is 0, as MT5's iCCI), MACD from EMAs
    (alpha 2/(span+1)) seeded with the first value."""
    o, h, l, c, v = (b[k].to_numpy(np.float64) for k in
                     ("open", "high", "low", "close", "tick_volume"))
    n = len(c)
    out = np.full((n, 9), np.nan)
    up = dn = 0.0
    ema12 = ema26 = sig = atr = 0.0
    trs = []
    for i in range(n):
        out[i, 0], out[i, 1], out[i, 2] = c[i] - o[i], h[i] - o[i], l[i] - o[i]
        if mode == "raw":
            out[i, 3] = v[i] / 1000.0
        elif i >= median_bars:
            med = float(np.median(v[i - median_bars:i]))
            out[i, 3] = v[i] / max(med, 1.0)
        # RSI(14)
        d = c[i] - c[i - 1] if i > 0 else 0.0
        g, lo = max(d, 0.0), max(-d, 0.0)
        up = g if i == 0 else up + (g - up) / 14
        dn = lo if i == 0 else dn + (lo - dn) / 14
        if i >= 13:
            out[i, 4] = 100.0 if dn == 0 else 100.0 - 100.0 / (1.0 + up / dn)
        # CCI(14)
        if i >= 13:
            tp = (h[i - 13:i + 1] + l[i - 13:i + 1] + c[i - 13:i + 1]) / 3.0
            mean = sum(tp) / 14
            mad = sum(abs(x - mean) for x in tp) / 14
            out[i, 5] = 0.0 if mad == 0 else (tp[-1] - mean) / (0.015 * mad)
        # ATR(14)
        tr = h[i] - l[i] if i == 0 else max(h[i] - l[i], abs(h[i] - c[i - 1]),
                                            abs(l[i] - c[i - 1]))
        trs.append(tr)
        if i == 13:
            atr = sum(trs) / 14
        elif i > 13:
            atr = (atr * 13 + tr) / 14
        if i >= 13:
            out[i, 6] = atr
        # MACD(12, 26) and signal(9)
        ema12 = c[i] if i == 0 else ema12 + 2 / 13 * (c[i] - ema12)
        ema26 = c[i] if i == 0 else ema26 + 2 / 27 * (c[i] - ema26)
        if i >= 25:
            macd = ema12 - ema26
            out[i, 7] = macd
            sig = macd if i == 25 else sig + 2 / 10 * (macd - sig)
            if i >= 33:
                out[i, 8] = sig
    return out


def assert_matches_reference(got: np.ndarray, ref: np.ndarray) -> None:
    assert got.dtype == np.float32 and got.shape == ref.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    ok = ~np.isnan(ref)
    # float32 output of float64 math: relative 1e-6 per column, scaled by the column's size
    scale = np.nanmax(np.abs(ref), axis=0)
    err = np.abs(got.astype(np.float64) - ref) / scale
    assert np.nanmax(np.where(ok, err, 0), axis=0).max() < 2e-6


@pytest.mark.parametrize("mode", ["normalized", "raw"])
def test_features_match_slow_loop_on_bundled_bars(bars, mode):
    assert_matches_reference(compute_features(bars, mode), ref_features(bars, mode))


def test_features_match_slow_loop_on_random_walk_with_flat_stretch():
    b = random_bars(300)
    # 20 bars with no change: RSI's averages decay but stay > 0; CCI's MAD hits 0 -> CCI 0
    b.iloc[100:120, :4] = b.iloc[99]["close"]
    f = compute_features(b, "normalized", median_bars=50)
    np.testing.assert_array_equal(f[113:120, 5], 0.0)
    assert_matches_reference(f, ref_features(b, "normalized", median_bars=50))


def test_rsi_is_100_without_losses():
    b = random_bars(60)
    b["close"] = 1.1 + 1e-4 * np.arange(60)
    b["open"] = b["close"] - 5e-5
    b["high"] = b["close"] + 1e-4
    b["low"] = b["open"] - 1e-4
    f = compute_features(b, "raw")
    np.testing.assert_array_equal(f[13:, 4], 100.0)


def test_warm_up_rows():
    b = random_bars(400)
    assert first_valid_row(compute_features(b, "raw")) == 33  # MACD signal: 26 + 9 - 2
    assert first_valid_row(compute_features(b, "normalized")) == 120
    assert first_valid_row(compute_features(b, "normalized", median_bars=20)) == 33
    assert first_decision_bar(compute_features(b, "raw")) == 33 + HISTORY_BARS
    short = compute_features(b.iloc[:10], "raw")  # shorter than every indicator window
    assert short.shape == (10, 9) and np.isnan(short[:, 4:]).all()
    assert first_valid_row(short) == 10


def test_bad_arguments():
    b = random_bars(50)
    with pytest.raises(NeurofxError, match=r"tick_volume: unknown mode 'log'"):
        compute_features(b, "log")
    with pytest.raises(NeurofxError, match=r"bars: missing column\(s\) tick_volume"):
        compute_features(b.drop(columns="tick_volume"))


# ------------------------------------------------------------------ no look-ahead


@pytest.mark.parametrize("mode", ["normalized", "raw"])
def test_state_at_t_ignores_bar_t_and_later(bars, mode):
    t = 400
    base = state_window(compute_features(bars, mode), t)
    rng = np.random.default_rng(3)
    future = bars.copy()
    k = len(future) - t
    # bars t, t+1, ...: new prices that are still valid bars, and wild tick volumes
    future.iloc[t:, 0] += rng.normal(0, 1e-3, k)
    future.iloc[t:, 3] = future.iloc[t:, 0] + rng.normal(0, 1e-3, k)
    body_top = future.iloc[t:, [0, 3]].max(axis=1).to_numpy()
    body_low = future.iloc[t:, [0, 3]].min(axis=1).to_numpy()
    future.iloc[t:, 1] = body_top + 2e-4
    future.iloc[t:, 2] = body_low - 2e-4
    future.iloc[t:, 4] *= 50
    after = compute_features(future, mode)
    np.testing.assert_array_equal(state_window(after, t), base)
    assert not np.array_equal(state_window(after, t + 1), state_window(
        compute_features(bars, mode), t + 1))

    # perturbing the last closed bar (t-1) changes the state at t, in its newest row
    past = bars.copy()
    past.iloc[t - 1, 3] += 5e-4  # close of bar t-1, with the high raised above it
    past.iloc[t - 1, 1] = max(past.iloc[t - 1, 1], past.iloc[t - 1, 3]) + 1e-4
    past.iloc[t - 1, 4] *= 2
    changed = state_window(compute_features(past, mode), t)
    diff = np.flatnonzero(changed != base)
    assert diff.size and diff.min() == 0  # close-open of bar t-1 is value 0 of the state
    moved = set(diff[diff < BAR_FEATURES])
    assert {0, 3, 4, 5, 6, 7, 8} <= moved  # every close-driven column of the newest bar


# ------------------------------------------------------------------ window layout


def test_window_layout_newest_first_bar_major():
    f = np.arange(300 * 9, dtype=np.float32).reshape(300, 9)
    w = state_window(f, 200)
    assert w.shape == (1080,)
    for k in (0, 1, 57, 119):
        np.testing.assert_array_equal(w[k * 9:(k + 1) * 9], f[199 - k])
    assert w[0] == 199 * 9 and w[-1] == 80 * 9 + 8
    ts = np.array([120, 121, 250, 300])
    many = state_windows(f, ts)
    assert many.shape == (4, 1080)
    for i, t in enumerate(ts):
        np.testing.assert_array_equal(many[i], state_window(f, t))
    assert state_windows(f, [], history=5).shape == (0, 45)
    np.testing.assert_array_equal(state_window(f, 10, history=3), f[[9, 8, 7]].reshape(-1))


def test_window_errors_name_the_first_valid_bar():
    f = np.arange(300 * 9, dtype=np.float32).reshape(300, 9)
    f[:40] = np.nan
    assert first_valid_row(f) == 40
    with pytest.raises(NeurofxError, match=r"state: bar t=150 needs valid features in rows "
                       r"30\.\.149, but they are valid from row 40 .*start at t >= 160"):
        state_window(f, 150)
    with pytest.raises(NeurofxError, match=r"start at t >= 160"):
        state_windows(f, [200, 159])
    with pytest.raises(NeurofxError, match=r"bar t=301 is outside the features \(0\.\.300\)"):
        state_windows(f, [301])
    state_windows(f, [160, 300])  # the edges are fine


# ------------------------------------------------------------------ tick volume modes


def test_tick_volume_modes_on_a_regime_change():
    b = random_bars(400)
    b["tick_volume"] = np.where(np.arange(400) < 300, 2000.0, 6000.0)
    raw = compute_features(b, "raw")[:, 3]
    norm = compute_features(b, "normalized")[:, 3]
    np.testing.assert_array_equal(raw[[0, 299, 300, 399]], [2.0, 2.0, 6.0, 6.0])
    assert np.isnan(norm[:120]).all()
    np.testing.assert_array_equal(norm[120:300], 1.0)
    # the trailing 120-bar median (even count: mean of the middle two) stays at 2000 while
    # fewer than 60 new bars are in it, is (2000 + 6000) / 2 with exactly 60, then 6000
    np.testing.assert_array_equal(norm[300:360], 3.0)
    assert norm[360] == pytest.approx(1.5)
    np.testing.assert_array_equal(norm[361:], 1.0)


def test_normalized_tick_volume_survives_the_feed_change(bundled):
    """The bundled feed's tick volume triples from 2023-12-18; raw /1000 leaves the training
    range, the normalised ratio keeps the same level."""
    raw = compute_features(bundled, "raw")[:, 3]
    norm = compute_features(bundled, "normalized")[:, 3]
    train = bundled.index.year == 2023
    test = bundled.index.year == 2024
    assert np.median(raw[test]) / np.median(raw[train]) > 2.5
    assert 0.9 < np.median(norm[test]) / np.median(norm[train]) < 1.15
    # share of test bars above the 90th percentile of training: 10% if the level held
    assert np.mean(raw[test] > np.percentile(raw[train], 90)) > 0.5
    assert np.mean(norm[test] > np.percentile(norm[train], 90)) < 0.12
