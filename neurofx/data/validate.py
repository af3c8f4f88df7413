"""Bar validation and the ``--repair drop|fix`` policies.

Checks (always on): parseable fields, finite positive prices, ``high >= max(open, close)``,
``low <= min(open, close)``, non-negative tick volume and spread, strictly increasing unique
timestamps. Without a repair policy the first violation in file order raises one
:class:`BarDataError` line ``<file>:<line>: <field>: <problem> (fix: ...)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from neurofx.errors import NeurofxError

PRICE_COLUMNS = ("open", "high", "low", "close")
VOLUME_COLUMNS = ("tick_volume", "spread")
BAR_COLUMNS = PRICE_COLUMNS + VOLUME_COLUMNS
REPAIR_MODES = ("drop", "fix")
MAX_MOVE = 0.5  # a bar range or a bar-to-bar jump above this share of the price is not a quote
REPAIR_HINT = "or use --repair drop|fix"

# What a repair does with the rows of an issue:
#   drop  - dropped in both modes (unparseable or non-positive values, bad rows)
#   clamp - dropped with repair="drop", fixed in place with repair="fix"
#   sort  - rows are sorted by time in both modes
#   dedupe- later duplicates of a timestamp are dropped in both modes (the first one is kept)
ACTIONS = ("drop", "clamp", "sort", "dedupe")


class BarDataError(NeurofxError):
    """A bar file that cannot be read or fails validation (one line: file, line, field, fix)."""


@dataclass
class Issue:
    """One kind of violation: which rows (positions in the parsed table) and what is wrong."""

    field: str
    problem: str  # short kind, used in repair reports: "not a number"
    detail: str  # the first row's description: "not a number 'abc'"
    fix: str
    rows: np.ndarray  # int positions, ascending in file order
    action: str

    def __post_init__(self):
        if self.action not in ACTIONS:
            raise ValueError(f"unknown issue action {self.action!r}")


@dataclass
class Parsed:
    """A bar table straight from a file: NaN/NaT where a field did not parse.

    ``frame`` has a ``time`` column (datetime64, NaT allowed) and float64 ``BAR_COLUMNS``;
    ``lines`` holds the 1-based text line of each row (or the 1-based row for binary files);
    ``issues`` are the parse problems found while reading.
    """

    source: str
    frame: pd.DataFrame
    lines: np.ndarray
    issues: list[Issue]
    line_word: str = ""  # "" -> "<file>:<n>:", "row " -> "<file>:row <n>:"


def locate(parsed: Parsed, row: int) -> str:
    """``<file>:<line>`` for a row position."""
    return f"{parsed.source}:{parsed.line_word}{int(parsed.lines[row])}"


def issue_message(parsed: Parsed, issue: Issue, repairable: bool = True) -> str:
    """The one-line error for the first row of ``issue``."""
    more = len(issue.rows) - 1
    tail = f" (+{more} more row{'s' if more > 1 else ''} like this)" if more else ""
    hint = f" {REPAIR_HINT}" if repairable else ""
    return (
        f"{locate(parsed, issue.rows[0])}: {issue.field}: {issue.detail}{tail} "
        f"(fix: {issue.fix}{hint})"
    )


def _fmt(x: float) -> str:
    return f"{x:.10g}"


def value_issues(frame: pd.DataFrame, usable: np.ndarray) -> list[Issue]:
    """Price/volume checks on rows whose fields parsed (``usable``)."""
    issues: list[Issue] = []
    p = {c: frame[c].to_numpy() for c in BAR_COLUMNS}
    with np.errstate(invalid="ignore"):
        for c in PRICE_COLUMNS:
            rows = np.flatnonzero(usable & ~(p[c] > 0))
            if rows.size:
                issues.append(Issue(c, "price not positive", f"price {_fmt(p[c][rows[0]])} is not "
                                    "positive", "correct or delete the row", rows, "drop"))
        ok = usable.copy()
        for c in PRICE_COLUMNS:
            ok &= (p[c] > 0) & np.isfinite(p[c])
        issues += implausible_price_issues(p, ok)
        top = np.maximum(p["open"], p["close"])
        rows = np.flatnonzero(ok & (p["high"] < top))
        if rows.size:
            r = rows[0]
            issues.append(Issue("high", "high below max(open, close)",
                                f"high {_fmt(p['high'][r])} is below max(open, close) "
                                f"{_fmt(top[r])}", "correct high/open/close", rows, "clamp"))
        bottom = np.minimum(p["open"], p["close"])
        rows = np.flatnonzero(ok & (p["low"] > bottom))
        if rows.size:
            r = rows[0]
            issues.append(Issue("low", "low above min(open, close)",
                                f"low {_fmt(p['low'][r])} is above min(open, close) "
                                f"{_fmt(bottom[r])}", "correct low/open/close", rows, "clamp"))
        for c in VOLUME_COLUMNS:
            rows = np.flatnonzero(usable & (p[c] < 0))
            if rows.size:
                issues.append(Issue(c, f"negative {c}", f"{c} {_fmt(p[c][rows[0]])} is negative",
                                    f"{c} must be >= 0", rows, "clamp"))
    return issues


def implausible_price_issues(p: dict[str, np.ndarray], ok: np.ndarray) -> list[Issue]:
    """Prices no market quotes: a bar whose range (high - low) exceeds
    :data:`MAX_MOVE` of its open, or whose open is more than :data:`MAX_MOVE` away from the
    close of the bar before it (rows ``ok``: positive finite prices, in file order)."""
    issues = []
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # rows not ok: unused
        rng = (p["high"] - p["low"]) / p["open"]
    rows = np.flatnonzero(ok & (np.abs(rng) > MAX_MOVE))
    if rows.size:
        r = rows[0]
        issues.append(Issue("high", "implausible bar range",
                            f"bar range {_fmt(p['high'][r] - p['low'][r])} is over "
                            f"{MAX_MOVE:.0%} of its open {_fmt(p['open'][r])}",
                            "correct the prices or delete the row", rows, "drop"))
    idx = np.flatnonzero(ok)
    if idx.size > 1:
        with np.errstate(over="ignore"):
            jump = np.abs(p["open"][idx[1:]] / p["close"][idx[:-1]] - 1.0)
        rows = idx[1:][jump > MAX_MOVE]
        if rows.size:
            r = rows[0]
            prev = idx[np.searchsorted(idx, r) - 1]
            issues.append(Issue("open", "implausible price jump",
                                f"open {_fmt(p['open'][r])} is more than {MAX_MOVE:.0%} away "
                                f"from the close {_fmt(p['close'][prev])} of the bar before",
                                "correct the prices or delete the row", rows, "drop"))
    return issues


def order_issues(times: np.ndarray, rows: np.ndarray, lines: np.ndarray,
                 line_word: str = "") -> list[Issue]:
    """Out-of-order and duplicate timestamps among ``rows`` (positions with a valid time)."""
    issues: list[Issue] = []
    if rows.size < 2:
        return issues
    t = times[rows]
    prev_max = np.maximum.accumulate(t)[:-1]
    back = np.flatnonzero(t[1:] < prev_max) + 1
    if back.size:
        i = back[0]
        issues.append(Issue("time", "time goes backwards",
                            f"{_ts(t[i])} is earlier than the bar before it ({_ts(t[i - 1])})",
                            "sort the file by time", rows[back], "sort"))
    dup = pd.Index(t).duplicated(keep="first")
    pos = np.flatnonzero(dup)
    if pos.size:
        i = pos[0]
        first = np.flatnonzero(t == t[i])[0]
        issues.append(Issue("time", "duplicate timestamp",
                            f"duplicate timestamp {_ts(t[i])} (first at {line_word or 'line '}"
                            f"{int(lines[rows[first]])})",
                            "delete the repeated bar", rows[pos], "dedupe"))
    return issues


def _ts(t) -> str:
    return pd.Timestamp(t).strftime("%Y-%m-%d %H:%M:%S")


_PRIORITY = {"drop": 0, "clamp": 1, "sort": 2, "dedupe": 3}


def first_issue(issues: list[Issue]) -> Issue:
    """The issue whose first row comes first in the file (ties: parse > value > order)."""
    return min(issues, key=lambda i: (int(i.rows[0]), _PRIORITY[i.action]))


def _line_list(parsed: Parsed, rows: np.ndarray, limit: int = 8) -> str:
    word = "rows" if parsed.line_word else "lines"
    shown = ", ".join(str(int(parsed.lines[r])) for r in rows[:limit])
    return f"{word} {shown}{', ...' if len(rows) > limit else ''}"


def check_and_repair(parsed: Parsed, repair: str | None) -> tuple[pd.DataFrame, list[str]]:
    """Validate ``parsed``; raise the first violation, or apply ``repair`` and report changes.

    Returns the clean frame (``time`` column, sorted, unique) and human-readable change lines.
    """
    if repair is not None and repair not in REPAIR_MODES:
        raise BarDataError(f"repair: unknown policy {repair!r} (fix: use drop or fix)")
    frame = parsed.frame.assign(_line=parsed.lines)
    n = len(frame)
    parse_bad = np.zeros(n, dtype=bool)
    for issue in parsed.issues:
        parse_bad[issue.rows] = True
    issues = list(parsed.issues) + value_issues(frame, ~parse_bad)
    times = frame["time"].to_numpy()
    timed = np.flatnonzero(~pd.isna(times))
    if repair is None:
        issues += order_issues(times, timed, parsed.lines, parsed.line_word)
        if issues:
            raise BarDataError(issue_message(parsed, first_issue(issues)))
        return frame.reset_index(drop=True), []

    changes: list[str] = []
    drop = parse_bad.copy()
    fixed = frame.copy()
    for issue in sorted(issues, key=lambda i: int(i.rows[0])):
        if issue.action == "drop" or (issue.action == "clamp" and repair == "drop"):
            changes.append(f"dropped {len(issue.rows)} row(s): {issue.field}: {issue.problem} "
                           f"({_line_list(parsed, issue.rows)})")
            drop[issue.rows] = True
        elif issue.action == "clamp":
            rows = issue.rows
            if issue.field == "high":
                top = np.maximum(fixed["open"].to_numpy(), fixed["close"].to_numpy())
                fixed.loc[fixed.index[rows], "high"] = top[rows]
                what = "high raised to max(open, close)"
            elif issue.field == "low":
                bottom = np.minimum(fixed["open"].to_numpy(), fixed["close"].to_numpy())
                fixed.loc[fixed.index[rows], "low"] = bottom[rows]
                what = "low lowered to min(open, close)"
            else:
                fixed.loc[fixed.index[rows], issue.field] = 0.0
                what = f"negative {issue.field} set to 0"
            changes.append(f"fixed {len(rows)} row(s): {what} ({_line_list(parsed, rows)})")
    keep = np.flatnonzero(~drop)
    for issue in order_issues(times, keep, parsed.lines, parsed.line_word):
        if issue.action == "sort":
            changes.append(f"sorted by time: {len(issue.rows)} row(s) were out of order "
                           f"({_line_list(parsed, issue.rows)})")
        else:
            changes.append(f"dropped {len(issue.rows)} duplicate timestamp(s), kept the first "
                           f"({_line_list(parsed, issue.rows)})")
            drop[issue.rows] = True
    keep = np.flatnonzero(~drop)
    out = fixed.iloc[keep]
    out = out.iloc[np.argsort(out["time"].to_numpy(), kind="stable")].reset_index(drop=True)
    return out, changes
