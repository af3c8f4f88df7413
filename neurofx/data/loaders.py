"""Read bar files (MT5 terminal export, MT5 Python-API CSV, generic CSV, parquet) into one shape.

``load_bars`` returns a DataFrame indexed by ``time`` (bar OPEN time, tz-naive, datetime64[ns],
in the requested clock) with float64 columns ``open high low close tick_volume spread``.
See docs/data.md for formats, time zones and the repair policies.
"""

from __future__ import annotations

import gzip
import importlib.resources
import importlib.util
import re
import zoneinfo
from pathlib import Path

import numpy as np
import pandas as pd

from neurofx.data.validate import (
    BAR_COLUMNS,
    PRICE_COLUMNS,
    BarDataError,
    Issue,
    Parsed,
    check_and_repair,
)
from neurofx.errors import NeurofxError

BUNDLED_NAME = "EURUSD_H1.csv.gz"
BUNDLED_SOURCE_TZ = "Europe/Athens"
FORMATS = ("auto", "mt5", "mt5-api", "csv", "parquet")
MAP_KEYS = ("time", "date") + BAR_COLUMNS

# normalised header name -> canonical column; the first alias present in the header wins
ALIASES = {
    "date": ("date", "day"),
    "time": ("time", "datetime", "date_time", "timestamp", "gmt_time", "local_time"),
    "open": ("open", "o"),
    "high": ("high", "h"),
    "low": ("low", "l"),
    "close": ("close", "c"),
    "tick_volume": ("tick_volume", "tickvol", "tickvolume", "tick_vol", "volume", "vol"),
    "spread": ("spread",),
}
TIME_FORMATS = (
    "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S.%f",
    "%Y.%m.%d %H:%M:%S", "%Y.%m.%d %H:%M", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M",
    "%d.%m.%Y %H:%M:%S.%f", "%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%Y%m%d %H%M%S",
    "%Y-%m-%d", "%Y.%m.%d", "%Y/%m/%d", "%d.%m.%Y", "%Y%m%d",
)
TIME_HELP = "use YYYY-MM-DD HH:MM:SS, YYYY.MM.DD HH:MM:SS or Unix seconds"
_NAN_WORDS = frozenset({"nan", "-nan", "+nan", "na", "n/a", "null", "none", "#n/a"})
_UNIX = re.compile(r"^\d+(\.0*)?$")


def bundled_path() -> Path:
    """Path of the bundled EURUSD H1 file (package data)."""
    ref = importlib.resources.files("neurofx.data").joinpath(BUNDLED_NAME)
    return Path(str(ref))


