"""Shared test setup: quiet device banner, headless matplotlib."""

import os

os.environ.setdefault("NEUROFX_QUIET_DEVICE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
