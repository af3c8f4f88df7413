"""The seed's per-bar features (spec 2.1) and the 120-bar state windows built from them.

Row ``b`` of :func:`compute_features` describes bar ``b`` after it closed and uses only bars
``<= b``. The state used to decide at the OPEN of bar ``t`` is rows ``t-1, t-2, ..., t-history``
(newest first), so it only sees bars that closed before ``t``. See docs/features.md.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import ta

from neurofx.errors import NeurofxError
from neurofx.schema import BAR_FEATURES, HISTORY_BARS

TICK_VOLUME_MODES = ("normalized", "raw")
# Trailing window of the "normalized" tick volume: 120 H1 bars = one trading week (5 x 24), so
# the median spans every session of the week, and a feed change is absorbed within half a week.
TICK_VOLUME_MEDIAN_BARS = 120
RAW_TICK_VOLUME_SCALE = 1000.0  # the seed's tick_volume / 1000


def compute_features(bars: pd.DataFrame, tick_volume: str = "normalized",
                     median_bars: int = TICK_VOLUME_MEDIAN_BARS) -> np.ndarray:
    """Per-bar features, shape ``(len(bars), 9)``, float32; NaN in the warm-up rows.

    Columns: close-open, high-open, low-open, tick volume, RSI(14, close), CCI(14, typical
    price), ATR(14), MACD main (12, 26) and signal (9), all from the SAME closed bar.
    ``tick_volume="raw"`` is the seed's ``tick_volume / 1000``; ``"normalized"`` (default) is
    ``tick_volume[b] / median(tick_volume[b-median_bars .. b-1])``, robust to feed changes.
    """
    if tick_volume not in TICK_VOLUME_MODES:
        raise NeurofxError(f"tick_volume: unknown mode {tick_volume!r} "
                           f"(fix: use one of {', '.join(TICK_VOLUME_MODES)})")
    if median_bars < 1:
        raise NeurofxError(f"median_bars: must be >= 1, got {median_bars}")
    missing = [c for c in ("open", "high", "low", "close", "tick_volume") if c not in bars]
    if missing:
        raise NeurofxError(f"bars: missing column(s) {', '.join(missing)} "
                           "(fix: load them with neurofx.data.load_bars)")
    # a RangeIndex keeps ta's positional code paths unambiguous
    o, h, l, c = (bars[k].astype(np.float64).reset_index(drop=True)
                  for k in ("open", "high", "low", "close"))
    tv = bars["tick_volume"].astype(np.float64).reset_index(drop=True)
    n = len(c)
    out = np.full((n, BAR_FEATURES), np.nan, dtype=np.float64)
    out[:, 0] = c - o
    out[:, 1] = h - o
    out[:, 2] = l - o
    if tick_volume == "raw":
        out[:, 3] = tv / RAW_TICK_VOLUME_SCALE
    else:
        median = tv.rolling(median_bars, min_periods=median_bars).median().shift(1)
        # a zero median only happens on broken feeds; 1 tick keeps the ratio finite
        out[:, 3] = tv / np.maximum(median, 1.0)
    window = 14
    out[:, 4] = ta.momentum.RSIIndicator(c, window=window).rsi()
    cci = ta.trend.CCIIndicator(h, l, c, window=window).cci().to_numpy(copy=True)
    # ta divides 0 by 0 when the typical price is flat for 14 bars; MT5's iCCI gives 0 there
    cci[window - 1:][~np.isfinite(cci[window - 1:])] = 0.0
    out[:, 5] = cci
    if n >= window:  # ta's ATR indexes row window-1 unconditionally
        atr = ta.volatility.AverageTrueRange(h, l, c, window=window).average_true_range()
        out[:, 6] = atr
        out[: window - 1, 6] = np.nan  # ta fills its warm-up with 0
    macd = ta.trend.MACD(c, window_slow=26, window_fast=12, window_sign=9)
    out[:, 7] = macd.macd()
    out[:, 8] = macd.macd_signal()
    return out.astype(np.float32)


def first_valid_row(features: np.ndarray) -> int:
    """First row from which every later row is finite (``len(features)`` if none)."""
    bad = ~np.isfinite(features).all(axis=1)
    rows = np.flatnonzero(bad)
    return 0 if rows.size == 0 else int(rows[-1]) + 1


def first_decision_bar(features: np.ndarray, history: int = HISTORY_BARS) -> int:
    """The first bar ``t`` whose state window is fully valid: ``first_valid_row + history``."""
    return first_valid_row(features) + history


def _window_error(features: np.ndarray, t: int, history: int) -> NeurofxError:
    first = first_valid_row(features)
    if t > len(features) or t < 0:
        return NeurofxError(f"state: bar t={t} is outside the features (0..{len(features)}) "
                            "(fix: pick a bar inside the loaded data)")
    return NeurofxError(f"state: bar t={t} needs valid features in rows {t - history}..{t - 1}, "
                        f"but they are valid from row {first} (warm-up) "
                        f"(fix: start at t >= {first + history} or load earlier bars)")


def state_window(features: np.ndarray, t: int, history: int = HISTORY_BARS) -> np.ndarray:
    """State at the open of bar ``t``: rows ``t-1 .. t-history`` newest first, flattened
    bar-major (bar0 features 0..8, bar1 features 0..8, ...); shape ``(history * 9,)``."""
    t = int(t)
    if t - history < 0 or t > len(features):
        raise _window_error(features, t, history)
    window = features[t - history: t][::-1].reshape(-1)
    if not np.isfinite(window).all():
        raise _window_error(features, t, history)
    return window


def state_windows(features: np.ndarray, ts, history: int = HISTORY_BARS) -> np.ndarray:
    """Vectorised :func:`state_window` for many bars: shape ``(len(ts), history * 9)``."""
    ts = np.asarray(ts, dtype=np.int64).reshape(-1)
    if ts.size == 0:
        return np.empty((0, history * features.shape[1]), dtype=features.dtype)
    low, high = int(ts.min()), int(ts.max())
    first = first_valid_row(features)
    if low - history < first or high > len(features):
        raise _window_error(features, low if low - history < first else high, history)
    rows = ts[:, None] - 1 - np.arange(history)[None, :]
    return features[rows].reshape(len(ts), -1)
