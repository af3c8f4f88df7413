"""Layers beyond Dense: LSTM, Conv1D, BatchNorm, VAEHead (importing registers them)."""

from .conv import Conv1D
from .lstm import LSTM
from .norm import BatchNorm
from .vae import VAEHead

__all__ = ["LSTM", "BatchNorm", "Conv1D", "VAEHead"]