def parse_column_map(text: str) -> dict[str, str]:
    """``time=Date,open=Open`` -> ``{"time": "Date", "open": "Open"}`` (CLI ``--columns``)."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        if not sep or not value.strip():
            raise NeurofxError(f"--columns: {part!r} is not NAME=COLUMN "
                               "(fix: write e.g. --columns time=Date,open=Open)")
        out[key] = value.strip()
    _check_map_keys(out, "--columns")
    return out


def _check_map_keys(column_map: dict[str, str], what: str) -> None:
    for key in column_map:
        if key not in MAP_KEYS:
            raise NeurofxError(f"{what}: unknown column {key!r} "
                               f"(fix: use one of {', '.join(MAP_KEYS)})")


def load_bars(path=None, fmt: str = "auto", column_map: dict[str, str] | None = None,
              source_tz: str | None = None, tz: str | None = None,
              repair: str | None = None) -> pd.DataFrame:
    """Load, validate and (optionally) convert/repair a bar file.

    ``path`` None reads the bundled EURUSD H1 file (its clock defaults to ``Europe/Athens``).
    ``source_tz`` is the clock the file's times are in (None: unknown, kept as is);
    ``tz`` the clock wanted in the result, which stays tz-naive. ``repair`` is None (raise on the
    first violation), ``"drop"`` or ``"fix"``; what changed is in ``df.attrs["repairs"]``.
    """
    path = bundled_path() if path is None else Path(path)
    if source_tz is None and path.resolve() == bundled_path().resolve():
        source_tz = BUNDLED_SOURCE_TZ
    source = str(path)
    if fmt not in FORMATS:
        raise NeurofxError(f"format: unknown format {fmt!r} (fix: use one of {', '.join(FORMATS)})")
    column_map = {k.lower(): v for k, v in (column_map or {}).items()}
    _check_map_keys(column_map, "column_map")
    for name, value in (("source_tz", source_tz), ("tz", tz)):
        if value is not None:
            _zone(value, name)
    if path.is_dir():
        raise NeurofxError(f"{source}: is a folder, not a bar file (fix: name the file)")
    if not path.is_file():
        raise NeurofxError(f"{source}: no such file (fix: check the path)")
    if fmt == "auto" and path.suffix.lower() in (".parquet", ".pq"):
        fmt = "parquet"
    clock = source_tz
    if fmt == "parquet":
        parsed, aware_tz = _parse_parquet(source, path, column_map, tz)
        if aware_tz is not None:  # the file carries its own zone and was converted already
            clock, source_tz, tz = aware_tz, aware_tz, None
    else:
        parsed, fmt = _parse_text(source, path, fmt, column_map)
    frame, changes = check_and_repair(parsed, repair)
    if len(frame) == 0:
        raise NeurofxError(f"{source}: holds no bars{' after repairs' if changes else ''} "
                           "(fix: a bar file needs a header and at least one bar)")
    times = pd.DatetimeIndex(frame["time"].to_numpy())
    if tz is not None and tz != source_tz:
        if source_tz is None:
            raise NeurofxError(f"{source}: converting to {tz} needs the clock the file is in "
                               "(fix: pass --source-tz, e.g. --source-tz Europe/Athens)")
        times, frame, more = _convert_clock(parsed, frame, times, source_tz, tz, repair)
        changes += more
        clock = tz
    out = pd.DataFrame({c: frame[c].to_numpy(dtype=np.float64) for c in BAR_COLUMNS},
                       index=pd.DatetimeIndex(times.astype("datetime64[ns]"), name="time"))
    out.attrs = {"source": source, "format": fmt, "clock": clock, "repairs": changes,
                 "filled": list(parsed.frame.attrs.get("filled", []))}
    return out


def _zone(name: str, what: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise NeurofxError(f"{what}: unknown time zone {name!r} "
                           "(fix: use an IANA name such as UTC or Europe/Athens)") from None


def _convert_clock(parsed: Parsed, frame: pd.DataFrame, times: pd.DatetimeIndex, source_tz: str,
                   tz: str, repair: str | None):
    """Broker clock -> ``tz`` clock, tz-naive. Ambiguous/nonexistent local times (DST switches)
    are read with the UTC offset in force just before the switch."""
    n = len(times)
    local = times.tz_localize(source_tz, ambiguous=np.ones(n, dtype=bool),
                              nonexistent=pd.Timedelta(hours=1))
    converted = local.tz_convert(tz).tz_localize(None)
    values = converted.to_numpy()
    clash = np.flatnonzero(values[1:] <= values[:-1]) + 1 if n > 1 else np.array([], int)
    if clash.size == 0:
        return converted, frame, []
    lines = frame["_line"].to_numpy()
    if repair is None:
        r = clash[0]
        more = f" (+{clash.size - 1} more like this)" if clash.size > 1 else ""
        raise BarDataError(
            f"{parsed.source}:{parsed.line_word}{int(lines[r])}: time: "
            f"{times[r]:%Y-%m-%d %H:%M} ({source_tz}) lands on or before the bar before it in "
            f"{tz} (DST switch){more} (fix: delete the bar or use --repair drop|fix)")
    keep = np.ones(n, dtype=bool)
    keep[clash] = False
    shown = ", ".join(str(int(lines[r])) for r in clash[:8])
    note = (f"dropped {clash.size} row(s) whose time clashes with the bar before it after "
            f"converting {source_tz} -> {tz} (lines {shown})")
    return converted[keep], frame.iloc[np.flatnonzero(keep)], [note]


# ---------------------------------------------------------------- text formats (CSV, MT5)

def _read_text(path: Path) -> str:
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise BarDataError(f"{path}: not a readable gzip file ({exc}) "
                               "(fix: re-download or decompress the file)") from None
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):  # MT5 terminal exports can be UTF-16
        return data.decode("utf-16")
    if data[:3] == b"\xef\xbb\xbf":
        return data[3:].decode("utf-8", errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _norm(name: str) -> str:
    name = name.strip().strip("\"'").strip().strip("<>").strip().lower()
    return re.sub(r"[\s\-]+", "_", name)


def _resolve(header: list[str], column_map: dict[str, str], source: str) -> dict[str, int]:
    """Canonical column -> index in the header."""
    norm = [_norm(h) for h in header]
    raw = [h.strip().strip("\"'") for h in header]
    found: dict[str, int] = {}
    for key, aliases in ALIASES.items():
        for alias in aliases:
            if alias in norm:
                found[key] = norm.index(alias)
                break
    for key, name in column_map.items():
        if name in raw:
            found[key] = raw.index(name)
        elif _norm(name) in norm:
            found[key] = norm.index(_norm(name))
        else:
            raise BarDataError(f"{source}:1: header: no column {name!r} for {key} "
                               f"(fix: the header has {', '.join(raw)}; correct --columns)")
    if "time" in column_map and "date" not in column_map or found.get("date") == found.get("time"):
        found.pop("date", None)
    if "time" not in found and "date" in found:
        found["time"], found["date"] = found.pop("date"), -1
    for key in ("time",) + PRICE_COLUMNS:
        if key not in found:
            raise BarDataError(f"{source}:1: header: missing column {key!r} "
                               f"(fix: add it, or map it with --columns {key}=NAME)")
    return found


def _parse_text(source: str, path: Path, fmt: str, column_map: dict[str, str]):
    text = _read_text(path)
    lines = text.splitlines()
    numbered = [(i + 1, line) for i, line in enumerate(lines) if line.strip()]
    if not numbered:
        raise BarDataError(f"{source}:1: header: file is empty (fix: export the bars again)")
    header_no, header_line = numbered[0]
    if header_no != 1:
        raise BarDataError(f"{source}:1: header: the file starts with blank lines "
                           "(fix: delete them)")
    sep = "\t" if "\t" in header_line else (";" if ";" in header_line
                                            and "," not in header_line else ",")
    header = header_line.split(sep)
    mt5_style = header_line.lstrip("\ufeff").lstrip().startswith("<")
    norm = {_norm(h) for h in header}
    if fmt == "auto":
        if mt5_style:
            fmt = "mt5"
        elif {"time", "open", "high", "low", "close", "tick_volume"} <= norm:
            fmt = "mt5-api"
        else:
            fmt = "csv"
    elif fmt == "mt5" and not mt5_style:
        raise BarDataError(f"{source}:1: header: not an MT5 terminal export header "
                           "(expected <DATE> <TIME> <OPEN> ...) (fix: use --format auto)")
    cols = _resolve(header, column_map, source)
    width = len(header)
    rows = [line.split(sep) for _, line in numbered[1:]]
    line_nos = np.array([no for no, _ in numbered[1:]], dtype=np.int64)
    counts = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    issues: list[Issue] = []
    wrong = np.flatnonzero(counts != width)
    if wrong.size:
        issues.append(Issue("row", "wrong number of fields",
                            f"has {counts[wrong[0]]} fields, the header has {width}",
                            f"make the line match the header (separator {sep!r})", wrong, "drop"))
        for r in wrong:
            rows[r] = (rows[r] + [""] * width)[:width]
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in range(width)]

    def column(i: int) -> pd.Series:
        return pd.Series(columns[i], dtype=object).str.strip().str.strip("\"'")

    frame = pd.DataFrame(index=pd.RangeIndex(len(rows)))
    time_text = column(cols["time"])
    if cols.get("date", -1) >= 0:
        time_text = column(cols["date"]) + " " + time_text
    skip = np.zeros(len(rows), dtype=bool)
    skip[wrong] = True  # short/long rows are reported as a row problem only
    frame["time"], bad = _parse_times(time_text)
    bad = bad[~skip[bad]]
    issues += _time_issues(time_text, bad)
    for key in _fill_missing(frame, cols):
        frame[key], more = _parse_numbers(column(cols[key]), key, skip)
        issues += more
    return Parsed(source, frame, line_nos, issues), fmt


def _time_issues(text: pd.Series, bad: np.ndarray) -> list[Issue]:
    """The issue of the rows ``bad`` whose time ``text`` is not a date/time (none if empty)."""
    if not bad.size:
        return []
    return [Issue("time", "not a date/time", f"not a date/time {str(text.iloc[bad[0]])!r}",
                  TIME_HELP, bad, "drop")]


def _fill_missing(frame: pd.DataFrame, cols: dict[str, int]) -> list[str]:
    """Set the bar columns the file lacks to 0 (recorded in ``frame.attrs["filled"]``);
    returns the columns the file has, to be parsed."""
    for key in BAR_COLUMNS:  # every column in its place; the caller overwrites the parsed ones
        frame[key] = 0.0
    frame.attrs["filled"] = [key for key in BAR_COLUMNS if key not in cols]
    return [key for key in BAR_COLUMNS if key in cols]


def _parse_times(text: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Strings -> datetime64 (NaT where unparseable) and the positions that failed."""
    empty = (text == "").to_numpy()
    times = np.full(len(text), np.datetime64("NaT"), dtype="datetime64[ns]")
    todo = ~empty
    digits = todo & text.str.match(_UNIX).to_numpy(dtype=bool)
    if digits.any():
        seconds = pd.to_numeric(text[digits], errors="coerce").to_numpy(dtype=np.float64)
        if seconds.min() >= 1e8:  # else rather YYYYMMDD dates than Unix time before 1973
            unit = "ms" if seconds.max() > 1e11 else "s"
            times[digits] = pd.to_datetime(seconds, unit=unit).to_numpy()
            todo &= ~digits
    for form in TIME_FORMATS:
        if not todo.any():
            break
        got = pd.to_datetime(text[todo], format=form, errors="coerce").to_numpy()
        idx = np.flatnonzero(todo)
        ok = ~np.isnat(got)
        times[idx[ok]] = got[ok]
        todo[idx[ok]] = False
    times = times.astype("datetime64[ns]")
    return times, np.flatnonzero(np.isnat(times))


