"""`--compare-optimizers`: the same stage, model, initial weights and sample sequence, trained
once per optimizer; a table (CSV + Markdown) and one PNG of the overlaid loss curves.

Every optimizer's run goes to ``<run>/compare_<stage>/<optimizer>/`` (its own log, models and
checkpoints); the table and the PNG to ``<run>/compare_<stage>/``. Same initial weights: the
models are built from the same description (its seeds). Same samples: the sampler RNG starts
from the same ``--seed`` and the stage draws nothing else from it.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import replace
from pathlib import Path

from neurofx.atomic import write_text_atomic
from neurofx.errors import NeurofxError
from neurofx.reports.study_charts import optimizer_comparison_chart

from .settings import Settings
from .stage import Stage
from .trainer import Summary, Trainer


def parse_names(text: str) -> list[str]:
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    if len(names) < 2 or len(set(names)) != len(names):
        raise NeurofxError(f"--compare-optimizers {text!r}: give two or more different names, "
                           f"e.g. adam,adam-mini")
    return names


def comparison_stages(settings: Settings, data, names: list[str], make_stage) -> list[Stage]:
    """``make_stage(settings with optimizer n, data)`` for every name ``n``, each writing into
    ``<run>/compare_<stage>/<n>/``; bad names or hyper-parameters fail here, before any file."""
    folder = settings.run_dir / f"compare_{settings.stage}"
    return [make_stage(replace(settings, optimizer=n, out=str(folder / n)), data) for n in names]


def compare(settings: Settings, data, names: list[str], make_stage,
            on_iteration=None, stages: list[Stage] | None = None) -> tuple[list[dict], Path]:
    """Train ``make_stage(settings with optimizer n, data)`` once per name ``n`` with the
    :class:`Trainer` (``stages``: those of :func:`comparison_stages`, when already built).
    Every stage is built and every output folder checked (:meth:`Trainer.prepare`) first, so
    bad names or a checkpointed folder fail before anything trains."""
    folder = settings.run_dir / f"compare_{settings.stage}"
    if stages is None:
        stages = comparison_stages(settings, data, names, make_stage)
    trainers = [Trainer(stage, on_iteration) for stage in stages]
    for trainer in trainers:
        trainer.prepare()
    summaries: list[Summary] = [trainer.run() for trainer in trainers]
    return write_comparison(folder, names, summaries, stages[0]), folder


def write_comparison(folder: Path, names: list[str], summaries: list[Summary], stage: Stage
                     ) -> list[dict]:
    """The comparison table (CSV + Markdown) and chart of the optimizers' runs; its rows."""
    rows = table_rows(names, summaries, stage.parts)
    write_table(folder, rows)
    metrics = [p.monitor for p in stage.parts.values() if p.monitor]
    optimizer_comparison_chart(folder / "comparison.png", stage.name, metrics, names,
                               [s.rows for s in summaries])
    return rows


def table_rows(names, summaries: list[Summary], parts) -> list[dict]:
    monitors = [p.monitor for p in parts.values() if p.monitor]
    adam = next((s.state_bytes for n, s in zip(names, summaries, strict=True) if n == "adam"),
                None)
    rows = []
    for name, s in zip(names, summaries, strict=True):
        row = {"optimizer": name}
        for m in monitors:
            row[f"final_val_{m}"] = s.final.get(m)
            vals = [r[f"val_{m}"] for r in s.rows if r.get(f"val_{m}") is not None]
            row[f"best_val_{m}"] = min(vals) if vals else None
        row.update({"iterations": s.iterations, "samples": s.samples, "wall_s": s.wall_s,
                    "samples_per_s": s.samples_per_s, "optimizer_state_bytes": s.state_bytes,
                    "state_vs_adam": s.state_bytes / adam if adam else None})
        rows.append(row)
    return rows


def _text(value, digits: int = 6) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def write_table(folder: Path, rows: list[dict]) -> None:
    cols = list(rows[0])
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        w.writerow([_text(r[c], 10) for c in cols])
    write_text_atomic(folder / "comparison.csv", buf.getvalue())
    write_text_atomic(folder / "comparison.md", markdown(rows))


def markdown(rows: list[dict]) -> str:
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = []
        for c in cols:
            v = r[c]
            if c == "state_vs_adam":
                cells.append(_text(v, 3))
            elif c in ("wall_s", "samples_per_s"):
                cells.append("" if v is None else f"{v:.1f}")
            else:
                cells.append(_text(v, 4))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
