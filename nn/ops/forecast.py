"""Forecast head ops (kernels/forecast.cl): RevIN de-normalisation, a real DFT along time as
one GEMM with a cached cos/sin matrix, and the mean modulus of complex spectra."""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import pyopencl as cl

from ..device import Device
from ..gemm import get_gemm
from ..launch import f32, i32, launch
from ..tensor import Tensor, make_output

FILE = "forecast.cl"
WG = 256  # must match forecast.cl


@dataclass
class IndexMap:
    """An output -> source element map on the device, with its inverse (CSR) for backward."""

    n_src: int
    n_out: int
    idx_buf: cl.Buffer
    order_buf: cl.Buffer
    starts_buf: cl.Buffer

    @classmethod
    def build(cls, device: Device, index: np.ndarray, n_src: int) -> IndexMap:
        index = np.asarray(index, np.int32)
        order = np.argsort(index, kind="stable").astype(np.int32)
        starts = np.searchsorted(index[order], np.arange(n_src + 1)).astype(np.int32)
        bufs = []
        for host in (index, order, starts):
            buf = device.alloc(host.nbytes, "other", device.owner)
            cl.enqueue_copy(device.queue, buf, host, is_blocking=True)
            bufs.append(buf)
        return cls(n_src, len(index), *bufs)


def revin_denorm(x: Tensor, imap: IndexMap, gamma: Tensor, beta: Tensor, mean: Tensor,
                 var: Tensor, eps: float, min_gamma: float = 1e-3) -> Tensor:
    """Undo ``y = gamma * (x - mean) / sqrt(var + eps) + beta`` per output element j with the
    statistics of source element k = map[j]::

        out[b, j] = (x[b, j] - beta[k]) * sqrt(var[k] + eps) / gamma'[k] + mean[k]

    gamma' = gamma with its magnitude clamped to >= ``min_gamma`` (sign kept). Gradients flow
    to x, gamma and beta; mean and var are constants (running statistics).
    """
    if len(x.shape) != 2 or x.shape[1] != imap.n_out:
        raise ValueError(f"revin_denorm: input must be (B, {imap.n_out}), got {x.shape}")
    for t, name in ((gamma, "gamma"), (beta, "beta"), (mean, "mean"), (var, "var")):
        if t.numel != imap.n_src:
            raise ValueError(f"revin_denorm: {name} has {t.numel} elements, the map's source "
                             f"has {imap.n_src}")
    batch, n_out = x.shape
    out = make_output(x.shape, (x, gamma, beta), "revin")
    dev = out.device
    launch(dev, FILE, "revin_fwd", (n_out, batch), x.buf, gamma.buf, beta.buf, mean.buf,
           var.buf, imap.idx_buf, out.buf, f32(eps), f32(min_gamma))
    if out.requires_grad:
        def _backward():
            if x.requires_grad:
                launch(dev, FILE, "revin_bwd_x", (n_out, batch), out.grad_buf, gamma.buf,
                       var.buf, imap.idx_buf, x.ensure_grad(), f32(eps), f32(min_gamma))
            if gamma.requires_grad or beta.requires_grad:
                spare = None if gamma.requires_grad and beta.requires_grad else dev.alloc(
                    4 * imap.n_src, "activations", dev.owner)
                dg = gamma.ensure_grad() if gamma.requires_grad else spare
                db = beta.ensure_grad() if beta.requires_grad else spare
                launch(dev, FILE, "revin_bwd_params", imap.n_src, out.grad_buf, x.buf,
                       gamma.buf, beta.buf, var.buf, imap.order_buf, imap.starts_buf, dg, db,
                       i32(batch), i32(n_out), f32(eps), f32(min_gamma))
        out._backward = _backward
    return out


_dft_cache: weakref.WeakKeyDictionary[Device, dict[int, cl.Buffer]] = weakref.WeakKeyDictionary()


