"""The NumPy feed delivers exactly the bars stock PandasData delivers."""

import datetime as dt
import importlib.resources

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

from neurofx.errors import NeurofxError
from neurofx.strategies.feeds import BarArrays, bt_datenums, make_feed


@pytest.fixture(scope="module")
def bundled() -> pd.DataFrame:
    path = importlib.resources.files("neurofx.data").joinpath("EURUSD_H1.csv.gz")
    return pd.read_csv(str(path), parse_dates=["time"])


class Recorder(bt.Strategy):
    def __init__(self):
        self.rows = []

    def next(self):
        d = self.data
        self.rows.append((d.datetime[0], d.open[0], d.high[0], d.low[0], d.close[0],
                          d.volume[0], d.spread[0]))


def replay_rows(feed, preload=True):
    cerebro = bt.Cerebro(stdstats=False, preload=preload, runonce=preload)
    cerebro.adddata(feed)
    cerebro.addstrategy(Recorder)
    return cerebro.run()[0].rows


def test_numpy_and_pandas_feeds_identical_on_bundled_2023(bundled):
    bars = BarArrays.from_frame(bundled).window("2023-01-01", "2024-01-01")
    assert len(bars) == 6207
    ref = replay_rows(make_feed(bars, "pandas"))
    got = replay_rows(make_feed(bars, "numpy"))
    assert got == ref  # exact float equality, datetime included
    first = ref[0]
    assert bt.num2date(first[0]) == dt.datetime(2023, 1, 2, 7, 0)
    assert replay_rows(make_feed(bars, "numpy"), preload=False) == ref  # bar-by-bar _load path


def test_fromdate_todate_respected(bundled):
    bars = BarArrays.from_frame(bundled.iloc[:200])
    kw = {"fromdate": dt.datetime(2017, 5, 2), "todate": dt.datetime(2017, 5, 3, 12)}
    ref = replay_rows(make_feed(bars, "pandas"))
    feeds = [make_feed(bars, "numpy"), make_feed(bars, "pandas")]
    for f in feeds:
        f.p.fromdate, f.p.todate = kw["fromdate"], kw["todate"]
    got, got_pandas = (replay_rows(f) for f in feeds)
    assert got == got_pandas
    lo, hi = bt.date2num(kw["fromdate"]), bt.date2num(kw["todate"])
    assert got == [r for r in ref if lo <= r[0] <= hi]
    assert len(got) == 37  # 2017-05-02 00:00 .. 2017-05-03 12:00


def test_bt_datenums_bit_identical_to_date2num():
    times = pd.DatetimeIndex([
        "2017-05-01 10:00:00", "2024-01-31 23:00:00", "1999-12-31 00:00:00",
        "2023-03-14 15:07:00", "2023-03-14 15:07:31.250000", "2020-02-29 23:59:59",
    ])
    expected = [bt.date2num(t.to_pydatetime()) for t in times]
    assert bt_datenums(times).tolist() == expected
    hourly = pd.date_range("2000-01-01", periods=5000, freq="7h")
    assert bt_datenums(hourly).tolist() == [bt.date2num(t.to_pydatetime()) for t in hourly]
    aware = times.tz_localize("Europe/Athens")
    assert bt_datenums(aware).tolist() == [bt.date2num(t.to_pydatetime()) for t in aware]


def test_from_frame_columns_and_window(bundled):
    bars = BarArrays.from_frame(bundled.set_index("time"))
    assert len(bars) == 41979
    assert bars.time_s[0] == int(pd.Timestamp("2017-05-01 10:00").value // 10**9)
    np.testing.assert_array_equal(bars.spread_points[:3], [7, 7, 7])
    jan = bars.window("2024-01-01", None)
    assert len(jan) == 528
    with pytest.raises(NeurofxError, match="missing column"):
        BarArrays.from_frame(bundled.drop(columns=["high"]))
    with pytest.raises(NeurofxError, match="increasing"):
        BarArrays.from_frame(bundled.iloc[[1, 0, 2]])
    with pytest.raises(NeurofxError, match="no bars"):
        bars.window("2030-01-01", "2031-01-01")
    with pytest.raises(NeurofxError, match="unknown feed"):
        make_feed(bars, "csv")