def _parse_numbers(text: pd.Series, field: str,
                   skip: np.ndarray | None = None) -> tuple[np.ndarray, list[Issue]]:
    """Strings -> float64 (NaN where bad) and one issue per kind of bad value (not ``skip``)."""
    values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if skip is not None:
        bad &= ~skip
    if not bad.any():
        return values, []
    raw = text.to_numpy()
    lower = text.str.lower().to_numpy()
    empty = bad & (raw == "")
    nanlike = bad & ~empty & (np.isin(lower, list(_NAN_WORDS)) | np.isinf(values))
    text_bad = bad & ~empty & ~nanlike
    issues = []
    for mask, problem, fix in (
        (empty, "empty value", f"fill in {field}"),
        (nanlike, "missing or infinite value", f"replace it with the real {field}"),
        (text_bad, "not a number", f"write {field} as a plain number like 1.08912"),
    ):
        rows = np.flatnonzero(mask)
        if rows.size:
            detail = problem if problem == "empty value" else f"{problem} {raw[rows[0]]!r}"
            issues.append(Issue(field, problem, detail, fix, rows, "drop"))
    return values, issues


# ---------------------------------------------------------------- parquet

def _have_pyarrow() -> bool:
    return importlib.util.find_spec("pyarrow") is not None


def _parse_parquet(source: str, path: Path, column_map: dict[str, str], tz: str | None):
    if not _have_pyarrow():
        raise NeurofxError(f"{source}: reading parquet needs pyarrow "
                           "(fix: pip install neurofx[parquet])")
    try:
        table = pd.read_parquet(path, engine="pyarrow")
    except Exception as exc:  # pyarrow raises many types for corrupt files
        raise BarDataError(f"{source}: not a readable parquet file ({type(exc).__name__}) "
                           "(fix: write it again with pandas.DataFrame.to_parquet)") from None
    if isinstance(table.index, pd.DatetimeIndex):
        table = table.reset_index()
    header = [str(c) for c in table.columns]
    cols = _resolve(header, column_map, source)
    n = len(table)
    frame = pd.DataFrame(index=pd.RangeIndex(n))
    issues: list[Issue] = []
    aware_tz = None
    t = table.iloc[:, cols["time"]]
    if isinstance(t.dtype, pd.DatetimeTZDtype):
        aware_tz = str(t.dt.tz)
        if tz is not None:
            t, aware_tz = t.dt.tz_convert(tz), tz
        frame["time"] = t.dt.tz_localize(None).to_numpy().astype("datetime64[ns]")
    elif pd.api.types.is_datetime64_dtype(t.dtype):
        frame["time"] = t.to_numpy().astype("datetime64[ns]")
    else:
        text = t.astype(str).str.strip()
        if cols.get("date", -1) >= 0:
            text = table.iloc[:, cols["date"]].astype(str).str.strip() + " " + text
        frame["time"], _ = _parse_times(text.where(t.notna(), ""))
    bad = np.flatnonzero(np.isnat(frame["time"].to_numpy()))
    issues += _time_issues(t, bad)
    for key in _fill_missing(frame, cols):
        col = table.iloc[:, cols[key]]
        if pd.api.types.is_numeric_dtype(col.dtype):
            values = col.to_numpy(dtype=np.float64, na_value=np.nan)
            frame[key] = values
            rows = np.flatnonzero(~np.isfinite(values))
            if rows.size:
                issues.append(Issue(key, "missing or infinite value",
                                    f"missing or infinite value {float(values[rows[0]])}",
                                    f"replace it with the real {key}", rows, "drop"))
        else:
            frame[key], more = _parse_numbers(col.astype(str).str.strip().where(col.notna(), ""),
                                              key)
            issues += more
    return Parsed(source, frame, np.arange(1, n + 1), issues, line_word="row "), aware_tz
