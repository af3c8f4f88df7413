"""Layers beyond Dense (importing registers them): LSTM, Conv1D, BatchNorm, VAEHead, attention
(grouped-KV multi-head and the seed's multi-layer cross-attention), PLR, RevIN, and the TPM
encoder blocks (CSCM short-term features, TPM dual-attention encoder/decoder)."""

from .attention import LayerNorm, MLCrossAttentionMLKV, MultiHeadAttention
from .conv import Conv1D
from .cscm import CSCM
from .lstm import LSTM
from .norm import BatchNorm
from .plr import PLR
from .revin import RevIN
from .tpm import TPM
from .vae import VAEHead

__all__ = ["CSCM", "LSTM", "PLR", "TPM", "BatchNorm", "Conv1D", "LayerNorm",
           "MLCrossAttentionMLKV", "MultiHeadAttention", "RevIN", "VAEHead"]
