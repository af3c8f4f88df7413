"""The seed's per-bar features (spec 2.1) and the 120-bar state windows built from them.

Row ``b`` of :func:`compute_features` describes bar ``b`` after it closed and uses only bars
``<= b``. The state used to decide at the OPEN of bar ``t`` is rows ``t-1, t-2, ..., t-history``
(newest first), so it only sees bars that closed before ``t``. See docs/features.md.
"""

from __future__ import annotations

import hashlib
import json

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


# ---- one feature matrix per bar file, and the state windows read from it (store version 2) --
FEATURES_VERSION = 1  # bump when compute_features changes what it returns


def bars_digest(bars: pd.DataFrame) -> str:
    """sha256 of bars as loaded: times (ns) and every column as float64, by column name. The
    same file loaded with another time zone or column map is other bars."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(pd.DatetimeIndex(bars.index).asi8, dtype=np.int64).tobytes())
    for name in sorted(bars.columns):
        h.update(str(name).encode() + b"\0")
        h.update(np.ascontiguousarray(bars[name].to_numpy(np.float64)).tobytes())
    return h.hexdigest()


def feature_settings(tick_volume: str = "normalized", history: int = HISTORY_BARS) -> dict:
    """What, besides the bars, decides a feature matrix and its windows (JSON-ready)."""
    return {"features_version": FEATURES_VERSION, "history": int(history),
            "tick_volume": tick_volume, "tick_volume_median_bars": TICK_VOLUME_MEDIAN_BARS}


class FeatureMatrix:
    """The per-bar features of one bar file ``(N, 9)`` float32, newest bar first in memory,
    so that the state window of bar ``t`` (rows ``t-1 .. t-history``, newest first) is one
    contiguous run of ``history * 9`` values: ``flat[(N - t) * 9 : (N - t + history) * 9]``.

    ``key`` is the first 16 hex digits of the sha256 of the bars' digest and the feature
    settings (:func:`feature_settings`); matrices without a bar digest (features handed in as
    a bare array) use the digest of the values instead. ``newest_first`` may be a read-only
    memory map (the store's ``features_<key>.npy``).
    """

    def __init__(self, newest_first: np.ndarray, bars_sha256: str | None = None,
                 settings: dict | None = None):
        rev = newest_first if isinstance(newest_first, np.ndarray) else np.asarray(newest_first)
        if rev.ndim != 2 or rev.dtype != np.float32 or not rev.flags.c_contiguous:
            raise NeurofxError(f"features: need a C-contiguous float32 (bars, features) matrix, "
                               f"got {rev.dtype} {rev.shape}")
        self.newest_first = rev
        self.bars_sha256 = bars_sha256
        self.settings = dict(settings) if settings is not None else feature_settings()
        self.history = int(self.settings.get("history", HISTORY_BARS))
        self._key: str | None = None
        self._first_valid: int | None = None
        self._windows: np.ndarray | None = None

    @classmethod
    def from_features(cls, features: np.ndarray, bars_sha256: str | None = None,
                      settings: dict | None = None) -> FeatureMatrix:
        """From features in bar order (:func:`compute_features`)."""
        values = np.asarray(features, dtype=np.float32)
        return cls(np.ascontiguousarray(values[::-1]), bars_sha256, settings)

    def __reduce__(self):  # pickles the matrix, not the derived views
        return (FeatureMatrix, (self.newest_first, self.bars_sha256, self.settings))

    @property
    def values(self) -> np.ndarray:
        """The features in bar order (a view)."""
        return self.newest_first[::-1]

    @property
    def rows(self) -> int:
        return int(self.newest_first.shape[0])

    @property
    def key(self) -> str:
        if self._key is None:
            bars = self.bars_sha256 or ("values:" + hashlib.sha256(
                self.newest_first.tobytes()).hexdigest())
            text = json.dumps({"bars": bars, "settings": self.settings}, sort_keys=True)
            self._key = hashlib.sha256(text.encode()).hexdigest()[:16]
        return self._key

    @property
    def first_valid(self) -> int:
        if self._first_valid is None:
            self._first_valid = first_valid_row(self.values)
        return self._first_valid

    def window_rows(self, history: int | None = None) -> np.ndarray:
        """Read-only view ``(N - history + 1, history * F)``: row ``N - t`` is the window of
        bar ``t`` (no copy)."""
        h = self.history if history is None else int(history)
        if history is None and self._windows is not None:
            return self._windows
        n, f = self.newest_first.shape
        size = self.newest_first.itemsize
        view = np.lib.stride_tricks.as_strided(
            self.newest_first, shape=(max(n - h + 1, 0), h * f), strides=(f * size, size),
            writeable=False)
        if history is None:
            self._windows = view
        return view

    def windows(self, bars, history: int | None = None) -> StateWindows:
        """The state windows of bars ``bars`` (checked: every one inside warmed-up rows)."""
        return StateWindows(self, bars, history)

    def mapped(self, fn) -> FeatureMatrix:
        """A matrix of the same bars with ``fn`` applied to every value (elementwise ``fn``:
        the windows of the result are ``fn`` of the windows of this one)."""
        out = np.ascontiguousarray(fn(self.newest_first), dtype=np.float32)
        return FeatureMatrix(out, self.bars_sha256, {**self.settings, "mapped": True})


class StateWindows:
    """The states of a pass, read on demand from a :class:`FeatureMatrix`: row ``i`` is
    ``state_window(values, bars[i], history)``, equal to the stored states of version 1.

    Behaves like a read-only ``(T, history * 9)`` float32 array for the reads the study makes:
    ``w[i]`` (a view), ``w[idx]``, ``w[a:b]``, ``w[rows, cols]`` (copies), ``np.asarray(w)``.
    """

    def __init__(self, matrix: FeatureMatrix, bars, history: int | None = None):
        self.matrix = matrix
        self.history = matrix.history if history is None else int(history)
        b = np.ascontiguousarray(np.asarray(bars).reshape(-1), dtype=np.int64)
        b.setflags(write=False)
        self.bars = b
        if b.size:
            lo, hi = int(b.min()), int(b.max())
            if lo - self.history < matrix.first_valid or hi > matrix.rows:
                t = lo if lo - self.history < matrix.first_valid else hi
                raise _window_error(matrix.values, t, self.history)
        self._rows = matrix.window_rows(None if history is None else self.history)

    def __reduce__(self):  # the matrix and the bar indices, never the windows
        return (StateWindows, (self.matrix, self.bars, self.history))

    dtype = np.dtype(np.float32)
    ndim = 2

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.bars.size), self.history * int(self.matrix.newest_first.shape[1]))

    @property
    def nbytes(self) -> int:
        """Bytes this object holds itself (the bar indices; the matrix is shared)."""
        return int(self.bars.nbytes)

    def __len__(self) -> int:
        return int(self.bars.size)

    def __getitem__(self, key):
        rest = ()
        if isinstance(key, tuple):
            key, rest = key[0], key[1:]
        rows = self.matrix.rows - self.bars[key]
        return self._rows[(rows, *rest)]

    def __array__(self, dtype=None, copy=None):
        out = self._rows[self.matrix.rows - self.bars]
        return out if dtype is None else out.astype(dtype, copy=False)

    def later(self, offset: int, history: int, matrix: FeatureMatrix | None = None
              ) -> StateWindows:
        """Windows of ``history`` bars at the bars of steps ``offset ..`` (optionally of
        another matrix of the same bars): the encoder's targets are ``later(24, 24)``."""
        return StateWindows(matrix or self.matrix, self.bars[offset:], history)
