"""Replay all bundled bars with a no-op strategy through stock PandasData and the NumPy feed.

    .venv/bin/python benchmarks/replay.py [--repeat N]

Prints bars/s for each feed and the ratio, for a bare no-op ``bt.Strategy`` and for the
``ReplayStrategy`` base (which also runs the forex broker's bar cycle and records the account).
Times include cerebro setup and the feed's preload; the one-off ``BarArrays`` conversion is
timed separately. Rates use this process's CPU time (``time.process_time``, best of ``--repeat``)
so that other load on a shared machine does not skew the ratio; wall-clock rates are printed too.
"""

from __future__ import annotations

import argparse
import time

import backtrader as bt
import pandas as pd

from neurofx.strategies.feeds import BarArrays, make_feed
from neurofx.strategies.replay import ReplayStrategy, run_replay


def load_frame() -> pd.DataFrame:
    try:
        from neurofx.data.loaders import load_bars
    except ImportError:  # loader module not there: read the bundled file directly
        import importlib.resources

        path = importlib.resources.files("neurofx.data").joinpath("EURUSD_H1.csv.gz")
        return pd.read_csv(str(path), parse_dates=["time"])
    return load_bars()


class NoOp(bt.Strategy):
    def next(self):
        pass


def bare_replay(bars: BarArrays, feed: str) -> None:
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(make_feed(bars, feed))
    cerebro.addstrategy(NoOp)
    cerebro.run()


def best_rates(fn, n_bars: int, repeat: int) -> tuple[float, float]:
    """(bars per CPU second, bars per wall second), best of ``repeat`` runs each."""
    cpu = wall = float("inf")
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        cpu = min(cpu, time.process_time() - c0)
        wall = min(wall, time.perf_counter() - w0)
    return n_bars / cpu, n_bars / wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=2, help="runs per case, best is reported")
    args = ap.parse_args()
    frame = load_frame()
    t0 = time.perf_counter()
    bars = BarArrays.from_frame(frame)
    print(f"bars: {len(bars)}; BarArrays conversion {1e3 * (time.perf_counter() - t0):.1f} ms")
    cases = {
        "no-op bt.Strategy": lambda feed: bare_replay(bars, feed),
        "ReplayStrategy (broker cycle)": lambda feed: run_replay(bars, ReplayStrategy, feed=feed),
    }
    for name, fn in cases.items():
        rates = {feed: best_rates(lambda f=feed, run=fn: run(f), len(bars), args.repeat)
                 for feed in ("pandas", "numpy")}
        (pc, pw), (nc, nw) = rates["pandas"], rates["numpy"]
        print(f"{name:30s} PandasData {pc:8,.0f} bars/s  NumpyFeed {nc:8,.0f} bars/s  "
              f"ratio {nc / pc:.2f}x   (wall: {pw:,.0f} / {nw:,.0f} bars/s, {nw / pw:.2f}x)")

if __name__ == "__main__":
    main()
