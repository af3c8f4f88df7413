"""neurofx: FX trajectories on backtrader, neural agents on OpenCL, honest backtest reports."""

__version__ = "0.1.0"
