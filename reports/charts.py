"""Report charts: matplotlib object API on the Agg canvas (no pyplot, no display needed).

Each function takes arrays and an output path, writes one PNG atomically and returns the path.
Times are Unix seconds of the bars' naive timestamps, so their calendar (hours, weekdays) is the
bars' clock; ``clock`` names it in the axis labels (default: broker time).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

from neurofx.atomic import atomic_path
from neurofx.reports.io import DEFAULT_CLOCK

DPI = 100
WIN, LOSS = "#2e7d32", "#c62828"
BALANCE, EQUITY = "#1f4e9c", "#e08a00"
BASELINE_COLORS = ("#7b1fa2", "#00897b", "#6d4c41", "#546e7a")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def time_label(clock: str = DEFAULT_CLOCK) -> str:
    """The time axis label, e.g. ``time (broker time, Europe/Athens)``."""
    return f"time ({clock})"


def _dates(time_s) -> np.ndarray:
    return np.asarray(time_s, dtype=np.int64).astype("datetime64[s]")


def _time_axis(ax) -> None:
    loc = AutoDateLocator()
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(loc))


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    FigureCanvasAgg(fig)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return Path(path)


def drawdown_pct(equity_usd, deposit_usd: float) -> np.ndarray:
    """Fall below the running peak (which starts at the deposit), in % of that peak, <= 0."""
    e = np.asarray(equity_usd, dtype=np.float64)
    peak = np.maximum.accumulate(np.concatenate([[float(deposit_usd)], e]))[1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(peak > 0, (e - peak) / peak * 100.0, np.nan)


def equity_chart(
    time_s, balance_usd, equity_usd, deposit_usd: float, path: str | os.PathLike, *,
    entry_time_s=(), entry_direction=(), exit_time_s=(), exit_net_usd=(), title: str = "",
    clock: str = DEFAULT_CLOCK, baselines: Sequence[tuple[str, object, object]] = (),
) -> Path:
    """Balance and equity with entry/exit markers on top, equity drawdown (%) below.

    Entries: triangles up (long) / down (short); exits: dots, green for a win, red otherwise.
    Markers sit on the equity curve at their time. ``baselines``: (label, time_s, equity_usd)
    of baselines drawn as thin dashed equity lines.
    """
    t = np.asarray(time_s, dtype=np.int64)
    eq = np.asarray(equity_usd, dtype=np.float64)
    fig = Figure(figsize=(11, 6.5), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    x = _dates(t)
    top.plot(x, balance_usd, color=BALANCE, lw=1.6, label="balance")
    top.plot(x, eq, color=EQUITY, lw=1.0, label="equity")
    top.axhline(deposit_usd, color="0.6", lw=0.8, ls=":", label="deposit")
    for k, (label, bt, be) in enumerate(baselines):
        top.plot(_dates(bt), be, color=BASELINE_COLORS[k % len(BASELINE_COLORS)], lw=0.9,
                 ls="--", alpha=0.9, label=f"{label} (equity)")

    def on_curve(ts):
        return np.interp(np.asarray(ts, dtype=np.float64), t.astype(np.float64), eq)

    et, ed = np.asarray(entry_time_s, dtype=np.int64), np.asarray(entry_direction)
    for mask, marker, label in ((ed > 0, "^", "long entry"), (ed < 0, "v", "short entry")):
        if mask.any():
            top.scatter(_dates(et[mask]), on_curve(et[mask]), marker=marker, s=36,
                        color="#444", zorder=3, label=label)
    xt, xn = np.asarray(exit_time_s, dtype=np.int64), np.asarray(exit_net_usd, dtype=np.float64)
    for mask, color, label in ((xn > 0, WIN, "exit, win"), (xn <= 0, LOSS, "exit, loss")):
        if mask.any():
            top.scatter(_dates(xt[mask]), on_curve(xt[mask]), marker="o", s=22, color=color,
                        edgecolor="white", linewidth=0.5, zorder=4, label=label)
    top.set_ylabel("balance / equity (USD)")
    top.set_title(title or "Balance and equity")
    top.grid(alpha=0.3)
    top.legend(loc="best", fontsize=8, ncols=3)

    dd = drawdown_pct(eq, deposit_usd)
    bottom.fill_between(x, dd, 0.0, color=LOSS, alpha=0.35, lw=0)
    bottom.plot(x, dd, color=LOSS, lw=0.8)
    bottom.set_ylabel("equity drawdown (%)")
    bottom.set_xlabel(time_label(clock))
    bottom.grid(alpha=0.3)
    _time_axis(bottom)
    return _save(fig, path)


def _bars(ax, labels, sums, counts) -> None:
    colors = [WIN if v > 0 else LOSS for v in sums]
    ax.bar(np.arange(len(labels)), sums, color=colors)
    ax.set_xticks(np.arange(len(labels)), labels)
    ax.axhline(0.0, color="0.3", lw=0.8)
    ax.grid(axis="y", alpha=0.3)
    for i, (v, n) in enumerate(zip(sums, counts, strict=True)):
        if n:
            ax.annotate(str(n), (i, v), ha="center", va="bottom" if v >= 0 else "top",
                        fontsize=7, color="0.3")


def pnl_by_time_chart(exit_time_s, net_usd, path: str | os.PathLike,
                      clock: str = DEFAULT_CLOCK) -> Path:
    """Net P/L summed by the hour of day and by the weekday of the exit (bar labels: trades),
    on the bars' clock."""
    t = np.asarray(exit_time_s, dtype=np.int64)
    net = np.asarray(net_usd, dtype=np.float64)
    hour = (t // 3600) % 24
    weekday = (t // 86400 + 3) % 7  # 1970-01-01 was a Thursday (Monday = 0)
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=(2.4, 1))
    _bars(left, [str(h) for h in range(24)],
          np.bincount(hour, net, minlength=24), np.bincount(hour, minlength=24))
    left.set_xlabel(f"hour of exit ({clock})")
    left.set_ylabel("net P/L (USD)")
    left.set_title("P/L by hour of day")
    _bars(right, WEEKDAYS, np.bincount(weekday, net, minlength=7),
          np.bincount(weekday, minlength=7))
    right.set_xlabel(f"weekday of exit ({clock})")
    right.set_ylabel("net P/L (USD)")
    right.set_title("P/L by weekday")
    return _save(fig, path)


def mfe_mae_chart(mfe_usd, mae_usd, net_usd, path: str | os.PathLike) -> Path:
    """Trade result against its maximum adverse (left) and favourable (right) excursion."""
    mfe, mae = np.asarray(mfe_usd, np.float64), np.asarray(mae_usd, np.float64)
    net = np.asarray(net_usd, dtype=np.float64)
    colors = np.where(net > 0, WIN, LOSS)
    fig = Figure(figsize=(11, 4.5), layout="constrained")
    for ax, x, name in zip(fig.subplots(1, 2), (mae, mfe),
                           ("maximum adverse excursion, MAE", "maximum favourable excursion, MFE"),
                           strict=True):
        ax.scatter(x, net, c=colors, s=24, edgecolor="white", linewidth=0.5)
        ax.axhline(0.0, color="0.3", lw=0.8)
        ax.axvline(0.0, color="0.3", lw=0.8)
        ax.set_xlabel(f"{name} (USD)")
        ax.set_ylabel("trade net result (USD)")
        ax.grid(alpha=0.3)
    fig.suptitle("Excursions per trade")
    return _save(fig, path)


def equity_overlay_chart(
    labels: Sequence[str], time_s: Sequence, equity_usd: Sequence, deposit_usd: Sequence[float],
    path: str | os.PathLike, clock: str = DEFAULT_CLOCK,
) -> Path:
    """Equity curves of several runs overlaid, with their drawdowns (%) below."""
    fig = Figure(figsize=(11, 6.5), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    for label, t, e, dep in zip(labels, time_s, equity_usd, deposit_usd, strict=True):
        x = _dates(t)
        (line,) = top.plot(x, e, lw=1.2, label=label)
        bottom.plot(x, drawdown_pct(e, dep), lw=0.9, color=line.get_color())
    top.set_ylabel("equity (USD)")
    top.set_title("Equity of the compared runs")
    top.grid(alpha=0.3)
    top.legend(loc="best", fontsize=9)
    bottom.set_ylabel("equity drawdown (%)")
    bottom.set_xlabel(time_label(clock))
    bottom.grid(alpha=0.3)
    _time_axis(bottom)
    return _save(fig, path)


def training_chart(labels: Sequence[str], logs: Sequence[dict[str, list[dict[str, float]]]],
                   panels: Sequence[tuple[str, str]], path: str | os.PathLike) -> Path:
    """One panel per (stage, validation column) of ``panels``: each run's validation (markers)
    and training (thin) loss against the iteration. ``logs[i]`` are run i's study logs
    (stage -> rows); an empty column draws the stage's panel without curves."""
    fig = Figure(figsize=(11, 3.2 * len(panels)), layout="constrained")
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, (stage, vkey) in zip(axes, panels, strict=True):
        tkey = "train_" + vkey[4:] if vkey else ""
        for k, (lb, run_logs) in enumerate(zip(labels, logs, strict=True)):
            rows = run_logs.get(stage, [])
            color = f"C{k % 10}"
            for key, style, lw, alpha, kind in ((tkey, "-", 0.8, 0.5, "train"),
                                                (vkey, "o-", 1.6, 1.0, "validation")):
                pts = [(r["iteration"], r[key]) for r in rows
                       if key in r and math.isfinite(r.get(key, math.nan))]
                if pts:
                    x, y = zip(*pts, strict=True)
                    ax.plot(x, y, style, color=color, lw=lw, alpha=alpha, markersize=3,
                            label=f"{lb} {kind}")
        ax.set_title(f"{stage}: {vkey[4:] or 'loss'}")
        ax.set_xlabel("iteration (batches)")
        ax.set_ylabel("loss (MSE)")
        ax.grid(alpha=0.3)
        if ax.lines:
            positive = all(min(ln.get_ydata()) > 0 for ln in ax.lines)
            ax.set_yscale("log" if positive else "linear")
            ax.legend(fontsize=8)
    return _save(fig, path)


def monthly_bars_chart(months: Sequence[str], agent_usd: Sequence[float],
                       random_median_usd: Sequence[float], in_sample: Sequence[bool | None],
                       path: str | os.PathLike) -> Path:
    """Net profit per month: the agent's bar beside the random policy's median; in-sample
    months (on the agent's training bars) are shaded and labelled."""
    x = np.arange(len(months))
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax = fig.subplots()
    for i, flag in enumerate(in_sample):
        if flag:
            ax.axvspan(i - 0.5, i + 0.5, color="0.9", zorder=0)
    agent = np.asarray(agent_usd, dtype=np.float64)
    rnd = np.asarray(random_median_usd, dtype=np.float64)
    ax.bar(x - 0.2, agent, 0.4, color=[WIN if v > 0 else LOSS for v in agent], label="agent")
    ax.bar(x + 0.2, np.nan_to_num(rnd), 0.4, color="0.55", label="random policy, median")
    for i in np.flatnonzero(np.isnan(rnd)):
        ax.annotate("random skipped:\nno agent trade", (i + 0.2, 0.0), ha="center",
                    va="bottom", fontsize=7, color="0.4", rotation=90)
    labels = [f"{m}\nin-sample" if flag else (f"{m}\nout-of-sample" if flag is False else m)
              for m, flag in zip(months, in_sample, strict=True)]
    ax.set_xticks(x, labels, fontsize=8)
    ax.axhline(0.0, color="0.3", lw=0.8)
    ax.set_ylabel("net profit (USD)")
    ax.set_title("Net profit per month: agent vs the random policy's median "
                 "(shaded: in-sample)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)
