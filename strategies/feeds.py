"""Bar feeds for backtrader: preconverted NumPy arrays, and stock ``PandasData`` for comparison.

backtrader's ``PandasData`` reads every field of every bar through ``DataFrame.iloc`` and converts
each timestamp with ``date2num`` in Python, which is most of a replay's cost. :class:`NumpyFeed`
takes a :class:`BarArrays` whose datetimes were converted to backtrader's float day numbers once,
vectorised, and fills the line buffers in bulk when cerebro preloads (the default). Both feeds
deliver identical bars (``tests/test_feeds.py``); ``benchmarks/replay.py`` times them.
"""

from __future__ import annotations

import array
from dataclasses import dataclass

import backtrader as bt
import numpy as np
import pandas as pd

from neurofx.errors import NeurofxError

# date(1970, 1, 1).toordinal(): backtrader day numbers are proleptic Gregorian ordinals.
_UNIX_EPOCH_ORDINAL = 719163
_PRICE_COLUMNS = ("open", "high", "low", "close")


def bt_datenums(times: pd.DatetimeIndex | pd.Series | np.ndarray) -> np.ndarray:
    """Backtrader's ``date2num`` for many naive datetimes at once, bit-identical to it.

    ``date2num`` is ``math.fsum((ordinal, hour/24, minute/1440, second/86400, us/8.64e10))``.
    When only the hour is non-zero that is one correctly rounded float addition, which NumPy
    reproduces exactly; the rare other timestamps go through ``date2num`` itself.
    Time-zone-aware input is converted to naive UTC first, as ``date2num`` does.
    """
    idx = pd.DatetimeIndex(times)
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    idx = idx.as_unit("ns")  # pandas >= 2 may infer "s" or "us" resolution
    ns = idx.asi8
    day_ns = 86_400 * 10**9
    days = ns // day_ns
    rem = ns - days * day_ns
    hours = rem // (3600 * 10**9)
    out = (days + _UNIX_EPOCH_ORDINAL).astype(np.float64) + hours / 24.0
    odd = np.flatnonzero(rem % (3600 * 10**9))
    for i in odd:
        out[i] = bt.date2num(idx[i].to_pydatetime())
    return out


@dataclass(frozen=True, eq=False)
class BarArrays:
    """One symbol's bid bars as aligned NumPy arrays (the single source for feeds and broker).

    ``time_s`` is the bar open time in Unix seconds (feed clock); ``dtnum`` the same instant as
    backtrader's float day number; ``spread_points`` the per-bar spread column in points.
    """

    time_s: np.ndarray
    dtnum: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    spread_points: np.ndarray

    def __len__(self) -> int:
        return len(self.time_s)

    @classmethod
    def from_frame(cls, df: pd.DataFrame, source: str = "bars") -> BarArrays:
        """Convert a frame with a ``time`` column (or a DatetimeIndex), ``open, high, low, close``,
        ``tick_volume`` (or ``volume``) and optionally ``spread`` (points; 0 when absent)."""
        if "time" in df.columns:
            times = pd.DatetimeIndex(pd.to_datetime(df["time"]))
        elif isinstance(df.index, pd.DatetimeIndex):
            times = df.index
        else:
            raise NeurofxError(
                f"{source}: no 'time' column and no DatetimeIndex; add the bar open times"
            )
        missing = [c for c in _PRICE_COLUMNS if c not in df.columns]
        if missing:
            raise NeurofxError(f"{source}: missing column(s) {', '.join(missing)}")
        vol_col = "tick_volume" if "tick_volume" in df.columns else "volume"
        if vol_col not in df.columns:
            raise NeurofxError(f"{source}: missing column 'tick_volume' (or 'volume')")
        if len(times) > 1 and not (np.diff(times.asi8) > 0).all():
            raise NeurofxError(f"{source}: bar times must be strictly increasing")

        def col(name: str) -> np.ndarray:
            return np.ascontiguousarray(df[name].to_numpy(dtype=np.float64))

        spread = col("spread") if "spread" in df.columns else np.zeros(len(df))
        naive = times.tz_convert("UTC").tz_localize(None) if times.tz is not None else times
        return cls(
            time_s=naive.as_unit("ns").asi8 // 10**9,
            dtnum=bt_datenums(times),
            open=col("open"),
            high=col("high"),
            low=col("low"),
            close=col("close"),
            volume=col(vol_col),
            spread_points=spread,
        )

    def window(self, start=None, end=None) -> BarArrays:
        """Bars with ``start <= time < end`` (``datetime``/string/Timestamp, broker clock)."""
        lo, hi = 0, len(self)
        if start is not None:
            lo = int(np.searchsorted(self.time_s, _to_unix(start), side="left"))
        if end is not None:
            hi = int(np.searchsorted(self.time_s, _to_unix(end), side="left"))
        if hi <= lo:
            raise NeurofxError(f"no bars between start={start} and end={end}")
        return BarArrays(**{k: v[lo:hi] for k, v in self.__dict__.items()})

    def to_frame(self) -> pd.DataFrame:
        """The frame stock ``PandasData`` expects: DatetimeIndex and OHLCV + spread columns."""
        index = pd.to_datetime(self.time_s, unit="s")
        return pd.DataFrame(
            {
                "open": self.open,
                "high": self.high,
                "low": self.low,
                "close": self.close,
                "volume": self.volume,
                "spread": self.spread_points,
            },
            index=pd.DatetimeIndex(index, name="time"),
        )


