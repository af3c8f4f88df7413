"""Adagrad: per-element learning rates from the running sum of squared gradients."""

from __future__ import annotations

import numpy as np

from ..parameters import ParameterStore
from .base import Optimizer, StateSlot, check_lr, check_nonneg


class Adagrad(Optimizer):
    r"""Adagrad (torch.optim.Adagrad semantics and defaults).

    .. math::
       \begin{aligned}
         &\textbf{input}: \gamma \text{ (lr)}, \theta_0, \lambda \text{ (weight decay)},
             \tau \text{ (initial accumulator value)}, \eta \text{ (lr decay)}, \epsilon \\
         &\textbf{initialize}: state\_sum_0 \leftarrow \tau \\
         &\textbf{for}\ t = 1 \textbf{ to } \ldots \textbf{ do} \\
         &\quad g_t \leftarrow \nabla_\theta f_t(\theta_{t-1}) + \lambda \theta_{t-1} \\
         &\quad \tilde{\gamma} \leftarrow \gamma / (1 + (t - 1) \eta) \\
         &\quad state\_sum_t \leftarrow state\_sum_{t-1} + g_t^2 \\
         &\quad \theta_t \leftarrow \theta_{t-1} - \tilde{\gamma}\, g_t /
             (\sqrt{state\_sum_t} + \epsilon) \\
         &\textbf{return}\ \theta_t
       \end{aligned}

    Duchi, Hazan and Singer 2011, "Adaptive Subgradient Methods for Online Learning and
    Stochastic Optimization". State: ``sum``.
    """

    kernel_name = "adagrad_step"

    def __init__(self, store: ParameterStore, lr: float = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
                 eps: float = 1e-10):
        super().__init__(store, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                     initial_accumulator_value=initial_accumulator_value,
                                     eps=eps))

    @classmethod
    def _validate(cls, h):
        h["lr"] = check_lr(h["lr"])
        h["lr_decay"] = check_nonneg("lr_decay", h["lr_decay"])
        h["weight_decay"] = check_nonneg("weight_decay", h["weight_decay"])
        h["initial_accumulator_value"] = check_nonneg(
            "initial_accumulator_value", h["initial_accumulator_value"])
        h["eps"] = check_nonneg("eps", h["eps"], "epsilon")
        return h

    def _slots(self):
        return [StateSlot("sum", self.store.size, fill=self.hyper["initial_accumulator_value"])]

    def _launch(self, t):
        h, s = self.hyper, self.store
        clr = h["lr"] / (1.0 + (t - 1) * h["lr_decay"])
        self._enqueue(self._kernel(), s.data_buf, s.grad_buf, self._views["sum"],
                      self._n, np.float32(clr), np.float32(h["weight_decay"]),
                      np.float32(h["eps"]))
