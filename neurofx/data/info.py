"""What ``neurofx data info`` reports: coverage, gaps, spread and tick-volume statistics."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

TIMEFRAMES = {"M1": 60, "M5": 300, "M15": 900, "M30": 1800, "H1": 3600, "H4": 14400,
              "D1": 86400, "W1": 604800}
WEEKEND = pd.Timedelta(hours=48)
# tick volume per unit of bar range, week vs the 4 weeks before: a ratio beyond this is reported
# as a feed change (market events move tick volume and bar range together; feed changes don't)
TICKS_PER_RANGE_JUMP = 2.0


@dataclass(frozen=True)
class Gap:
    """Two consecutive bars further apart than one bar that is not a normal weekend."""

    last_bar: pd.Timestamp
    next_bar: pd.Timestamp

    @property
    def hours(self) -> float:
        return (self.next_bar - self.last_bar) / pd.Timedelta(hours=1)


@dataclass(frozen=True)
class YearStats:
    year: int
    bars: int
    first: pd.Timestamp
    last: pd.Timestamp
    spread_mean: float
    spread_zero_share: float
    spread_p95: float
    spread_max: float
    tick_volume_median: float


@dataclass(frozen=True)
class TickVolumeChange:
    week_start: pd.Timestamp
    median: float
    median_before: float
    ratio_per_range: float  # (ticks / bar range) this week over the 4 weeks before


@dataclass
class DataInfo:
    source: str
    symbol: str
    timeframe: str
    step: pd.Timedelta
    clock: str | None
    bars: int
    first: pd.Timestamp
    last: pd.Timestamp
    years: list[YearStats]
    gaps: list[Gap]
    spread: dict[str, float]
    tick_volume_changes: list[TickVolumeChange]
    monthly_tick_volume: pd.Series  # median per month
    repairs: list[str] = field(default_factory=list)
    filled: list[str] = field(default_factory=list)


def guess_symbol(path) -> tuple[str | None, str | None]:
    """``EURUSD_H1.csv.gz`` -> ``("EURUSD", "H1")``; None where the name does not say."""
    stem = Path(str(path)).name.split(".")[0]
    parts = [p for p in re.split(r"[_\-\s]+", stem) if p]
    tf = next((p.upper() for p in parts if p.upper() in TIMEFRAMES), None)
    sym = next((p.upper() for p in parts if re.fullmatch(r"[A-Za-z]{6}", p)), None)
    return sym, tf


def bar_step(index: pd.DatetimeIndex) -> pd.Timedelta:
    """The most common spacing between consecutive bars."""
    if len(index) < 2:
        return pd.Timedelta(hours=1)
    diffs = np.diff(index.asi8)
    values, counts = np.unique(diffs, return_counts=True)
    return pd.Timedelta(int(values[np.argmax(counts)]), unit="ns")


def timeframe_of(step: pd.Timedelta) -> str:
    seconds = int(step.total_seconds())
    return next((k for k, v in TIMEFRAMES.items() if v == seconds), str(step))


def find_gaps(index: pd.DatetimeIndex, step: pd.Timedelta) -> list[Gap]:
    """Gaps longer than one bar, except normal weekends: a gap that starts on Friday or
    Saturday, ends on Sunday or Monday and lasts at most 48 h + max(2 h, one bar) (the extra
    covers the weeks when US and EU daylight saving differ and the week ends an hour early)."""
    if len(index) < 2:
        return []
    weekend_max = WEEKEND + max(pd.Timedelta(hours=2), step)
    start, end = index[:-1], index[1:]
    span = end - start
    long = np.flatnonzero(span > step)
    gaps = []
    for i in long:
        s, e = start[i], end[i]
        weekend = s.weekday() in (4, 5) and e.weekday() in (6, 0) and span[i] <= weekend_max
        if not weekend:
            gaps.append(Gap(s, e))
    return gaps


def spread_stats(spread: np.ndarray) -> dict[str, float]:
    if spread.size == 0:
        return {"mean": np.nan, "zero_share": np.nan, "p95": np.nan, "max": np.nan}
    return {"mean": float(spread.mean()), "zero_share": float((spread == 0).mean()),
            "p95": float(np.percentile(spread, 95)), "max": float(spread.max())}


def tick_volume_changes(bars: pd.DataFrame) -> list[TickVolumeChange]:
    """Weeks where tick volume per unit of bar range jumps by >= 2x (or falls to <= 1/2) against
    the 4 weeks before; consecutive flagged weeks report only the first."""
    if bars.empty:
        return []
    weeks = bars.index.to_period("W-SUN")
    labels = pd.unique(weeks)
    tv = bars["tick_volume"].to_numpy()
    rng = (bars["high"] - bars["low"]).to_numpy()
    out: list[TickVolumeChange] = []
    flagged_before = False
    for i in range(4, len(labels)):
        cur = weeks == labels[i]
        prev = (weeks >= labels[i - 4]) & (weeks < labels[i])
        r_cur, r_prev = np.median(rng[cur]), np.median(rng[prev])
        if r_cur <= 0 or r_prev <= 0 or np.median(tv[prev]) <= 0:
            flagged_before = False
            continue
        ratio = (np.median(tv[cur]) / r_cur) / (np.median(tv[prev]) / r_prev)
        flagged = ratio >= TICKS_PER_RANGE_JUMP or ratio <= 1 / TICKS_PER_RANGE_JUMP
        if flagged and not flagged_before:
            out.append(TickVolumeChange(labels[i].start_time, float(np.median(tv[cur])),
                                        float(np.median(tv[prev])), float(ratio)))
        flagged_before = flagged
    return out


def describe(bars: pd.DataFrame, source: str | None = None, symbol: str | None = None) -> DataInfo:
    """Collect the statistics ``neurofx data info`` prints."""
    source = source or bars.attrs.get("source", "?")
    guessed_sym, guessed_tf = guess_symbol(source)
    step = bar_step(bars.index)
    years = []
    for year, g in bars.groupby(bars.index.year):
        s = spread_stats(g["spread"].to_numpy())
        years.append(YearStats(int(year), len(g), g.index[0], g.index[-1], s["mean"],
                               s["zero_share"], s["p95"], s["max"],
                               float(g["tick_volume"].median())))
    monthly = bars["tick_volume"].groupby(bars.index.to_period("M")).median()
    return DataInfo(
        source=source, symbol=symbol or guessed_sym or "?",
        timeframe=guessed_tf or timeframe_of(step), step=step,
        clock=bars.attrs.get("clock"), bars=len(bars),
        first=bars.index[0] if len(bars) else pd.NaT, last=bars.index[-1] if len(bars) else pd.NaT,
        years=years, gaps=find_gaps(bars.index, step),
        spread=spread_stats(bars["spread"].to_numpy()),
        tick_volume_changes=tick_volume_changes(bars), monthly_tick_volume=monthly,
        repairs=list(bars.attrs.get("repairs", [])), filled=list(bars.attrs.get("filled", [])))


def _dur(step: pd.Timedelta) -> str:
    hours = step / pd.Timedelta(hours=1)
    return f"{hours:g}h" if hours >= 1 else f"{step / pd.Timedelta(minutes=1):g}min"


def _t(ts) -> str:
    return "-" if pd.isna(ts) else f"{ts:%Y-%m-%d %H:%M}"


def format_info(info: DataInfo) -> str:
    """The text report (one fact per line)."""
    clock = info.clock or "unknown (as in the file)"
    lines = [
        f"file:        {info.source}",
        f"symbol:      {info.symbol} {info.timeframe} (bar spacing {_dur(info.step)})",
        f"clock:       {clock}; times are bar open times",
        f"bars:        {info.bars:,}",
        f"first bar:   {_t(info.first)}",
        f"last bar:    {_t(info.last)}",
    ]
    for line in info.repairs:
        lines.append(f"repair:      {line}")
    if info.filled:
        lines.append(f"not in file: {', '.join(info.filled)} (set to 0)")
    lines.append("")
    lines.append("year   bars  first             last              spread: mean  zero%  p95"
                 "   max   tick vol median")
    for y in info.years:
        lines.append(f"{y.year}  {y.bars:5d}  {_t(y.first)}  {_t(y.last)}  {y.spread_mean:11.2f}"
                     f"  {100 * y.spread_zero_share:5.1f}  {y.spread_p95:4.0f}  {y.spread_max:4.0f}"
                     f"  {y.tick_volume_median:15,.0f}")
    s = info.spread
    lines.append(f"spread (points, all bars): mean {s['mean']:.2f}, zero on "
                 f"{100 * s['zero_share']:.1f}% of bars, p95 {s['p95']:.0f}, max {s['max']:.0f}")
    lines.append("")
    lines.append(f"gaps longer than one bar, other than normal weekends: {len(info.gaps)}")
    for g in info.gaps:
        lines.append(f"  {_t(g.last_bar)} -> {_t(g.next_bar)}  ({g.hours:g}h)")
    lines.append("")
    if not info.tick_volume_changes:
        lines.append("tick volume: no feed change found (ticks per bar range stay within 2x of "
                     "the 4 weeks before)")
    for ch in info.tick_volume_changes:
        lines.append(f"tick volume: feed change in the week of {ch.week_start:%Y-%m-%d}: median "
                     f"{ch.median:,.0f} per bar vs {ch.median_before:,.0f} over the 4 weeks "
                     f"before (x{ch.ratio_per_range:.1f} per unit of bar range)")
        months = info.monthly_tick_volume
        at = months.index.get_loc(pd.Period(ch.week_start, "M"))
        around = months.iloc[max(0, at - 2): at + 3]
        lines.append("  monthly median: " + ", ".join(f"{p}: {v:,.0f}" for p, v in around.items()))
    return "\n".join(lines)