def dft_matrix(horizon: int) -> np.ndarray:
    """(2K, T) float64, K = T // 2 + 1: rows k < K are cos(2 pi k t / T), rows K + k are
    -sin(2 pi k t / T), so ``M @ x`` = (Re, Im) of numpy's rfft(x) (no normalisation)."""
    k = np.arange(horizon // 2 + 1)[:, None]
    ang = 2.0 * np.pi * k * np.arange(horizon)[None, :] / horizon
    sin = np.sin(ang)
    sin[(k[:, 0] == 0) | (2 * k[:, 0] == horizon)] = 0.0  # exact zeros at DC and Nyquist
    return np.concatenate([np.cos(ang), -sin])


def _dft_buf(device: Device, horizon: int) -> cl.Buffer:
    per_dev = _dft_cache.setdefault(device, {})
    buf = per_dev.get(horizon)
    if buf is None:
        host = dft_matrix(horizon).astype(np.float32)
        buf = device.alloc(host.nbytes, "other", "dft_matrix")
        cl.enqueue_copy(device.queue, buf, host, is_blocking=True)
        per_dev[horizon] = buf
    return buf


def rdft(x: Tensor, n_vars: int, horizon: int, time_major: bool) -> tuple[Tensor, int, int]:
    """Real DFT along time of each variable of x (B, T*V); one GEMM with the (2K, T) matrix
    of :func:`dft_matrix`. Returns (spectrum, groups, width): the spectrum is ``groups``
    blocks of (2, K, width) = (Re, Im) x frequency x variable; time-major x (B, T, V) gives
    groups = B, width = V, variable-major x (B, V, T) gives groups = B*V, width = 1."""
    t_v = n_vars * horizon
    if x.numel % t_v or x.numel == 0:
        raise ValueError(f"rdft: input {x.shape} is not a batch of {horizon} x {n_vars}")
    batch, n_freq = x.numel // t_v, horizon // 2 + 1
    out = make_output((batch, 2 * n_freq * n_vars), (x,), "rdft")
    dev = out.device
    gemm, m_buf = get_gemm(dev), _dft_buf(dev, horizon)
    if time_major:  # per sample: S (2K, V) = M (2K, T) @ x_b (T, V); M shared (stride 0)
        gemm.gemm(m_buf, x.buf, out.buf, 2 * n_freq, n_vars, horizon, batch=batch, stride_a=0)
        groups, width = batch, n_vars
    else:           # S (B*V, 2K) = x (B*V, T) @ M^T
        gemm.gemm(x.buf, m_buf, out.buf, batch * n_vars, 2 * n_freq, horizon, trans_b=True)
        groups, width = batch * n_vars, 1
    if out.requires_grad:
        def _backward():
            dx, ds = x.ensure_grad(), out.grad_buf
            if time_major:  # dx_b (T, V) += M^T (T, 2K) @ dS_b (2K, V)
                gemm.gemm(m_buf, ds, dx, horizon, n_vars, 2 * n_freq, trans_a=True,
                          accumulate=True, batch=batch, stride_a=0)
            else:           # dx (B*V, T) += dS (B*V, 2K) @ M (2K, T)
                gemm.gemm(ds, m_buf, dx, batch * n_vars, horizon, 2 * n_freq, accumulate=True)
        out._backward = _backward
    return out, groups, width


def cabs_mean(s: Tensor, groups: int, n_freq: int, width: int) -> Tensor:
    """Mean modulus sqrt(Re^2 + Im^2) over the groups x n_freq x width complex entries of a
    spectrum laid out as :func:`rdft` returns it; shape (1,). Gradient 0 where the modulus is 0."""
    if s.numel != 2 * groups * n_freq * width:
        raise ValueError(f"cabs_mean: {s.numel} values != 2 x {groups} x {n_freq} x {width}")
    out = make_output((1,), (s,), "cabs_mean")
    dev = out.device
    launch(dev, FILE, "cabs_mean_fwd", WG, s.buf, out.buf, i32(groups), i32(n_freq), i32(width),
           local_size=(WG,))
    if out.requires_grad:
        out._backward = lambda: launch(dev, FILE, "cabs_mean_bwd", groups * n_freq * width,
                                       s.buf, out.grad_buf, s.ensure_grad(), i32(n_freq),
                                       i32(width))
    return out


__all__ = ["IndexMap", "cabs_mean", "dft_matrix", "rdft", "revin_denorm"]
