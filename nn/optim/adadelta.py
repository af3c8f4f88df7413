"""Adadelta: unit-correcting adaptive steps from running averages of g^2 and delta^2."""

from __future__ import annotations

import numpy as np

from ..parameters import ParameterStore
from .base import Optimizer, OptimizerError, StateSlot, check_lr, check_nonneg


class Adadelta(Optimizer):
    r"""Adadelta (torch.optim.Adadelta semantics and defaults: lr 1.0, rho 0.9, eps 1e-6).

    .. math::
       \begin{aligned}
         &\textbf{input}: \gamma \text{ (lr)}, \theta_0, \rho \text{ (decay)}, \lambda
             \text{ (weight decay)}, \epsilon \\
         &\textbf{initialize}: v_0 \leftarrow 0 \text{ (square avg)}, \ u_0 \leftarrow 0
             \text{ (accumulate variables)} \\
         &\textbf{for}\ t = 1 \textbf{ to } \ldots \textbf{ do} \\
         &\quad g_t \leftarrow \nabla_\theta f_t(\theta_{t-1}) + \lambda \theta_{t-1} \\
         &\quad v_t \leftarrow \rho v_{t-1} + (1 - \rho) g_t^2 \\
         &\quad \Delta x_t \leftarrow \frac{\sqrt{u_{t-1} + \epsilon}}{\sqrt{v_t + \epsilon}}
             g_t \\
         &\quad u_t \leftarrow \rho u_{t-1} + (1 - \rho) \Delta x_t^2 \\
         &\quad \theta_t \leftarrow \theta_{t-1} - \gamma \Delta x_t \\
         &\textbf{return}\ \theta_t
       \end{aligned}

    Zeiler 2012, "ADADELTA: An Adaptive Learning Rate Method". State: ``square_avg`` (v),
    ``acc_delta`` (u). eps sits inside both square roots.
    """

    kernel_name = "adadelta_step"

    def __init__(self, store: ParameterStore, lr: float = 1.0, rho: float = 0.9,
                 eps: float = 1e-6, weight_decay: float = 0.0):
        super().__init__(store, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay))

    @classmethod
    def _validate(cls, h):
        h["lr"] = check_lr(h["lr"])
        rho = check_nonneg("rho", h["rho"])
        if rho > 1.0:
            raise OptimizerError(f"Invalid rho value: {rho} (rho must be in [0, 1])")
        h["rho"] = rho
        h["eps"] = check_nonneg("eps", h["eps"], "epsilon")
        h["weight_decay"] = check_nonneg("weight_decay", h["weight_decay"])
        return h

    def _slots(self):
        n = self.store.size
        return [StateSlot("square_avg", n), StateSlot("acc_delta", n)]

    def _launch(self, t):
        h, s = self.hyper, self.store
        self._enqueue(self._kernel(), s.data_buf, s.grad_buf, self._views["square_avg"],
                      self._views["acc_delta"], self._n, np.float32(h["lr"]),
                      np.float32(h["rho"]), np.float32(1.0 - h["rho"]), np.float32(h["eps"]),
                      np.float32(h["weight_decay"]))
