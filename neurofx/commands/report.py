"""`neurofx report RUN [RUN ...]`: regenerate one run's report, or compare several.

A RUN is a run name (its report is ``<runs.root>/NAME/test/``) or a folder holding a
metrics.json. One RUN: the report is rebuilt from the saved deals.csv, series.npz and
trades.csv (metrics.json comes out identical). Several: a comparison (equity curves overlaid,
metrics side by side with differences to the first run, and the training logs of ``neurofx
study`` when the runs have them). See docs/testing-and-reports.md.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import math
import re
import webbrowser
from html import escape
from pathlib import Path

from neurofx.config import add_config_arguments, load_config
from neurofx.errors import NeurofxError

STUDY_STAGES = ("encoder", "actor")
# (label, metrics field, format) of the terminal comparison
KEY_FIGURES = (
    ("net profit (USD)", "total_net_profit_usd", "+,.2f"),
    ("final balance (USD)", "final_balance_usd", ",.2f"),
    ("trades", "total_trades", "d"),
    ("profit trades (%)", "profit_trades_pct", ".1f"),
    ("profit factor", "profit_factor", ".2f"),
    ("recovery factor", "recovery_factor", ".2f"),
    ("sharpe (daily, annualised)", "sharpe_daily_annualised", ".2f"),
    ("equity drawdown max (USD)", "equity_drawdown_maximal_usd", ",.2f"),
    ("equity drawdown max (%)", "equity_drawdown_maximal_pct", ".2f"),
)


def add_arguments(parser) -> None:
    parser.add_argument("runs", nargs="*", metavar="RUN",
                        help="run name (report in <runs.root>/NAME/test/) or a report folder")
    parser.add_argument("--mt5", metavar="REPORT", default=None,
                        help="compare neurofx's statistics of an MT5 Trade History Report's "
                             "(.xlsx/.html) deals with its Results (saved to --out, default "
                             "<runs.root>/mt5/<report name>)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="output folder (default: one run in place; several: "
                        "<runs.root>/compare/<A>_vs_<B>)")
    parser.add_argument("--open", action="store_true",
                        help="open the HTML in the default web browser")
    add_config_arguments(parser, "runs.root=elsewhere")


def resolve_report_dir(runs_root: str | Path, run: str) -> Path:
    """The folder holding RUN's metrics.json: a folder as given (or its ``test/``), else
    ``<runs_root>/RUN/test`` or ``<runs_root>/RUN``."""
    p = Path(run)
    root = Path(runs_root)
    for cand in (p, p / "test", root / run / "test", root / run):
        if (cand / "metrics.json").is_file():
            return cand
    raise NeurofxError(f"{run}: no report found (looked for metrics.json in {root / run / 'test'}"
                       f" and {p}); run 'neurofx test --run {p.name or run}' first")


def run_label(report_dir: Path) -> str:
    """Short name of a run: its run folder's name (the parent of a ``test`` folder)."""
    d = report_dir.resolve()
    return d.parent.name if d.name == "test" else d.name


def run(args) -> int:
    from neurofx.reports.io import load_run

    cfg = load_config(args.config, args.set)
    root = cfg["runs"]["root"]
    if args.mt5:
        from neurofx.reports.mt5_results import run_mt5_comparison

        return run_mt5_comparison(args.mt5, args.out, root)
    if not args.runs:
        raise NeurofxError("report: name a RUN (or several), or pass --mt5 REPORT.xlsx|.html")
    folders = [resolve_report_dir(root, r) for r in args.runs]
    runs = [load_run(f) for f in folders]
    if len(runs) == 1:
        path = regenerate(runs[0], Path(args.out) if args.out else folders[0])
    else:
        labels = _unique([run_label(f) for f in folders])
        out = Path(args.out) if args.out else (
            Path(root) / "compare" / _safe("_vs_".join(labels)))
        path = compare(runs, labels, out)
    print(f"report: {path}")
    if args.open:
        webbrowser.open(path.resolve().as_uri())
    return 0


def regenerate(data, out: Path) -> Path:
    """Rebuild a report from a loaded run (``RunData``) into ``out``; prints its key figures."""
    from neurofx.reports.html import write_report
    from neurofx.reports.metrics import summary_lines

    path = write_report(out, data.deals, data.series, data.metrics.initial_deposit_usd,
                        data.title, data.extra, excursions=data.trades.excursions(),
                        clock=data.clock)
    print(data.title)
    for line in summary_lines(data.metrics):
        print(line)
    return path


def compare(runs, labels: list[str], out: Path) -> Path:
    """Write the comparison of ``runs`` (``RunData``) into ``out``; prints the key figures."""
    from neurofx.reports.html import write_comparison

    short = [dataclasses.replace(r, title=lb) for r, lb in zip(runs, labels, strict=True)]
    section = training_section([r.run_dir for r in runs], labels, out)
    path = write_comparison(out, short, sections=[("Training", section)] if section else ())
    for line in comparison_lines(labels, [r.metrics for r in runs]):
        print(line)
    if section:
        print(f"training logs compared: {out / 'training.png'}")
    return path


