"""Loaders: every format gives the same bars; every validation error names file, line, field."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from neurofx.data import loaders
from neurofx.data.loaders import bundled_path, load_bars, parse_column_map
from neurofx.data.validate import BarDataError
from neurofx.errors import NeurofxError

FIXTURES = Path(__file__).parent / "fixtures"

# The 7 bars around the first weekend of 2023 in the bundled file (broker clock), by hand.
EXPECTED = pd.DataFrame(
    [
        ["2023-01-06 20:00", 1.06378, 1.06437, 1.06295, 1.06378, 4344, 0],
        ["2023-01-06 21:00", 1.06378, 1.06479, 1.06378, 1.06456, 4284, 0],
        ["2023-01-06 22:00", 1.06456, 1.06481, 1.06427, 1.06462, 4243, 0],
        ["2023-01-06 23:00", 1.06461, 1.06461, 1.06418, 1.06427, 1398, 0],
        ["2023-01-09 00:00", 1.06394, 1.06404, 1.06360, 1.06388, 402, 28],
        ["2023-01-09 01:00", 1.06394, 1.06628, 1.06394, 1.06623, 2422, 2],
        ["2023-01-09 02:00", 1.06623, 1.06675, 1.06516, 1.06612, 2834, 0],
    ],
    columns=["time", "open", "high", "low", "close", "tick_volume", "spread"],
)
EXPECTED = EXPECTED.set_index(pd.DatetimeIndex(pd.to_datetime(EXPECTED.pop("time")),
                                               name="time")).astype(np.float64)
EXPECTED.index = EXPECTED.index.astype("datetime64[ns]")

GENERIC_MAP = {"time": "When", "open": "Bid open", "high": "Bid high", "low": "Bid low",
               "close": "Bid close", "tick_volume": "Ticks"}

API_TEXT = (FIXTURES / "eurusd_h1_api_unix.csv").read_text()


def assert_bars(df: pd.DataFrame, expected: pd.DataFrame = EXPECTED) -> None:
    assert list(df.columns) == ["open", "high", "low", "close", "tick_volume", "spread"]
    assert df.index.name == "time" and df.index.tz is None
    assert df.index.dtype == np.dtype("datetime64[ns]")
    assert all(df[c].dtype == np.float64 for c in df.columns)
    pd.testing.assert_frame_equal(df, expected, check_freq=False)


# ------------------------------------------------------------------ formats


def test_bundled_file_counts_and_first_bar():
    df = load_bars()
    assert len(df) == 41979
    assert df.attrs["clock"] == "Europe/Athens" and df.attrs["format"] == "mt5-api"
    per_year = df.groupby(df.index.year).size()
    assert per_year[2023] == 6207 and per_year[2024] == 528
    assert df.index[0] == pd.Timestamp("2017-05-01 10:00")
    assert df.iloc[0].tolist() == [1.08867, 1.08946, 1.08838, 1.08900, 1659.0, 7.0]
    assert_bars(df.loc["2023-01-06 20:00":"2023-01-09 02:00"])
    assert df.index.is_monotonic_increasing and df.index.is_unique


def test_mt5_terminal_export():
    df = load_bars(FIXTURES / "eurusd_h1_mt5.csv")
    assert df.attrs["format"] == "mt5"
    assert_bars(df)


def test_mt5_terminal_export_utf16_gzip(tmp_path):
    # MT5 terminals can write UTF-16 with a BOM; gzip is read transparently
    path = tmp_path / "bars.csv.gz"
    text = (FIXTURES / "eurusd_h1_mt5.csv").read_text()
    path.write_bytes(gzip.compress(text.encode("utf-16")))
    assert_bars(load_bars(path))


def test_mt5_terminal_daily_variant_without_time_column():
    df = load_bars(FIXTURES / "eurusd_d1_mt5.csv", fmt="mt5")
    assert len(df) == 9
    assert df.index[0] == pd.Timestamp("2023-01-02") and df.index[-1] == pd.Timestamp("2023-01-12")
    assert df.loc["2023-01-04"].tolist() == [1.05465, 1.06354, 1.05402, 1.06030, 140651.0, 26.0]


def test_mt5_api_unix_seconds():
    df = load_bars(FIXTURES / "eurusd_h1_api_unix.csv")
    assert df.attrs["format"] == "mt5-api"
    assert_bars(df)


def test_mt5_api_string_times_without_spread(tmp_path):
    path = tmp_path / "bars.csv"
    lines = ["time,open,high,low,close,tick_volume"]
    for t, r in EXPECTED.iterrows():
        lines.append(f"{t:%Y-%m-%d %H:%M:%S},{r.open},{r.high},{r.low},{r.close},"
                     f"{int(r.tick_volume)}")
    path.write_text("\n".join(lines) + "\n")
    df = load_bars(path, fmt="mt5-api")
    assert df.attrs["filled"] == ["spread"]
    assert_bars(df, EXPECTED.assign(spread=0.0))


def test_generic_csv_with_column_map():
    path = FIXTURES / "eurusd_h1_generic.csv"
    with pytest.raises(BarDataError, match=r"eurusd_h1_generic\.csv:1: header: missing column "
                       r"'time' \(fix: add it, or map it with --columns time=NAME\)"):
        load_bars(path)
    df = load_bars(path, fmt="csv", column_map=GENERIC_MAP)
    assert df.attrs["format"] == "csv"
    assert_bars(df, EXPECTED.assign(spread=0.0))


def test_generic_csv_date_and_time_columns_auto(tmp_path):
    path = tmp_path / "dukascopy.csv"
    lines = ["Date,Time,Open,High,Low,Close,Volume"]
    for t, r in EXPECTED.iterrows():
        lines.append(f"{t:%d.%m.%Y},{t:%H:%M:%S},{r.open},{r.high},{r.low},{r.close},"
                     f"{int(r.tick_volume)}")
    path.write_text("\n".join(lines))
    assert_bars(load_bars(path), EXPECTED.assign(spread=0.0))


def test_parquet_roundtrip(tmp_path):
    pytest.importorskip("pyarrow")
    path = tmp_path / "bars.parquet"
    EXPECTED.reset_index().to_parquet(path)
    df = load_bars(path)
    assert df.attrs["format"] == "parquet"
    assert_bars(df)
    # a time index instead of a column, and custom names through the column map
    other = tmp_path / "other.parquet"
    EXPECTED.rename(columns={"close": "Last"}).to_parquet(other)
    assert_bars(load_bars(other, column_map={"close": "Last"}))


def test_parquet_tz_aware_times_are_converted(tmp_path):
    pytest.importorskip("pyarrow")
    path = tmp_path / "aware.parquet"
    aware = EXPECTED.tz_localize("Europe/Athens").reset_index()
    aware.to_parquet(path)
    df = load_bars(path, tz="UTC")
    assert df.attrs["clock"] == "UTC"
    assert df.index[0] == pd.Timestamp("2023-01-06 18:00")  # winter: UTC+2
    assert_bars(load_bars(path))  # no tz: its own wall clock


def test_parquet_bad_value_names_row(tmp_path):
    pytest.importorskip("pyarrow")
    path = tmp_path / "bad.parquet"
    bad = EXPECTED.copy()
    bad.iloc[2, 3] = np.nan
    bad.reset_index().to_parquet(path)
    with pytest.raises(BarDataError, match=r"bad\.parquet:row 3: close: missing or infinite "
                       r"value nan"):
        load_bars(path)


def test_parquet_without_pyarrow_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setattr(loaders, "_have_pyarrow", lambda: False)
    path = tmp_path / "bars.parquet"
    path.write_bytes(b"PAR1")
    with pytest.raises(NeurofxError, match=r"pip install neurofx\[parquet\]"):
        load_bars(path)


def test_bundled_path_is_package_data():
    path = bundled_path()
    assert path.name == "EURUSD_H1.csv.gz" and path.is_file()
    assert path.parent.name == "data"


# ------------------------------------------------------------------ time zones


def test_bundled_to_utc_uses_athens_offsets():
    utc = load_bars(tz="UTC")
    assert utc.attrs["clock"] == "UTC"
    assert utc.index[0] == pd.Timestamp("2017-05-01 07:00")  # EEST, UTC+3
    local = load_bars()
    jan = local.index.get_loc(pd.Timestamp("2024-01-02 00:00"))
    assert utc.index[jan] == pd.Timestamp("2024-01-01 22:00")  # EET, UTC+2
    np.testing.assert_array_equal(utc.to_numpy(), local.to_numpy())


def test_converting_needs_a_source_clock():
    with pytest.raises(NeurofxError, match=r"eurusd_h1_mt5\.csv: converting to UTC needs the "
                       r"clock the file is in \(fix: pass --source-tz"):
        load_bars(FIXTURES / "eurusd_h1_mt5.csv", tz="UTC")
    df = load_bars(FIXTURES / "eurusd_h1_mt5.csv", source_tz="Europe/Athens", tz="UTC")
    assert df.index[0] == pd.Timestamp("2023-01-06 18:00")


def test_unknown_zone():
    with pytest.raises(NeurofxError, match=r"tz: unknown time zone 'Mars/Olympus'"):
        load_bars(tz="Mars/Olympus")


def _api_file(tmp_path, times, name="bars.csv"):
    lines = ["time,open,high,low,close,tick_volume,spread"]
    lines += [f"{t},1.1,1.2,1.0,1.1,100,0" for t in times]
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_dst_ambiguous_hour_reads_pre_switch_offset(tmp_path):
    # 2023-10-29: Athens goes 04:00 EEST -> 03:00 EET; 03:00 local happens twice
    path = _api_file(tmp_path, ["2023-10-29 02:00:00", "2023-10-29 03:00:00",
                                "2023-10-29 04:00:00"])
    df = load_bars(path, source_tz="Europe/Athens", tz="UTC")
    assert list(df.index) == [pd.Timestamp("2023-10-28 23:00"), pd.Timestamp("2023-10-29 00:00"),
                              pd.Timestamp("2023-10-29 02:00")]


def test_dst_nonexistent_hour_clash(tmp_path):
    # 2023-03-26: Athens jumps 03:00 EET -> 04:00 EEST; 03:00 local does not exist and is read
    # as UTC+2 (01:00 UTC), the same instant as 04:00 EEST
    path = _api_file(tmp_path, ["2023-03-26 02:00:00", "2023-03-26 03:00:00",
                                "2023-03-26 04:00:00"])
    with pytest.raises(BarDataError, match=r"bars\.csv:4: time: 2023-03-26 04:00 "
                       r"\(Europe/Athens\) lands on or before the bar before it in UTC"):
        load_bars(path, source_tz="Europe/Athens", tz="UTC")
    df = load_bars(path, source_tz="Europe/Athens", tz="UTC", repair="drop")
    assert list(df.index) == [pd.Timestamp("2023-03-26 00:00"), pd.Timestamp("2023-03-26 01:00")]
    assert df.attrs["repairs"] == ["dropped 1 row(s) whose time clashes with the bar before it "
                                   "after converting Europe/Athens -> UTC (lines 4)"]


# ------------------------------------------------------------------ validation errors


def _mutate(line_no: int, fn):
    lines = API_TEXT.splitlines()
    lines[line_no - 1] = fn(lines[line_no - 1])
    return "\n".join(lines) + "\n"


def _field(i: int, value: str):
    def fn(line):
        parts = line.split(",")
        parts[i] = value
        return ",".join(parts)
    return fn


def _swap(text: str, a: int, b: int) -> str:
    lines = text.splitlines()
    lines[a - 1], lines[b - 1] = lines[b - 1], lines[a - 1]
    return "\n".join(lines) + "\n"


TIME_4 = API_TEXT.splitlines()[3].split(",")[0]

# (name, file text, expected message after "<file>:")
CORRUPT = [
    ("missing column", API_TEXT.replace(",close,", ",closing,"),
     r"1: header: missing column 'close' \(fix: add it, or map it with --columns close=NAME\)$"),
    ("text in price", _mutate(4, _field(4, "abc")),
     r"4: close: not a number 'abc' \(fix: write close as a plain number like 1\.08912 "
     r"or use --repair drop\|fix\)$"),
    ("NaN price", _mutate(3, _field(2, "NaN")),
     r"3: high: missing or infinite value 'NaN' \(fix: replace it with the real high "
     r"or use --repair drop\|fix\)$"),
    ("empty value", _mutate(6, _field(1, "")), r"6: open: empty value \(fix: fill in open"),
    ("duplicate timestamp", _mutate(5, _field(0, TIME_4)),
     r"5: time: duplicate timestamp 2023-01-06 22:00:00 \(first at line 4\) \(fix: delete the "
     r"repeated bar or use --repair drop\|fix\)$"),
    ("unsorted", _swap(API_TEXT, 3, 4),
     r"4: time: 2023-01-06 21:00:00 is earlier than the bar before it \(2023-01-06 22:00:00\) "
     r"\(fix: sort the file by time"),
    ("high below body", _mutate(2, _field(2, "1.06300")),
     r"2: high: high 1\.063 is below max\(open, close\) 1\.06378 \(fix: correct high/open/close"),
    ("low above body", _mutate(7, _field(3, "1.06400")),
     r"7: low: low 1\.064 is above min\(open, close\) 1\.06394"),
    ("zero price", _mutate(3, _field(1, "0")), r"3: open: price 0 is not positive"),
    ("negative price", _mutate(3, _field(3, "-1.0")), r"3: low: price -1 is not positive"),
    ("absurd price", _mutate(4, _field(1, "1e200")),
     r"4: open: open 1e\+200 is more than 50% away from the close 1\.\d+ of the bar before"),
    ("absurd range", _mutate(5, _field(2, "2.5")),
     r"5: high: bar range 1\.4\d+ is over 50% of its open 1\.0\d+ \(fix: correct the prices"),
    ("negative tick volume", _mutate(8, _field(5, "-5")),
     r"8: tick_volume: tick_volume -5 is negative \(fix: tick_volume must be >= 0"),
    ("negative spread", _mutate(8, _field(6, "-1")), r"8: spread: spread -1 is negative"),
    ("bad date", _mutate(2, _field(0, "2023-13-45 07:00:00")),
     r"2: time: not a date/time '2023-13-45 07:00:00' \(fix: use YYYY-MM-DD HH:MM:SS"),
    ("field count", _mutate(6, lambda line: line + ",7"),
     r"6: row: has 9 fields, the header has 8 \(fix: make the line match the header"),
    ("two of a kind", _mutate(7, _field(4, "x")).replace(",1.06388,", ",y,"),
     r"6: close: not a number 'y' \(\+1 more row like this\)"),
    ("earliest line wins", _mutate(7, _field(4, "x")).replace("1673038800", "1673035200"),
     r"3: time: duplicate timestamp"),
]


@pytest.mark.parametrize("name, text, message", CORRUPT, ids=[c[0] for c in CORRUPT])
def test_each_violation_is_one_line(tmp_path, name, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(BarDataError) as info:
        load_bars(path)
    msg = str(info.value)
    assert "\n" not in msg
    assert re.search(re.escape(str(path)) + ":" + message, msg), msg


def test_blank_lines_keep_true_line_numbers(tmp_path):
    text = _mutate(5, _field(4, "oops"))
    lines = text.splitlines()
    path = tmp_path / "gaps.csv"
    path.write_text("\n".join(lines[:2] + ["", "   "] + lines[2:]) + "\n")
    with pytest.raises(BarDataError, match=r"gaps\.csv:7: close: not a number 'oops'"):
        load_bars(path)


def test_gzip_line_numbers(tmp_path):
    path = tmp_path / "bad.csv.gz"
    path.write_bytes(gzip.compress(_mutate(4, _field(4, "abc")).encode()))
    with pytest.raises(BarDataError, match=r"bad\.csv\.gz:4: close: not a number 'abc'"):
        load_bars(path)


def test_format_and_option_errors(tmp_path):
    with pytest.raises(NeurofxError, match=r"format: unknown format 'xls'"):
        load_bars(fmt="xls")
    with pytest.raises(BarDataError, match=r":1: header: not an MT5 terminal export header"):
        load_bars(FIXTURES / "eurusd_h1_api_unix.csv", fmt="mt5")
    with pytest.raises(NeurofxError, match=r"no such file"):
        load_bars(tmp_path / "nope.csv")
    with pytest.raises(BarDataError, match=r":1: header: no column 'Stamp' for time"):
        load_bars(FIXTURES / "eurusd_h1_generic.csv", column_map={"time": "Stamp"})
    with pytest.raises(NeurofxError, match=r"repair: unknown policy 'mend'"):
        load_bars(repair="mend")


def test_parse_column_map():
    assert parse_column_map("time=When, open=Bid open,close=C") == {
        "time": "When", "open": "Bid open", "close": "C"}
    with pytest.raises(NeurofxError, match=r"--columns: 'open' is not NAME=COLUMN"):
        parse_column_map("time=When,open")
    with pytest.raises(NeurofxError, match=r"--columns: unknown column 'volume'"):
        parse_column_map("volume=Vol")


# ------------------------------------------------------------------ repair


def _messy(tmp_path):
    """Bars 2..8 of the fixture with: a text price (line 3), a high below the body (line 4),
    a negative spread (line 5), a duplicate of line 5 (line 6) and two swapped rows (7, 8)."""
    lines = API_TEXT.splitlines()
    header, rows = lines[0], lines[1:]
    bad = list(rows)
    bad[1] = _field(4, "abc")(rows[1])  # line 3
    bad[2] = _field(2, "1.06400")(rows[2])  # line 4: high below open 1.06456
    bad[3] = _field(6, "-3")(rows[3])  # line 5
    bad.insert(4, rows[3])  # line 6: duplicate time of line 5
    bad[5], bad[6] = bad[6], bad[5]  # lines 7, 8 out of order
    path = tmp_path / "messy.csv"
    path.write_text("\n".join([header] + bad) + "\n")
    return path


def test_repair_drop(tmp_path):
    df = load_bars(_messy(tmp_path), repair="drop")
    # line 6 stays: its twin (line 5) was dropped for the negative spread
    assert_bars(df, EXPECTED.iloc[[0, 3, 4, 5, 6]])
    assert df.attrs["repairs"] == [
        "dropped 1 row(s): close: not a number (lines 3)",
        "dropped 1 row(s): high: high below max(open, close) (lines 4)",
        "dropped 1 row(s): spread: negative spread (lines 5)",
        "sorted by time: 1 row(s) were out of order (lines 8)",
    ]


def test_repair_fix(tmp_path):
    df = load_bars(_messy(tmp_path), repair="fix")
    expected = EXPECTED.iloc[[0, 2, 3, 4, 5, 6]].copy()
    expected.loc["2023-01-06 22:00", "high"] = 1.06462  # raised to max(open, close)
    assert_bars(df, expected)
    assert df.attrs["repairs"] == [
        "dropped 1 row(s): close: not a number (lines 3)",
        "fixed 1 row(s): high raised to max(open, close) (lines 4)",
        "fixed 1 row(s): negative spread set to 0 (lines 5)",
        "sorted by time: 1 row(s) were out of order (lines 8)",
        "dropped 1 duplicate timestamp(s), kept the first (lines 6)",
    ]
    # the negative spread of line 5 was 0 in the original too: clamped to exactly 0
    assert df.loc["2023-01-06 23:00", "spread"] == 0.0


def test_repair_fix_low_and_many_lines(tmp_path):
    lines = API_TEXT.splitlines()
    rows = [_field(3, "1.07")(r) for r in lines[1:]]  # every low above the body
    path = tmp_path / "lows.csv"
    path.write_text("\n".join([lines[0]] + rows) + "\n")
    df = load_bars(path, repair="fix")
    np.testing.assert_array_equal(df["low"], np.minimum(EXPECTED["open"], EXPECTED["close"]))
    assert df.attrs["repairs"] == ["fixed 7 row(s): low lowered to min(open, close) "
                                   "(lines 2, 3, 4, 5, 6, 7, 8)"]
    # dropping every row leaves no bar file
    with pytest.raises(NeurofxError, match=r"lows.csv: holds no bars after repairs \(fix: "):
        load_bars(path, repair="drop")


def test_clean_file_reports_no_repairs():
    assert load_bars(FIXTURES / "eurusd_h1_mt5.csv", repair="fix").attrs["repairs"] == []


def test_short_row_is_one_problem_not_many(tmp_path):
    text = _mutate(5, _field(4, "abc"))
    lines = text.splitlines()
    lines[2] = ",".join(lines[2].split(",")[:4])  # line 3: 4 of 8 fields
    path = tmp_path / "short.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(BarDataError, match=r"short\.csv:3: row: has 4 fields, the header has 8 "
                       r"\(fix: make the line match the header \(separator ','\) or use"):
        load_bars(path)
    df = load_bars(path, repair="drop")
    assert_bars(df, EXPECTED.iloc[[0, 2, 4, 5, 6]])
    assert df.attrs["repairs"] == ["dropped 1 row(s): row: wrong number of fields (lines 3)",
                                   "dropped 1 row(s): close: not a number (lines 5)"]


def test_header_only_file_and_folder_are_not_bar_files(tmp_path):
    header = tmp_path / "h.csv"
    header.write_text(API_TEXT.splitlines()[0] + "\n")
    with pytest.raises(NeurofxError, match=r"h\.csv: holds no bars \(fix: a bar file needs a "
                       r"header and at least one bar\)$"):
        load_bars(header)
    with pytest.raises(NeurofxError, match=r": is a folder, not a bar file \(fix: name the "
                       r"file\)$"):
        load_bars(tmp_path)
