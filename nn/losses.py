"""Training losses beyond MSE: FreDF (time + frequency domain forecast error), and any loss
restricted to the active rows of a batch (:func:`masked_loss`)."""

from __future__ import annotations

import numpy as np

from . import ops
from .ops.forecast import cabs_mean, rdft
from .tensor import Tensor


def fredf_loss(pred: Tensor, target: Tensor, n_vars: int, horizon: int, alpha: float = 0.7,
               time_major: bool = True) -> Tensor:
    """FreDF loss (Wang et al. 2024, arXiv 2402.02399), shape (1,)::

        loss = (1 - alpha) * mean_{b,t,v} (pred - target)^2
               + alpha * mean_{b,v,k} | F(pred)_k - F(target)_k |

    F = the unnormalised real DFT along time per variable (numpy/torch ``rfft``: bins
    k = 0 .. T//2, X_k = sum_t x_t exp(-2 pi i k t / T)) and |.| the complex modulus, i.e. the
    paper's L1 frequency loss (``(rfft(pred) - rfft(target)).abs().mean()``). By linearity
    F(pred) - F(target) = F(pred - target): one GEMM with a cached cos/sin matrix.

    ``pred`` and ``target`` are (B, T*V) or any shape with T*V values per sample, read as
    (B, T, V) bar-major when ``time_major`` (the encoder's 24 bars x 9 forecast), else
    (B, V, T). No gradient flows to the target. With T = 1 the frequency term is the mean
    absolute error.

    .. note:: The seed's FreDF layer (spec 9.4) is an identity in forward and mixes a
       frequency-domain error into the gradient only; here the mixed objective itself is the
       loss, so its value and its gradient agree. A squared frequency error would equal the
       time MSE up to bin weights (Parseval), hence the paper's L1.
    """
    if pred.shape != target.shape:
        raise ValueError(f"fredf_loss: prediction {pred.shape} and target {target.shape} differ")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"fredf_loss: alpha must be in [0, 1], got {alpha}")
    if n_vars < 1 or horizon < 1 or pred.numel % (n_vars * horizon):
        raise ValueError(f"fredf_loss: {pred.shape} is not a batch of horizon={horizon} x "
                         f"n_vars={n_vars} forecasts")
    time_err = ops.mse_loss(pred, target)
    spec, groups, width = rdft(ops.sub(pred, target), n_vars, horizon, time_major)
    freq_err = cabs_mean(spec, groups, horizon // 2 + 1, width)
    return ops.add(ops.scale(time_err, 1.0 - alpha), ops.scale(freq_err, alpha))


def masked_loss(loss_fn, pred: Tensor, target: Tensor, mask) -> Tensor:
    """``loss_fn`` over the rows with mask 1 only (pred, target (..., W); mask of shape
    pred.shape[:-1], 0/1): inactive rows are zeroed in both and the mean is rescaled to the
    active rows. Exact for losses that average a per-row term over rows (MSE, FreDF)."""
    mask = np.asarray(mask, np.float32)
    active = float(mask.sum())
    if active == mask.size:
        return loss_fn(pred, target)
    if active == 0:
        raise ValueError("masked_loss: no active row")
    if mask.shape != pred.shape[:-1]:
        raise ValueError(f"masked_loss: mask {mask.shape} != prediction rows {pred.shape[:-1]}")
    full = Tensor.from_numpy(np.broadcast_to(mask[..., None], pred.shape), device=pred.device)
    loss = loss_fn(ops.mul(pred, full), ops.mul(target, full))
    return ops.scale(loss, mask.size / active)


__all__ = ["fredf_loss", "masked_loss"]
