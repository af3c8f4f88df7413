"""Bar data: loaders, validation, the bundled EURUSD H1 set, seed features."""

from neurofx.data.features import (
    compute_features,
    first_decision_bar,
    first_valid_row,
    state_window,
    state_windows,
)
from neurofx.data.loaders import bundled_path, load_bars, parse_column_map
from neurofx.data.validate import BarDataError

__all__ = [
    "BarDataError",
    "bundled_path",
    "compute_features",
    "first_decision_bar",
    "first_valid_row",
    "load_bars",
    "parse_column_map",
    "state_window",
    "state_windows",
]
