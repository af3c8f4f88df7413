"""RMSprop, optionally centered and with momentum."""

from __future__ import annotations

import numpy as np

from ..parameters import ParameterStore
from .base import Optimizer, StateSlot, check_lr, check_nonneg


class RMSprop(Optimizer):
    r"""RMSprop (torch.optim.RMSprop semantics and defaults).

    .. math::
       \begin{aligned}
         &\textbf{input}: \alpha \text{ (alpha)}, \gamma \text{ (lr)}, \theta_0, \lambda
             \text{ (weight decay)}, \mu \text{ (momentum)}, \textit{centered}, \epsilon \\
         &\textbf{initialize}: v_0 \leftarrow 0, \ b_0 \leftarrow 0, \ g^{ave}_0 \leftarrow 0 \\
         &\textbf{for}\ t = 1 \textbf{ to } \ldots \textbf{ do} \\
         &\quad g_t \leftarrow \nabla_\theta f_t(\theta_{t-1}) + \lambda \theta_{t-1} \\
         &\quad v_t \leftarrow \alpha v_{t-1} + (1 - \alpha) g_t^2 \\
         &\quad \tilde{v}_t \leftarrow v_t \\
         &\quad \textbf{if}\ \textit{centered}:\ g^{ave}_t \leftarrow \alpha g^{ave}_{t-1}
             + (1 - \alpha) g_t, \ \tilde{v}_t \leftarrow v_t - (g^{ave}_t)^2 \\
         &\quad \textbf{if}\ \mu > 0:\ b_t \leftarrow \mu b_{t-1} + g_t / (\sqrt{\tilde{v}_t}
             + \epsilon), \ \theta_t \leftarrow \theta_{t-1} - \gamma b_t \\
         &\quad \textbf{else}:\ \theta_t \leftarrow \theta_{t-1} - \gamma g_t /
             (\sqrt{\tilde{v}_t} + \epsilon) \\
         &\textbf{return}\ \theta_t
       \end{aligned}

    Hinton, Srivastava, Swersky, "Neural Networks for Machine Learning", lecture 6e; centered
    form after Graves 2013. State: ``square_avg``, ``momentum_buffer`` (momentum > 0),
    ``grad_avg`` (centered). No bias correction (unlike Adam).

    .. note::
       In the centered form ṽ is clamped at 0 before the square root, so float32 rounding of
       v - (g_ave)^2 cannot produce a NaN (in exact arithmetic ṽ >= 0 anyway).
    """

    kernel_name = "rmsprop_step"

    def __init__(self, store: ParameterStore, lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum: float = 0.0,
                 centered: bool = False):
        super().__init__(store, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                     momentum=momentum, centered=centered))

    @classmethod
    def _validate(cls, h):
        h["lr"] = check_lr(h["lr"])
        h["alpha"] = check_nonneg("alpha", h["alpha"])
        h["eps"] = check_nonneg("eps", h["eps"], "epsilon")
        h["weight_decay"] = check_nonneg("weight_decay", h["weight_decay"])
        h["momentum"] = check_nonneg("momentum", h["momentum"])
        h["centered"] = bool(h["centered"])
        return h

    def _slots(self):
        n, h = self.store.size, self.hyper
        slots = [StateSlot("square_avg", n)]
        if h["momentum"] > 0:
            slots.append(StateSlot("momentum_buffer", n))
        if h["centered"]:
            slots.append(StateSlot("grad_avg", n))
        return slots

    def _options(self):
        h = self.hyper
        return (("-DCENTERED",) if h["centered"] else ()) + (
            ("-DMOMENTUM",) if h["momentum"] > 0 else ())

    def _launch(self, t):
        h, s = self.hyper, self.store
        bufs = [s.data_buf, s.grad_buf, self._views["square_avg"]]
        if h["centered"]:
            bufs.append(self._views["grad_avg"])
        if h["momentum"] > 0:
            bufs.append(self._views["momentum_buffer"])
        self._enqueue(self._kernel(), *bufs, self._n, np.float32(h["lr"]),
                      np.float32(h["alpha"]), np.float32(1.0 - h["alpha"]), np.float32(h["eps"]),
                      np.float32(h["weight_decay"]), np.float32(h["momentum"]))