def _to_unix(value) -> int:
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return int(ts.value // 10**9)


class NumpyFeed(bt.feed.DataBase):
    """backtrader data feed over a :class:`BarArrays` (pass it as ``dataname``).

    Extra line ``spread`` carries the spread column in points. With cerebro's default
    ``preload=True`` the line buffers are filled in one bulk copy per line; otherwise
    ``_load`` delivers one bar per call from the arrays.
    """

    lines = ("spread",)

    _LINE_FIELDS = (
        ("datetime", "dtnum"),
        ("open", "open"),
        ("high", "high"),
        ("low", "low"),
        ("close", "close"),
        ("volume", "volume"),
        ("spread", "spread_points"),
    )

    def start(self):
        super().start()
        if not isinstance(self.p.dataname, BarArrays):
            raise NeurofxError("NumpyFeed: dataname must be a BarArrays (BarArrays.from_frame)")
        self._cols = None
        self._idx = -1

    def _window(self) -> None:
        # fromdate/todate are converted by backtrader after start(), so slice on first use
        bars = self.p.dataname
        lo = int(np.searchsorted(bars.dtnum, self.fromdate, side="left"))
        hi = int(np.searchsorted(bars.dtnum, self.todate, side="right"))
        self._cols = [(getattr(self.lines, ln), getattr(bars, f)[lo:hi])
                      for ln, f in self._LINE_FIELDS]
        self._n = hi - lo

    def preload(self):
        if self._filters or self._ffilters or self._tzinput:
            return super().preload()  # filters need the bar-by-bar path
        self._window()
        for line, values in self._cols:
            line.array = array.array("d", np.ascontiguousarray(values, np.float64).tobytes())
            line.idx = self._n - 1
            line.lencount = self._n
        self.lines.openinterest.array = array.array("d", bytes(8 * self._n))
        self.lines.openinterest.idx = self._n - 1
        self.lines.openinterest.lencount = self._n
        self._idx = self._n
        self._last()
        self.home()

    def _load(self):
        if self._cols is None:
            self._window()
        self._idx += 1
        i = self._idx
        if i >= self._n:
            return False
        for line, values in self._cols:
            line[0] = values[i]
        self.lines.openinterest[0] = 0.0
        return True


class PandasSpreadData(bt.feeds.PandasData):
    """Stock ``PandasData`` plus the ``spread`` line; the baseline the benchmark compares with."""

    lines = ("spread",)
    params = (("spread", -1), ("openinterest", None))


def make_feed(bars: BarArrays, kind: str = "numpy") -> bt.feed.DataBase:
    """A backtrader feed over ``bars``: ``kind`` is ``"numpy"`` or ``"pandas"``."""
    if kind == "numpy":
        return NumpyFeed(dataname=bars)
    if kind == "pandas":
        return PandasSpreadData(dataname=bars.to_frame())
    raise NeurofxError(f"unknown feed {kind!r}: use 'numpy' or 'pandas'")