def _fmt(value, fmt: str) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return format(value, fmt)


def comparison_lines(labels: list[str], metrics: list) -> list[str]:
    """A terminal table of the key figures: one column per run, then each run minus the first."""
    head = list(labels) + [f"{lb} - {labels[0]}" for lb in labels[1:]]
    rows = []
    for name, field, fmt in KEY_FIGURES:
        vals = [getattr(m, field) for m in metrics]
        diff_fmt = fmt if fmt.startswith("+") else "+" + fmt
        diffs = [_fmt(v - vals[0], diff_fmt) for v in vals[1:]]
        rows.append([name] + [_fmt(v, fmt) for v in vals] + diffs)
    width0 = max(len(r[0]) for r in rows)
    widths = [max(len(h), *(len(r[i + 1]) for r in rows)) for i, h in enumerate(head)]
    lines = [" " * width0 + "".join(f"  {h:>{w}}" for h, w in zip(head, widths, strict=True))]
    for r in rows:
        lines.append(f"{r[0]:<{width0}}" + "".join(f"  {c:>{w}}" for c, w
                                                   in zip(r[1:], widths, strict=True)))
    return lines


# ------------------------------------------------------------------ training comparison
def _read_log(path: Path) -> list[dict[str, float]]:
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
    return {st: _read_log(run_folder / f"study_{st}.csv") for st in STUDY_STAGES
            if (run_folder / f"study_{st}.csv").is_file()}


def _training_folder(report_dir: Path) -> Path:
    d = Path(report_dir)
    return d.parent if d.name == "test" else d


def training_section(report_dirs, labels: list[str], out: Path) -> str:
    """HTML of the training comparison (loss curves + final/best validation losses and the
    runs' optimizer comparisons), the body of the comparison page's "Training" section; ''
    when no run has study logs. Writes ``out/training.png``."""
    folders = [_training_folder(d) for d in report_dirs]
    logs = [training_logs(f) for f in folders]
    tables = [(lb, p) for lb, f in zip(labels, folders, strict=True)
              for p in sorted(f.glob("compare_*/comparison.csv"))]
    if not any(logs) and not tables:
        return ""
    parts = []
    if any(logs):
        png = training_chart(labels, logs, out / "training.png")
        b64 = base64.b64encode(png.read_bytes()).decode("ascii")
        parts.append(f'<img alt="Training loss curves" src="data:image/png;base64,{b64}">')
        parts.append(_summary_table(labels, logs))
    for lb, p in tables:
        parts.append(f"<h3>{escape(lb)}: optimizer comparison ({escape(p.parent.name)})</h3>"
                     + _csv_table(p))
    return "\n".join(parts)


def _val_keys(logs) -> list[tuple[str, str]]:
    keys = []
    for run_logs in logs:
        for stage, rows in run_logs.items():
            for k in (rows[0] if rows else {}):
                if k.startswith("val_") and (stage, k) not in keys:
                    keys.append((stage, k))
    return keys


def training_chart(labels: list[str], logs, path: Path) -> Path:
    """One panel per (stage, validation metric): each run's validation (markers) and training
    (thin) loss against the iteration."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from neurofx.reports.io import atomic_path

    keys = _val_keys(logs) or [(st, "") for st in STUDY_STAGES if any(st in g for g in logs)]
    fig = Figure(figsize=(11, 3.2 * len(keys)), layout="constrained")
    axes = fig.subplots(len(keys), 1, squeeze=False)[:, 0]
    for ax, (stage, vkey) in zip(axes, keys, strict=True):
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
    FigureCanvasAgg(fig)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path


def _summary_table(labels, logs) -> str:
    from neurofx.reports.html import wide_table

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
                    f"<td>{_fmt(last.get('iteration', math.nan), '.0f')}</td>"
                    f'<td class="l">{escape(key[4:])}</td><td>{_fmt(final, ".6g")}</td>'
                    f"<td>{_fmt(best, '.6g')}</td>"
                    f"<td>{_fmt(last.get('wall_s', math.nan), '.1f')}</td></tr>")
    return wide_table(f"<table>{head}{''.join(rows)}</table>")


def _csv_table(path: Path) -> str:
    from neurofx.reports.html import wide_table

    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        return '<p class="muted">empty table</p>'
    head = "".join(f"<th>{escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>"
                   for r in rows[1:])
    return wide_table(f"<table><tr>{head}</tr>{body}</table>")


def _unique(labels: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for lb in labels:
        seen[lb] = seen.get(lb, 0) + 1
        out.append(lb if seen[lb] == 1 else f"{lb}-{seen[lb]}")
    return out


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name)[:120] or "comparison"
