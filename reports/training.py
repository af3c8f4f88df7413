"""The training part of a run comparison: the runs' study logs (``study_<stage>.csv``, written
by ``neurofx study``) as loss curves and a table of final and best validation losses, and their
optimizer comparisons (``compare_<stage>/comparison.csv``) as tables.

:func:`read_study_log` is the one reader of the study logs.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from html import escape
from pathlib import Path

from neurofx.errors import NeurofxError
from neurofx.reports import charts
from neurofx.reports.html import image_tag, wide_table
from neurofx.reports.key_figures import format_figure

STUDY_STAGES = ("encoder", "actor")


def read_study_log(path: str | Path) -> list[dict[str, float]]:
    """Rows of a study CSV log (``study_<stage>.csv``) as floats; blank cells are nan."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = []
        for ln, row in enumerate(csv.DictReader(fh), start=2):
            try:
                rows.append({k: float(v) if v not in ("", None) else math.nan
                             for k, v in row.items() if k})
            except ValueError:
                raise NeurofxError(f"{path}:{ln}: a value is not a number; rerun "
                                   "'neurofx study' to rewrite the log") from None
    return rows


def training_logs(run_folder: Path) -> dict[str, list[dict[str, float]]]:
    """The study logs of a run folder: stage -> rows (only stages with a log)."""
    return {st: read_study_log(run_folder / f"study_{st}.csv") for st in STUDY_STAGES
            if (run_folder / f"study_{st}.csv").is_file()}


def training_folder(report_dir: Path) -> Path:
    """The run folder of a report folder (the parent of a ``test`` folder)."""
    d = Path(report_dir)
    return d.parent if d.name == "test" else d


def training_section(report_dirs: Sequence[Path], labels: Sequence[str], out: Path) -> str:
    """HTML of the training comparison (loss curves + final/best validation losses and the
    runs' optimizer comparisons), the body of the comparison page's "Training" section; ''
    when no run has study logs. Writes ``out/training.png``."""
    folders = [training_folder(d) for d in report_dirs]
    logs = [training_logs(f) for f in folders]
    tables = [(lb, p) for lb, f in zip(labels, folders, strict=True)
              for p in sorted(f.glob("compare_*/comparison.csv"))]
    if not any(logs) and not tables:
        return ""
    parts = []
    if any(logs):
        png = charts.training_chart(labels, logs, _panels(logs), out / "training.png")
        parts.append(image_tag(png.read_bytes(), "Training loss curves"))
        parts.append(_summary_table(labels, logs))
    for lb, p in tables:
        parts.append(f"<h3>{escape(lb)}: optimizer comparison ({escape(p.parent.name)})</h3>"
                     + csv_table(p))
    return "\n".join(parts)


def _panels(logs) -> list[tuple[str, str]]:
    """(stage, validation column) of every validated loss in the logs, in first-seen order;
    without any, one panel per stage that has a log."""
    keys = []
    for run_logs in logs:
        for stage, rows in run_logs.items():
            for k in (rows[0] if rows else {}):
                if k.startswith("val_") and (stage, k) not in keys:
                    keys.append((stage, k))
    return keys or [(st, "") for st in STUDY_STAGES if any(st in g for g in logs)]


def _summary_table(labels: Sequence[str], logs) -> str:
    head = ("<tr><th class=\"l\">run</th><th class=\"l\">stage</th><th>iterations</th>"
            "<th class=\"l\">loss</th><th>final validation</th><th>best validation</th>"
            "<th>wall time (s)</th></tr>")
    rows = []
    for lb, run_logs in zip(labels, logs, strict=True):
        for stage, log in run_logs.items():
            last = log[-1] if log else {}
            for key in [k for k in last if k.startswith("val_")] or [""]:
                vals = [r[key] for r in log if key and math.isfinite(r.get(key, math.nan))]
                final = vals[-1] if vals else math.nan
                best = min(vals) if vals else math.nan
                rows.append(
                    f'<tr><td class="l">{escape(lb)}</td><td class="l">{stage}</td>'
                    f"<td>{format_figure(last.get('iteration', math.nan), '.0f')}</td>"
                    f'<td class="l">{escape(key[4:])}</td>'
                    f'<td>{format_figure(final, ".6g")}</td>'
                    f"<td>{format_figure(best, '.6g')}</td>"
                    f"<td>{format_figure(last.get('wall_s', math.nan), '.1f')}</td></tr>")
    return wide_table(f"<table>{head}{''.join(rows)}</table>")


def csv_table(path: Path) -> str:
    """A CSV file as an HTML table (first row = header), every cell escaped."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        return '<p class="muted">empty table</p>'
    head = "".join(f"<th>{escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>"
                   for r in rows[1:])
    return wide_table(f"<table><tr>{head}</tr>{body}</table>")
