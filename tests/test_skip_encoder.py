"""The skip encoder (neurofx.agents.skip): its forward-only scaling kernels against numpy, the
closed-form ridge (neurofx.agents.ridge) against the normal equations, the fitted model
against the numpy forecast it folds, and a study-trained encoder against the per-feature AR(1)
baseline on held-out bars of the bundled data."""

import numpy as np
import pytest

from neurofx import agents, commands
from neurofx.agents import ridge
from neurofx.agents.skip import price_mask, window_scale
from neurofx.data import compute_features, load_bars
from neurofx.data.features import state_windows
from neurofx.errors import NeurofxError
from neurofx.nn import Tensor
from neurofx.nn.ops.volscale import vol_scale, vol_unscale
from neurofx.nn.tensor import StateTensor
from neurofx.schema import BAR_FEATURES, FORECAST_BARS, HISTORY_BARS
from neurofx.study.encoder import forecast, load_encoder


def _windows(rng, rows, bars=HISTORY_BARS):
    x = rng.normal(size=(rows, bars, BAR_FEATURES)) * 1e-3
    x[:, :, 3] = rng.uniform(0.5, 2.0, size=(rows, bars))   # tick volume ratio
    x[:, :, 4] = 50 + 10 * rng.normal(size=(rows, bars))     # RSI
    x[:, :, 5] = 100 * rng.normal(size=(rows, bars))         # CCI
    return x.reshape(rows, -1)


def test_vol_scale_and_unscale_match_numpy():
    rng = np.random.default_rng(0)
    x = _windows(rng, 5, bars=7).astype(np.float32)
    mask = price_mask()
    xs, s = vol_scale(Tensor.from_numpy(x), StateTensor.of(mask), BAR_FEATURES, 1, 2, 1e-7)
    w = x.astype(np.float64).reshape(5, 7, BAR_FEATURES)
    s_ref = (np.abs(w[:, :, 1]) + np.abs(w[:, :, 2])).mean(axis=1) / 2 + 1e-7
    np.testing.assert_allclose(s.numpy()[:, 0], s_ref, rtol=1e-6)
    np.testing.assert_allclose(s_ref, window_scale(x, eps=1e-7), rtol=1e-12)
    xs_ref = w.copy()
    xs_ref[:, :, mask.astype(bool)] /= s_ref[:, None, None]
    np.testing.assert_allclose(xs.numpy(), xs_ref.reshape(5, -1), rtol=1e-5)
    r = rng.normal(size=(5, 18)).astype(np.float32)
    tmask = np.tile(mask, 2)
    gain, offset = rng.uniform(1, 2, 18), rng.normal(size=18)
    y = vol_unscale(Tensor.from_numpy(r), s, *(StateTensor.of(v) for v in (tmask, gain, offset)))
    y_ref = r * np.where(tmask[None] != 0, s_ref[:, None], 1.0) * gain + offset
    np.testing.assert_allclose(y.numpy(), y_ref, rtol=1e-5, atol=1e-6)


def test_ridge_matches_the_normal_equations_and_picks_penalties_per_output():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 6)) * [1, 2, 3, 4, 5, 6] + 3.0
    beta = rng.normal(size=(6, 2))
    y = x @ beta + rng.normal(size=(400, 2)) * [0.1, 50.0]  # output 1: mostly noise
    fit = ridge.fit(x, y, np.array([10.0, 1e4]))
    z = (x - x.mean(0)) / x.std(0)
    for k, lam in enumerate((10.0, 1e4)):
        w = np.linalg.solve(z.T @ z + lam * np.eye(6), z.T @ (y[:, k] - y[:, k].mean()))
        np.testing.assert_allclose(fit.weight[:, k], w, rtol=1e-9)
    w_raw, b_raw = fit.folded()
    np.testing.assert_allclose(x @ w_raw.T + b_raw, fit.predict(x), rtol=1e-9)

    def score(f, rows):
        return ((f.predict(x[rows]) - y[rows]) ** 2).mean(axis=0)

    per = ridge.choose_penalties(x, y, score, per_output=True)
    assert per[0] < per[1]  # the clean output is shrunk less than the noisy one
    one = ridge.choose_penalties(x, y, score)
    assert one[0] == one[1]


def test_ar1_prior_matches_polyfit_per_output():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 4))
    y = np.stack([2.0 + 3.0 * x[:, 1], -1.0 + 0.5 * x[:, 3] + rng.normal(size=200)], axis=1)
    a, b = ridge.ar1(x, y, np.array([1, 3]))
    np.testing.assert_allclose([a[0], b[0]], [2.0, 3.0], rtol=1e-12)
    slope, icpt = np.polyfit(x[:, 3], y[:, 1], 1)
    np.testing.assert_allclose([a[1], b[1]], [icpt, slope], rtol=1e-9)
    a, b = ridge.ar1(np.ones((5, 1)), np.arange(5.0)[:, None], np.array([0]))
    assert b[0] == 0.0 and a[0] == 2.0  # a constant input: the mean


