"""Charts of training runs: a study's loss curves (``loss_<stage>.png``) and the optimizer
comparison (``compare_<stage>/comparison.png``), drawn from study log rows."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from neurofx.atomic import atomic_path

COLORS = ("#1f4e9c", "#c62828", "#2e7d32", "#e08a00", "#6a1b9a", "#00838f", "#5d4037")


def loss_curves_chart(path: Path, panels: list[tuple[str, list[tuple[str, np.ndarray, np.ndarray,
                                                               str]]]], title: str) -> Path:
    """One panel per (title, curves); a curve is (label, iteration, value, style)."""
    fig = Figure(figsize=(8, 3.2 * len(panels)))  # no constrained layout: seconds per call
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    height = 3.2 * len(panels)
    fig.subplots_adjust(left=0.12, right=0.97, top=1 - 0.6 / height, bottom=0.5 / height,
                        hspace=0.45)
    for ax, (panel_title, curves) in zip(axes, panels, strict=True):
        positive = True
        for label, x, y, style in curves:
            ok = np.isfinite(y)
            if ok.any():
                ax.plot(x[ok], y[ok], style, label=label, markersize=3)
                positive &= bool((y[ok] > 0).all())
        if positive and ax.lines:
            ax.set_yscale("log")
        ax.set_title(panel_title)
        ax.set_xlabel("iteration (batches)")
        ax.set_ylabel("loss (train: model loss; val: MSE)")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.suptitle(title)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path


def study_log_chart(path: Path, rows: list[dict], groups: dict[str, list[str]], title: str) -> Path:
    """:func:`loss_curves_chart` of log ``rows``: one panel per group (title -> metric keys)."""
    return loss_curves_chart(path, loss_panels(rows, groups), title)


def loss_panels(rows: list[dict], groups: dict[str, list[str]]):
    """Panels for :func:`loss_curves_chart` from the log rows: group title -> metric keys."""
    it = np.array([r["iteration"] for r in rows], dtype=np.float64)
    panels = []
    for title, keys in groups.items():
        curves = []
        for key in keys:
            y = np.array([r.get(key, math.nan) if r.get(key) is not None else math.nan
                          for r in rows], dtype=np.float64)
            curves.append((key, it, y, "o-" if key.startswith("val_") else "-"))
        panels.append((title, curves))
    return panels


def optimizer_comparison_chart(path: Path, stage: str, metrics: Sequence[str],
                               names: Sequence[str], logs: Sequence[list[dict]]) -> Path:
    """``--compare-optimizers``: one panel per monitored metric of ``stage``, each optimizer's
    (``names``) validation (markers) and training (thin) curves from its log rows."""
    fig = Figure(figsize=(8, 3.4 * len(metrics)))
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(metrics), 1, squeeze=False)[:, 0]
    height = 3.4 * len(metrics)
    fig.subplots_adjust(left=0.12, right=0.97, top=1 - 0.6 / height, bottom=0.5 / height,
                        hspace=0.45)
    for ax, m in zip(axes, metrics, strict=True):
        for k, (name, rows) in enumerate(zip(names, logs, strict=True)):
            color = COLORS[k % len(COLORS)]
            for key, style, lw in ((f"train_{m}", "-", 0.8), (f"val_{m}", "o-", 1.6)):
                pts = [(r["iteration"], r[key]) for r in rows
                       if r.get(key) is not None and math.isfinite(r[key])]
                if pts:
                    x, y = np.array(pts).T
                    label = f"{name} {'validation' if key.startswith('val') else 'train'}"
                    ax.plot(x, y, style, color=color, lw=lw, markersize=3, label=label,
                            alpha=1.0 if key.startswith("val") else 0.5)
        ax.set_title(f"{stage} stage: {m}" if m != stage else f"{m} stage")
        ax.set_xlabel("iteration (batches)")
        ax.set_ylabel("loss (MSE, target units)")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.set_yscale("log" if all(ln.get_ydata().min() > 0 for ln in ax.lines) else "linear")
            ax.legend(fontsize=8)
    fig.suptitle(f"neurofx study {stage}: optimizer comparison")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path
