"""Stochastic gradient descent with optional (Nesterov) momentum."""

from __future__ import annotations

import numpy as np

from ..parameters import ParameterStore
from .base import Optimizer, OptimizerError, StateSlot, check_lr, check_nonneg


class SGD(Optimizer):
    r"""Stochastic gradient descent (torch.optim.SGD semantics and defaults).

    .. math::
       \begin{aligned}
         &\textbf{input}: \gamma \text{ (lr)}, \theta_0 \text{ (params)}, \lambda \text{ (weight
             decay)}, \mu \text{ (momentum)}, \tau \text{ (dampening)}, \textit{nesterov} \\
         &\textbf{for}\ t = 1 \textbf{ to } \ldots \textbf{ do} \\
         &\quad g_t \leftarrow \nabla_\theta f_t(\theta_{t-1}) + \lambda \theta_{t-1} \\
         &\quad \textbf{if}\ \mu \neq 0: \\
         &\qquad b_t \leftarrow \mu b_{t-1} + (1 - \tau) g_t \ \textbf{if}\ t > 1
                 \ \textbf{else}\ g_t \\
         &\qquad g_t \leftarrow g_t + \mu b_t \ \textbf{if}\ \textit{nesterov}
                 \ \textbf{else}\ b_t \\
         &\quad \theta_t \leftarrow \theta_{t-1} - \gamma g_t \\
         &\textbf{return}\ \theta_t
       \end{aligned}

    Nesterov momentum after Sutskever et al. 2013, "On the importance of initialization and
    momentum in deep learning". State: ``momentum_buffer`` (b) when ``momentum != 0``.

    .. note::
       Like torch, lr multiplies the velocity on the way out (not inside it as in Sutskever et al.
       and the course's NAG slides), and the first step copies the gradient into b without
       dampening. The seed's MQL5 SGD (``delta = lr g x + mu delta``, weights clamped to
       +-MAX_WEIGHT) is not reproduced: no clamp here.
    """

    kernel_name = "sgd_step"

    def __init__(self, store: ParameterStore, lr: float = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False):
        super().__init__(store, dict(lr=lr, momentum=momentum, dampening=dampening,
                                     weight_decay=weight_decay, nesterov=nesterov))

    @classmethod
    def _validate(cls, h):
        h["lr"] = check_lr(h["lr"])
        h["momentum"] = check_nonneg("momentum", h["momentum"])
        h["dampening"] = float(h["dampening"])
        h["weight_decay"] = check_nonneg("weight_decay", h["weight_decay"])
        h["nesterov"] = bool(h["nesterov"])
        if h["nesterov"] and (h["momentum"] <= 0 or h["dampening"] != 0):
            raise OptimizerError("Nesterov momentum requires a momentum and zero dampening "
                                 f"(got momentum={h['momentum']}, dampening={h['dampening']})")
        return h

    def _slots(self):
        return [StateSlot("momentum_buffer", self.store.size)] if self.hyper["momentum"] else []

    def _options(self):
        opts = ("-DMOMENTUM",) if self.hyper["momentum"] else ()
        return opts + (("-DNESTEROV",) if self.hyper["nesterov"] else ())

    def _launch(self, t):
        h, s = self.hyper, self.store
        bufs = [s.data_buf, s.grad_buf]
        if h["momentum"]:
            bufs.append(self._views["momentum_buffer"])
        self._enqueue(self._kernel(), *bufs, self._n, np.float32(h["lr"]),
                      np.float32(h["weight_decay"]), np.float32(h["momentum"]),
                      np.float32(1.0 - h["dampening"]), np.int32(t == 1))
