"""Training losses of the study stages: the models' own loss functions over the active rows
of a batch, plus their extra terms (the VAE head's KL)."""

from __future__ import annotations

from functools import partial

import numpy as np

from neurofx import agents
from neurofx.agents.tpm import LOSSES
from neurofx.nn import ops
from neurofx.nn.losses import masked_loss
from neurofx.nn.tensor import Tensor


def masked_mse(out: Tensor, target: np.ndarray, mask: np.ndarray) -> Tensor:
    """Mean squared error over the rows with ``mask == 1`` (out and target are (..., W), mask
    out.shape[:-1])."""
    active = float(mask.sum())
    target = np.asarray(target, np.float32)
    if active == mask.size:
        return ops.mse_loss(out, Tensor.from_numpy(target, device=out.device))
    full = np.broadcast_to(mask[..., None], target.shape).astype(np.float32)
    masked = ops.mul(out, Tensor.from_numpy(full, device=out.device))
    loss = ops.mse_loss(masked, Tensor.from_numpy(target * full, device=out.device))
    return ops.scale(loss, mask.size / active)


def set_loss(model, role: str, name: str) -> str:
    """Give ``model`` the training loss of its registry entry (``neurofx.agents.tpm.LOSSES`` key
    ``"<role>:<name>"``, e.g. FreDF for the TPM models); others keep MSE. Returns its label."""
    fn = LOSSES.get(f"{role}:{agents.resolve(role, name)}")
    if fn is not None:
        model.loss_fn = fn
    return loss_label(model)


def loss_label(model) -> str:
    """``"mse"`` or e.g. ``"fredf_loss(n_vars=9, horizon=24, alpha=0.7, time_major=True)"``."""
    fn = model.loss_fn
    if fn is ops.mse_loss:
        return "mse"
    if isinstance(fn, partial):
        args = ", ".join(f"{k}={v}" for k, v in fn.keywords.items())
        return f"{fn.func.__name__}({args})"
    return getattr(fn, "__name__", type(fn).__name__)


def model_loss(model, out: Tensor, target: np.ndarray, mask: np.ndarray) -> Tensor:
    """``model.loss_fn`` of ``out`` against ``target`` over the rows with ``mask == 1``
    (:func:`masked_mse` for MSE, bit-identical to earlier runs; ``masked_loss`` otherwise)."""
    if model.loss_fn is ops.mse_loss:
        return masked_mse(out, target, mask)
    tgt = Tensor.from_numpy(np.asarray(target, np.float32), device=out.device)
    return masked_loss(model.loss_fn, out, tgt, mask)


def with_extras(loss: Tensor, model) -> Tensor:
    """``loss`` plus the model's extra loss terms (e.g. the VAE head's KL divergence)."""
    for extra in model.net.extra_losses():
        loss = ops.add(loss, extra)
    return loss
