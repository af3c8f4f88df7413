"""`neurofx data info|validate`: the report on the bundled file, and one-line errors (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from neurofx.cli import main
from neurofx.data.info import find_gaps, guess_symbol

FIXTURES = Path(__file__).parent / "fixtures"
API_TEXT = (FIXTURES / "eurusd_h1_api_unix.csv").read_text()

# the 16 gaps listed in /work/shared/data/README.md (broker clock)
README_GAPS = """\
2017-12-22 23:00 -> 2017-12-26 06:00  (79h)
2017-12-29 23:00 -> 2018-01-02 00:00  (73h)
2018-12-24 20:00 -> 2018-12-26 06:00  (34h)
2018-12-31 22:00 -> 2019-01-02 06:00  (32h)
2019-12-24 20:00 -> 2019-12-26 06:00  (34h)
2019-12-31 22:00 -> 2020-01-02 06:00  (32h)
2020-12-24 20:00 -> 2020-12-28 00:00  (76h)
2020-12-31 20:00 -> 2020-12-31 22:00  (2h)
2020-12-31 23:00 -> 2021-01-04 00:00  (73h)
2021-06-16 15:00 -> 2021-06-16 17:00  (2h)
2021-06-18 16:00 -> 2021-06-18 18:00  (2h)
2021-12-24 20:00 -> 2021-12-27 00:00  (52h)
2022-12-23 23:00 -> 2022-12-26 09:00  (58h)
2022-12-30 23:00 -> 2023-01-02 07:00  (56h)
2023-12-25 01:00 -> 2023-12-26 00:00  (23h)
2023-12-29 23:00 -> 2024-01-02 00:00  (73h)""".splitlines()


@pytest.fixture(scope="module")
def bundled_report():
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["data", "info"])
    return rc, out.getvalue(), err.getvalue()


def test_info_on_bundled_file(bundled_report):
    rc, out, err = bundled_report
    assert rc == 0 and err == ""
    lines = out.splitlines()
    assert "symbol:      EURUSD H1 (bar spacing 1h)" in lines
    assert "bars:        41,979" in lines
    assert "first bar:   2017-05-01 10:00" in lines and "last bar:    2024-01-31 23:00" in lines
    assert "clock:       Europe/Athens; times are bar open times" in lines
    years = {int(line[:4]): int(line[6:11]) for line in lines if line[:4].isdigit()}
    assert years == {2017: 4159, 2018: 6203, 2019: 6196, 2020: 6226, 2021: 6232, 2022: 6228,
                     2023: 6207, 2024: 528}
    y2023 = next(line for line in lines if line.startswith("2023 "))
    # README: 2023 spread mean 0.71, 81% zero, p95 3, max 31
    assert y2023.split()[6:10] == ["0.71", "80.7", "3", "31"]
    start = lines.index("gaps longer than one bar, other than normal weekends: 16")
    assert [line.strip() for line in lines[start + 1: start + 17]] == README_GAPS
    assert any(line.startswith("tick volume: feed change in the week of 2023-12-18:")
               for line in lines)


def test_info_fixture_has_only_a_weekend(capsys):
    rc = main(["data", "info", str(FIXTURES / "eurusd_h1_mt5.csv"), "--symbol", "eurusd"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "symbol:      eurusd H1 (bar spacing 1h)" in out
    assert "gaps longer than one bar, other than normal weekends: 0" in out
    assert "clock:       unknown (as in the file)" in out


def test_info_converts_with_tz_and_columns(capsys):
    rc = main(["data", "info", str(FIXTURES / "eurusd_h1_generic.csv"), "--format", "csv",
               "--columns", "time=When,open=Bid open,high=Bid high,low=Bid low,close=Bid close,"
               "tick_volume=Ticks", "--source-tz", "Europe/Athens", "--tz", "UTC"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "first bar:   2023-01-06 18:00" in out and "clock:       UTC;" in out
    assert "not in file: spread (set to 0)" in out


def test_find_gaps_rules():
    idx = pd.DatetimeIndex(["2023-06-02 22:00",  # Friday, DST-mismatch week end
                            "2023-06-05 00:00",  # Monday: normal weekend (50h)
                            "2023-06-05 01:00", "2023-06-05 04:00",  # 3h midweek gap
                            "2023-06-09 20:00",  # 4 days: not a weekend
                            "2023-06-12 00:00"])  # Friday 20:00 -> Monday: 52h, too long
    gaps = find_gaps(idx, pd.Timedelta(hours=1))
    assert [(str(g.last_bar), g.hours) for g in gaps] == [
        ("2023-06-05 01:00:00", 3.0), ("2023-06-05 04:00:00", 112.0),
        ("2023-06-09 20:00:00", 52.0)]


def test_guess_symbol():
    assert guess_symbol("data/EURUSD_H1.csv.gz") == ("EURUSD", "H1")
    assert guess_symbol("gbpjpy-m15.parquet") == ("GBPJPY", "M15")
    assert guess_symbol("bars.csv") == (None, None)


# ------------------------------------------------------------------ one-line errors, exit 2


def _lines(text):
    return text.splitlines()


CORRUPT = [
    ("missing column", API_TEXT.replace(",high,", ",hi,"),
     ":1: header: missing column 'high' (fix: add it, or map it with --columns high=NAME)"),
    ("text in a price", API_TEXT.replace("1673042400,1.06456,", "1673042400,one,"),
     ":4: open: not a number 'one' (fix: write open as a plain number like 1.08912 or use "
     "--repair drop|fix)"),
    ("duplicated timestamp", API_TEXT.replace("1673222400,", "1673046000,"),
     ":6: time: duplicate timestamp 2023-01-06 23:00:00 (first at line 5) (fix: delete the "
     "repeated bar or use --repair drop|fix)"),
    ("NaN", API_TEXT.replace(",1.06675,", ",NaN,"),
     ":8: high: missing or infinite value 'NaN' (fix: replace it with the real high or use "
     "--repair drop|fix)"),
]


@pytest.mark.parametrize("name, text, tail", CORRUPT, ids=[c[0] for c in CORRUPT])
@pytest.mark.parametrize("action", ["info", "validate"])
def test_corrupt_file_exits_2_with_one_line(tmp_path, capsys, name, text, tail, action):
    path = tmp_path / "corrupt.csv"
    path.write_text(text)
    rc = main(["data", action, str(path)])
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    assert _lines(err) == [f"neurofx data: error: {path}{tail}"]


def test_validate_repair_reports_changes(tmp_path, capsys):
    path = tmp_path / "dup.csv"
    path.write_text(API_TEXT.replace("1673222400,", "1673046000,"))
    rc = main(["data", "validate", str(path), "--repair", "drop"])
    out = capsys.readouterr().out
    assert rc == 0
    assert _lines(out) == [
        "repair: dropped 1 duplicate timestamp(s), kept the first (lines 6)",
        f"ok: {path}: 6 bars, 2023-01-06 20:00 -> 2023-01-09 02:00 (mt5-api)",
    ]


def test_tz_without_source_and_bad_columns_exit_2(capsys):
    fixture = str(FIXTURES / "eurusd_h1_mt5.csv")
    assert main(["data", "info", fixture, "--tz", "UTC"]) == 2
    err = capsys.readouterr().err
    assert _lines(err) == [f"neurofx data: error: {fixture}: converting to UTC needs the clock "
                           "the file is in (fix: pass --source-tz, e.g. --source-tz "
                           "Europe/Athens)"]
    assert main(["data", "info", fixture, "--columns", "time"]) == 2
    assert "--columns: 'time' is not NAME=COLUMN" in capsys.readouterr().err
