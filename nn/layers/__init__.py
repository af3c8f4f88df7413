"""Layers beyond Dense (importing registers them): LSTM, Conv1D, BatchNorm, VAEHead, attention
(grouped-KV multi-head and the seed's multi-layer cross-attention), PLR, RevIN."""

from .attention import LayerNorm, MLCrossAttentionMLKV, MultiHeadAttention
from .conv import Conv1D
from .lstm import LSTM
from .norm import BatchNorm
from .plr import PLR
from .revin import RevIN
from .vae import VAEHead

__all__ = ["LSTM", "PLR", "BatchNorm", "Conv1D", "LayerNorm", "MLCrossAttentionMLKV",
           "MultiHeadAttention", "RevIN", "VAEHead"]
