"""The rounds of a ``neurofx train`` run (``runs/<name>/rounds.csv``): one row per round of
(study actor -> research with the trained actor), its table and its chart for the run's test
report. docs/train.md, "rounds.csv".
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Mapping, Sequence
from html import escape
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from neurofx.atomic import atomic_path, write_text_atomic
from neurofx.errors import NeurofxError
from neurofx.reports.baselines import csv_number, read_csv_rows

ROUNDS_CSV = "rounds.csv"
ROUNDS_PNG = "rounds.png"
COUNTS = ("round", "passes", "kept", "discarded", "store_trajectories")
LOSSES = ("val_encoder", "val_critic", "val_actor", "val_q")
COLUMNS = ("round", "passes", "kept", "discarded", "min_profit_usd", "profit_min_usd",
           "profit_median_usd", "profit_max_usd", "trades_median", "store_trajectories",
           *LOSSES, "wall_s")


def round_row(number: int, profits: Sequence[float], trades: Sequence[int], kept: int,
              min_profit_usd: float, store_trajectories: int, losses: Mapping[str, float | None],
              wall_s: float) -> dict[str, float]:
    """One row of :data:`COLUMNS`: the round's research passes (their profits in USD, their
    trade counts (closing deals) and how many the store kept under ``min_profit_usd``), the
    store's size after the round,
    the validation losses of its studies (``losses``: :data:`LOSSES` keys, None or missing =
    not measured) and its wall seconds. No pass: the profit figures are nan."""
    p = np.asarray(profits, dtype=np.float64)
    stats = ((p.min(), np.median(p), p.max(), float(np.median(trades))) if len(p)
             else (math.nan,) * 4)
    return {"round": number, "passes": len(p), "kept": kept, "discarded": len(p) - kept,
            "min_profit_usd": float(min_profit_usd),
            **dict(zip(("profit_min_usd", "profit_median_usd", "profit_max_usd", "trades_median"),
                       (float(x) for x in stats), strict=True)),
            "store_trajectories": store_trajectories,
            **{k: math.nan if losses.get(k) is None else float(losses[k]) for k in LOSSES},
            "wall_s": float(wall_s)}


def _cell(key: str, value) -> str:
    if key in COUNTS:
        return str(int(value))
    return "" if math.isnan(value) else csv_number(value)


def write_rounds(path: str | Path, rows: Sequence[Mapping[str, float]]) -> Path:
    """``rounds.csv``: :data:`COLUMNS`, one line per row (nan as an empty cell), atomically."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in rows:
        w.writerow([_cell(k, r[k]) for k in COLUMNS])
    return write_text_atomic(path, buf.getvalue())


def read_rounds(path: str | Path) -> list[dict[str, float]] | None:
    """The rows of a ``rounds.csv`` (empty cells nan), or None when there is no such file."""
    path = Path(path)
    rows = read_csv_rows(path, COLUMNS, "'neurofx train --resume'")
    if rows is None:
        return None
    out = []
    for n, row in enumerate(rows[1:], start=2):
        try:
            out.append({k: (math.nan if v == "" else int(v) if k in COUNTS else float(v))
                        for k, v in zip(COLUMNS, row, strict=True)})
        except ValueError as exc:
            raise NeurofxError(f"{path}:{n}: expected {len(COLUMNS)} numbers ({exc}); rerun "
                               "'neurofx train --resume' to rewrite it") from None
    return out


