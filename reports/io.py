"""Run files: metrics.json, trades.csv, deals.csv and series.npz, written atomically.

deals.csv is the format of :mod:`neurofx.deals` (its ``write_deals_csv``/``read_deals_csv``).

metrics.json is versioned (``format``/``version``); unknown versions are rejected. Non-finite
floats are stored JSON-safely: ``nan`` -> ``null``, ``inf`` -> ``"inf"``, ``-inf`` -> ``"-inf"``,
and read back to the same floats. series.npz holds the per-bar arrays (no pickles).

metrics.json also names the clock of the bar times (``clock``, e.g. ``broker time,
Europe/Athens``); files written before it was recorded read back as :data:`DEFAULT_CLOCK`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neurofx.atomic import atomic_path, json_safe, write_json_atomic, write_text_atomic
from neurofx.deals import Deal, read_deals_csv
from neurofx.errors import NeurofxError
from neurofx.reports.metrics import INT_METRICS, METRIC_FIELDS, BarSeries, Metrics
from neurofx.reports.trades import EXCURSION_COLUMNS, TRADE_COLUMNS, TradeTable

METRICS_JSON = "metrics.json"
TRADES_CSV = "trades.csv"
DEALS_CSV = "deals.csv"
SERIES_NPZ = "series.npz"
REPORT_HTML = "report.html"
METRICS_FORMAT = "neurofx.metrics"
METRICS_VERSION = 1
SERIES_VERSION = 1
# bar times are the bar file's naive timestamps: broker time unless data.tz converted them
DEFAULT_CLOCK = "broker time"


def _float_from_json(value, where: str) -> float:
    if value is None:
        return float("nan")
    if value in ("inf", "-inf"):
        return float(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise NeurofxError(f"{where}: {value!r} is not a number; expected a number, null or 'inf'")


@dataclass(frozen=True)
class MetricsFile:
    title: str
    metrics: Metrics
    extra: dict
    clock: str = DEFAULT_CLOCK


def write_metrics(path: str | os.PathLike, metrics: Metrics, title: str,
                  extra: Mapping | None = None, clock: str = DEFAULT_CLOCK) -> Path:
    doc = {
        "format": METRICS_FORMAT,
        "version": METRICS_VERSION,
        "title": title,
        "clock": clock,
        "metrics": json_safe(metrics.as_dict(), "metrics"),
        "extra": json_safe(dict(extra or {}), "extra"),
    }
    return write_json_atomic(path, doc, sort_keys=False)  # keys in the order above


# metrics added to version 1 later: a metrics.json written before reads them as nan
_LATER_METRICS = frozenset({"average_consecutive_wins_exact", "average_consecutive_losses_exact"})


def read_metrics(path: str | os.PathLike) -> MetricsFile:
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NeurofxError(f"{path}: not found; run 'neurofx test' to create the run") from None
    except json.JSONDecodeError as exc:
        raise NeurofxError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg}); "
                           "regenerate it with 'neurofx report'") from None
    if not isinstance(doc, dict) or doc.get("format") != METRICS_FORMAT:
        raise NeurofxError(f"{path}: field 'format' is not {METRICS_FORMAT!r}; "
                           "this is not a neurofx metrics file")
    if doc.get("version") != METRICS_VERSION:
        raise NeurofxError(f"{path}: field 'version' is {doc.get('version')!r}, this neurofx "
                           f"reads version {METRICS_VERSION}; regenerate the run's report")
    raw = doc.get("metrics")
    if not isinstance(raw, dict):
        raise NeurofxError(f"{path}: field 'metrics' is missing; regenerate the run's report")
    values = {}
    for name in METRIC_FIELDS:
        if name not in raw and name in _LATER_METRICS:
            values[name] = math.nan
            continue
        if name not in raw:
            raise NeurofxError(f"{path}: field 'metrics.{name}' is missing; "
                               "regenerate the run's report")
        v = raw[name]
        if name in INT_METRICS:
            if not isinstance(v, int) or isinstance(v, bool):
                raise NeurofxError(f"{path}: field 'metrics.{name}' is {v!r}, expected an integer")
            values[name] = v
        else:
            values[name] = _float_from_json(v, f"{path}: field 'metrics.{name}'")
    clock = doc.get("clock", DEFAULT_CLOCK)
    if not isinstance(clock, str) or not clock:
        raise NeurofxError(f"{path}: field 'clock' is {clock!r}, expected the name of the bars' "
                           "clock; regenerate the run's report")
    return MetricsFile(str(doc.get("title", "")), Metrics(**values),
                       dict(doc.get("extra") or {}), clock)


def _write_csv(path: str | os.PathLike, header: Iterable[str], rows: Iterable[Iterable]) -> Path:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(list(header))
    w.writerows(rows)
    return write_text_atomic(path, buf.getvalue())


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NeurofxError(f"{path}: not found; run 'neurofx test' to create the run") from None
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise NeurofxError(f"{path}: empty file; expected a header line")
    return rows[0], rows[1:]


def _parse(path: Path, line: int, name: str, text: str, kind):
    try:
        return kind(text)
    except ValueError:
        raise NeurofxError(f"{path}:{line}: field '{name}' is {text!r}, expected "
                           f"{kind.__name__}") from None


def write_trades_csv(path: str | os.PathLike, trades: TradeTable) -> Path:
    cols = trades.columns()
    out = {k: v.tolist() for k, v in cols.items()}
    out["direction"] = ["long" if d > 0 else "short" for d in cols["direction"]]
    return _write_csv(path, cols.keys(), zip(*out.values(), strict=True))


_TRADE_INTS = {"ticket", "position_id", "entry_time_s", "exit_time_s"}


def read_trades_csv(path: str | os.PathLike) -> TradeTable:
    path = Path(path)
    header, rows = _read_csv(path)
    has_exc = all(c in header for c in EXCURSION_COLUMNS)
    expected = list(TRADE_COLUMNS + (EXCURSION_COLUMNS if has_exc else ()))
    if header != expected:
        raise NeurofxError(f"{path}:1: header is {','.join(header)}; expected "
                           f"{','.join(expected)}")
    cols: dict[str, list] = {c: [] for c in header}
    for ln, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise NeurofxError(f"{path}:{ln}: {len(row)} fields, expected {len(header)}")
        for name, text in zip(header, row, strict=True):
            if name == "direction":
                if text not in ("long", "short"):
                    raise NeurofxError(f"{path}:{ln}: field 'direction' is {text!r}; "
                                       "use 'long' or 'short'")
                cols[name].append(1 if text == "long" else -1)
            elif name == "reason":
                cols[name].append(text)
            else:
                cols[name].append(_parse(path, ln, name, text,
                                         int if name in _TRADE_INTS else float))
    kw = {}
    for name, vals in cols.items():
        if name == "reason":
            kw[name] = np.array(vals, dtype=object)
        elif name == "direction":
            kw[name] = np.array(vals, dtype=np.int8)
        else:
            kw[name] = np.array(vals, dtype=np.int64 if name in _TRADE_INTS else np.float64)
    return TradeTable(**kw)


_SERIES_KEYS = ("time_s", "balance_usd", "equity_usd", "margin_level_pct")


def write_series(path: str | os.PathLike, series: BarSeries) -> Path:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, version=np.int64(SERIES_VERSION),
                 **{k: getattr(series, k) for k in _SERIES_KEYS})
    return Path(path)


def read_series(path: str | os.PathLike) -> BarSeries:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            version = int(z["version"]) if "version" in z.files else None
            if version != SERIES_VERSION:
                raise NeurofxError(f"{path}: field 'version' is {version!r}, this neurofx reads "
                                   f"version {SERIES_VERSION}; rerun 'neurofx test'")
            missing = [k for k in _SERIES_KEYS if k not in z.files]
            if missing:
                raise NeurofxError(f"{path}: array '{missing[0]}' is missing; rerun 'neurofx test'")
            return BarSeries(*(z[k] for k in _SERIES_KEYS))
    except FileNotFoundError:
        raise NeurofxError(f"{path}: not found; run 'neurofx test' to create the run") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise NeurofxError(f"{path}: not a readable .npz file ({exc}); rerun 'neurofx test'"
                           ) from None


@dataclass(frozen=True)
class RunData:
    """Everything a report of one run is made from, as read back from its folder."""

    run_dir: Path
    title: str
    metrics: Metrics
    extra: dict
    series: BarSeries
    trades: TradeTable
    deals: list[Deal]
    clock: str = DEFAULT_CLOCK  # the clock the bar times are in (axis labels, header)


def load_run(run_dir: str | os.PathLike) -> RunData:
    """Read a run folder written by ``write_report``."""
    d = Path(run_dir)
    if not d.is_dir():
        raise NeurofxError(f"{d}: not a run folder; pass a folder written by 'neurofx test'")
    mf = read_metrics(d / METRICS_JSON)
    return RunData(d, mf.title, mf.metrics, mf.extra, read_series(d / SERIES_NPZ),
                   read_trades_csv(d / TRADES_CSV), read_deals_csv(d / DEALS_CSV), mf.clock)