def test_fitted_skip_encoder_forecasts_what_it_folds_and_survives_save_load(tmp_path):
    rng = np.random.default_rng(2)
    x = _windows(rng, 300)
    z = rng.normal(size=(300, FORECAST_BARS * BAR_FEATURES))
    mean = np.tile(rng.normal(size=BAR_FEATURES) * 1e-3, FORECAST_BARS)
    std = np.tile(rng.uniform(1e-3, 2e-3, BAR_FEATURES), FORECAST_BARS)
    model = agents.build("encoder", "skip")
    assert model.num_parameters == 0
    fit = model.net.fit_linear(x, z, mean, std)
    s = window_scale(x)
    cm = price_mask().astype(bool)
    xs = x.reshape(300, -1, BAR_FEATURES).copy()
    xs[:, :, cm] /= s[:, None, None]
    power = np.where(np.tile(cm, FORECAST_BARS)[None], s[:, None], 1.0)
    want = (fit.predict(xs.reshape(300, -1)) * power - mean) / std
    got = model.predict(x[:8].astype(np.float32))
    np.testing.assert_allclose(got, want[:8], rtol=2e-4, atol=2e-4)
    model.save(tmp_path / "e.npz")
    again = type(model).load(tmp_path / "e.npz")
    assert np.array_equal(again.predict(x[:8].astype(np.float32)), got)


def test_skip_hidden_override_is_checked():
    with pytest.raises(NeurofxError, match="override hidden=-1 must be an integer >= 0"):
        agents.describe("encoder", "skip", hidden=-1)


def test_study_trained_encoder_beats_per_feature_ar1_on_held_out_bars(tmp_path):
    """`neurofx study encoder` (its default model) on research passes of 2023-01..05; held out:
    the decisions of 2023-06-01 .. 07-15 whose targets are held-out bars too."""
    root = tmp_path / "runs"
    store = root / "st"
    assert commands.main(["research", "--passes", "2", "--jobs", "1", "--store", str(store),
                          "--start", "2023-01-01", "--end", "2023-06-01", "--min-profit=-1e9",
                          "--set", f"runs.root={root}"]) == 0
    assert commands.main(["study", "encoder", "--store", str(store), "--run", "fc",
                          "--iterations", "1", "--no-progress",
                          "--set", f"runs.root={root}"]) == 0
    # nothing to compare on a parameterless model: one line, exit 2
    assert commands.main(["study", "encoder", "--store", str(store), "--run", "cmp",
                          "--compare-optimizers", "adam,sgd", "--no-progress",
                          "--set", f"runs.root={root}"]) == 2
    bars = load_bars()
    feats = compute_features(bars).astype(np.float64)
    t = bars.index
    train = np.flatnonzero((t >= "2023-01-01") & (t < "2023-06-01"))[:-FORECAST_BARS]
    held = np.flatnonzero((t >= "2023-06-01") & (t < "2023-07-15"))[:-FORECAST_BARS]

    x_tr, x_te = state_windows(feats, train), state_windows(feats, held)
    y_tr = state_windows(feats, train + FORECAST_BARS, FORECAST_BARS)
    y_te = state_windows(feats, held + FORECAST_BARS, FORECAST_BARS)
    std = np.tile(feats[train - 1].std(axis=0), FORECAST_BARS)
    ar = np.empty_like(y_te)
    for k in range(y_te.shape[1]):
        f = k % BAR_FEATURES
        xc = x_tr[:, f] - x_tr[:, f].mean()
        b = xc @ (y_tr[:, k] - y_tr[:, k].mean()) / (xc @ xc)
        ar[:, k] = y_tr[:, k].mean() + b * (x_te[:, f] - x_tr[:, f].mean())
    model, scaler = load_encoder(root / "fc" / "encoder.npz")
    assert model.describe()["type"] == "SkipEncoder"
    pred = forecast(model, scaler, x_te.astype(np.float32))

    def mse(p):
        return float((((p - y_te) / std) ** 2).mean())

    mean_mse = mse(np.broadcast_to(y_tr.mean(axis=0), y_te.shape))
    ar_mse, enc_mse = mse(ar), mse(pred)
    print(f"held-out standardised MSE: mean {mean_mse:.4f}, AR(1) {ar_mse:.4f}, "
          f"encoder {enc_mse:.4f}")
    assert enc_mse < 0.95 * ar_mse < mean_mse
