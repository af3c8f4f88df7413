"""Resilient backpropagation (Rprop)."""

from __future__ import annotations

import numpy as np

from ..parameters import ParameterStore
from .base import Optimizer, OptimizerError, StateSlot, check_lr, check_pair


class Rprop(Optimizer):
    r"""Resilient backpropagation (torch.optim.Rprop semantics and defaults).

    .. math::
       \begin{aligned}
         &\textbf{input}: \theta_0, \gamma \text{ (lr)}, \eta_{+/-} \text{ (etaplus,
             etaminus)}, \Gamma_{max/min} \text{ (step sizes)} \\
         &\textbf{initialize}: g_{prev} \leftarrow 0, \ \eta \leftarrow \gamma
             \text{ (one step size per element)} \\
         &\textbf{for}\ t = 1 \textbf{ to } \ldots \textbf{ do} \\
         &\quad g_t \leftarrow \nabla_\theta f_t(\theta_{t-1}) \\
         &\quad \textbf{if}\ g_{prev} g_t > 0:\ \eta_t \leftarrow \min(\eta_{t-1} \eta_+,
             \Gamma_{max}) \\
         &\quad \textbf{else if}\ g_{prev} g_t < 0:\ \eta_t \leftarrow \max(\eta_{t-1} \eta_-,
             \Gamma_{min}),\ g_t \leftarrow 0 \\
         &\quad \textbf{else}:\ \eta_t \leftarrow \eta_{t-1} \\
         &\quad \theta_t \leftarrow \theta_{t-1} - \eta_t \,\mathrm{sign}(g_t) \\
         &\quad g_{prev} \leftarrow g_t \\
         &\textbf{return}\ \theta_t
       \end{aligned}

    Riedmiller and Braun 1993, "A direct adaptive method for faster backpropagation learning:
    the RPROP algorithm". State: ``prev`` and ``step_size`` (full size each).

    .. note::
       As in torch, every step size is clamped into [Γmin, Γmax] on every step (also the initial
       lr), and the sign test uses the float32 product g_prev * g_t. Rprop was designed for full
       batches; with noisy mini-batch gradients it can oscillate (course 7).
    """

    kernel_name = "rprop_step"

    def __init__(self, store: ParameterStore, lr: float = 1e-2, etas=(0.5, 1.2),
                 step_sizes=(1e-6, 50.0)):
        super().__init__(store, dict(lr=lr, etas=etas, step_sizes=step_sizes))

    @classmethod
    def _validate(cls, h):
        h["lr"] = check_lr(h["lr"])
        h["etas"] = check_pair("etas", h["etas"])
        h["step_sizes"] = check_pair("step_sizes", h["step_sizes"])
        etaminus, etaplus = h["etas"]
        if not 0.0 < etaminus < 1.0 < etaplus:
            raise OptimizerError(f"Invalid eta values: {etaminus}, {etaplus} "
                                 "(need 0 < etaminus < 1 < etaplus)")
        lo, hi = h["step_sizes"]
        if not 0.0 <= lo <= hi:
            raise OptimizerError(f"Invalid step_sizes: {lo}, {hi} (need 0 <= min <= max)")
        return h

    def _slots(self):
        n = self.store.size
        return [StateSlot("prev", n), StateSlot("step_size", n, fill=self.hyper["lr"])]

    def _launch(self, t):
        h, s = self.hyper, self.store
        (etaminus, etaplus), (lo, hi) = h["etas"], h["step_sizes"]
        self._enqueue(self._kernel(), s.data_buf, s.grad_buf, self._views["prev"],
                      self._views["step_size"], self._n, np.float32(etaminus),
                      np.float32(etaplus), np.float32(lo), np.float32(hi))
