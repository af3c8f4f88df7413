"""Shared test setup: headless matplotlib, a small bar file."""

import gzip
import importlib.resources
import os

import pytest

from neurofx.data import load_bars

os.environ.setdefault("MPLBACKEND", "Agg")


def write_small_bars(folder):
    """December 2023 and January 2024 of the bundled file (enough warm-up for 2024-01-08 on),
    so each command loads 1,010 bars instead of 42,000. Returns the CSV's path."""
    src = importlib.resources.files("neurofx.data").joinpath("EURUSD_H1.csv.gz")
    with gzip.open(str(src), "rt") as fh:
        lines = [ln for i, ln in enumerate(fh) if i == 0 or ln.startswith(("2023-12", "2024-01"))]
    path = folder / "EURUSD_H1.csv"
    path.write_text("".join(lines))
    return path


@pytest.fixture(scope="session")
def small_bars(tmp_path_factory):
    """Path of the small bar file (``write_small_bars``), written once per session."""
    return write_small_bars(tmp_path_factory.mktemp("bars"))


@pytest.fixture(scope="session")
def spring_2023_bars(tmp_path_factory):
    """Bundled bars of 2022-09 .. 2023-03 as a CSV (warm-up for passes in March 2023)."""
    path = tmp_path_factory.mktemp("bars") / "eurusd_h1_trim.csv"
    load_bars().loc["2022-09-01":"2023-03-31"].to_csv(path)
    return path