def rounds_chart(rows: Sequence[Mapping[str, float]], path: str | Path) -> Path:
    """Top: each round's research pass profits (median, min .. max) with the keep threshold
    and kept/passes; bottom: the validation losses of the round's studies."""
    x = np.array([r["round"] for r in rows], dtype=np.float64)
    fig = Figure(figsize=(8, 6.4))
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1)
    fig.subplots_adjust(left=0.12, right=0.97, top=0.89, bottom=0.08, hspace=0.45)
    med = np.array([r["profit_median_usd"] for r in rows])
    lo = med - np.array([r["profit_min_usd"] for r in rows])
    hi = np.array([r["profit_max_usd"] for r in rows]) - med
    top.errorbar(x, med, yerr=[lo, hi], fmt="o-", color="#1f4e9c", capsize=4,
                 label="pass profit: median, min .. max")
    top.plot(x, [r["min_profit_usd"] for r in rows], "--", color="#c62828",
             label="keep threshold")
    for xi, r, y in zip(x, rows, med, strict=True):
        if math.isfinite(y):
            top.annotate(f"kept {r['kept']}/{r['passes']}", (xi, y), textcoords="offset points",
                         xytext=(6, 6), fontsize=8)
    top.axhline(0.0, color="0.3", lw=0.8)
    top.set_title("research with the round's actor")
    top.set_ylabel("profit per pass (USD)")
    top.legend(fontsize=8)
    positive = True
    for key, color in zip(LOSSES[:3], ("#2e7d32", "#e08a00", "#6a1b9a"), strict=True):
        y = np.array([r[key] for r in rows], dtype=np.float64)
        ok = np.isfinite(y)
        if ok.any():
            bottom.plot(x[ok], y[ok], "o-", color=color, label=key, markersize=4)
            positive &= bool((y[ok] > 0).all())
    if bottom.lines:
        bottom.set_yscale("log" if positive else "linear")
        bottom.legend(fontsize=8)
    bottom.set_title("validation losses (MSE, standardised units)")
    bottom.set_xlabel("round")
    for ax in (top, bottom):
        ax.set_xticks(x)
        ax.set_xlim(x.min() - 0.5, x.max() + 0.5)
        ax.grid(alpha=0.3)
    fig.suptitle("neurofx train: rounds")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return Path(path)


def _shown(key: str, value) -> str:
    if key in COUNTS:
        return str(int(value))
    if math.isnan(value):
        return "n/a"
    if key.endswith("_usd"):
        return f"{value:+,.2f}"
    return f"{value:.1f}" if key in ("trades_median", "wall_s") else f"{value:.4g}"


def rounds_html(rows: Sequence[Mapping[str, float]], chart_png: bytes | None = None,
                image: Callable[[bytes, str], str] | None = None) -> str:
    """The report's table of the rounds (and chart: ``image(png, alt)`` makes its tag)."""
    head = "".join(f"<th>{escape(k)}</th>" for k in COLUMNS)
    body = "".join(f'<tr id="round-{int(r["round"])}">'
                   + "".join(f"<td>{escape(_shown(k, r[k]))}</td>" for k in COLUMNS) + "</tr>"
                   for r in rows)
    out = [f'<div class="wide"><table><tr>{head}</tr>{body}</table></div>',
           f'<p class="muted">One row per round of <code>neurofx train</code>: the actor and '
           f"critic studied on the store, then research with that actor (its VAE head "
           f"exploring) into the same store; a pass is kept if its profit &gt;= "
           f"min_profit_usd. Profits and trades are per research pass; {ROUNDS_CSV} in the run "
           f"folder holds every figure (docs/train.md).</p>"]
    if chart_png is not None and image is not None:
        out.append(image(chart_png, "Research profits and validation losses per round"))
    return "\n".join(out)


def rounds_section(report_dir: str | Path, image: Callable[[bytes, str], str]
                   ) -> list[tuple[str, str]]:
    """The "Training rounds" section of a run's report when its run folder (the parent of
    ``report_dir``) has a ``rounds.csv``: writes ``report_dir/rounds.png`` and returns
    ``[(title, HTML)]``; ``[]`` otherwise."""
    rows = read_rounds(Path(report_dir).parent / ROUNDS_CSV)
    if not rows:
        return []
    png = rounds_chart(rows, Path(report_dir) / ROUNDS_PNG).read_bytes()
    return [("Training rounds", rounds_html(rows, png, image))]
