"""Autograd ops: each enqueues one forward kernel and registers one backward.

Import the functions from here: ``from neurofx.nn import ops``; ``ops.linear(x, w, b)``.
"""

from .elementwise import (
    ACTIVATIONS,
    activation,
    add,
    bias_add,
    dropout,
    mul,
    scale,
    sub,
)
from .linalg import linear, matmul, transpose
from .reduce import mean, mse_loss, sum_all
from .shape import concat, reshape, slice_cols, split
from .softmax import softmax

__all__ = [
    "ACTIVATIONS", "activation", "add", "bias_add", "concat", "dropout", "linear", "matmul",
    "mean", "mse_loss", "mul", "reshape", "scale", "slice_cols", "softmax", "split", "sub",
    "sum_all", "transpose",
]
