"""NAdam: Adam with Nesterov momentum and a momentum-decay schedule."""

from __future__ import annotations

import numpy as np

from ..parameters import ParameterStore
from .base import Optimizer, StateSlot, check_betas, check_lr, check_nonneg, decoupled_decay


class NAdam(Optimizer):
    r"""NAdam (torch.optim.NAdam semantics and defaults).

    .. math::
       \begin{aligned}
         &\textbf{input}: \gamma_t \text{ (lr)}, \beta_1, \beta_2, \theta_0, \lambda
             \text{ (weight decay)}, \psi \text{ (momentum decay)}, \epsilon,
             \textit{decoupled\_weight\_decay} \\
         &\textbf{initialize}: m_0 \leftarrow 0, \ v_0 \leftarrow 0, \ \mu\_product_0
             \leftarrow 1 \\
         &\textbf{for}\ t = 1 \textbf{ to } \ldots \textbf{ do} \\
         &\quad g_t \leftarrow \nabla_\theta f_t(\theta_{t-1}) \\
         &\quad \textbf{if}\ \textit{decoupled}:\ \theta_{t-1} \leftarrow
             \mathrm{fl}_{32}(1 - \gamma \lambda)\, \theta_{t-1} \ \textbf{else}\ g_t \leftarrow g_t
             + \lambda \theta_{t-1} \\
         &\quad \mu_t \leftarrow \beta_1 (1 - \tfrac{1}{2} 0.96^{t \psi}), \ \mu_{t+1}
             \leftarrow \beta_1 (1 - \tfrac{1}{2} 0.96^{(t+1) \psi}) \\
         &\quad \mu\_product_t \leftarrow \mu\_product_{t-1} \mu_t \\
         &\quad m_t \leftarrow \beta_1 m_{t-1} + (1 - \beta_1) g_t, \ v_t \leftarrow
             \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
         &\quad d_t \leftarrow \sqrt{v_t / (1 - \beta_2^t)} + \epsilon \\
         &\quad \theta_t \leftarrow \theta_{t-1} - \gamma \frac{1 - \mu_t}{1 -
             \mu\_product_t} \frac{g_t}{d_t} - \gamma \frac{\mu_{t+1}}{1 - \mu\_product_t
             \mu_{t+1}} \frac{m_t}{d_t} \\
         &\textbf{return}\ \theta_t
       \end{aligned}

    Dozat 2016, "Incorporating Nesterov Momentum into Adam". State: ``exp_avg``,
    ``exp_avg_sq`` on the device; ``mu_product`` (a running product, not recomputed) and
    ``step`` on the host. Decoupled decay rounds ``1 - lr wd`` to float32 (fl32) as torch does
    (:func:`~.base.decoupled_decay`). ``mu_product`` is kept in float64 (torch: a float32
    tensor); within rtol 1e-5 / atol 1e-7 of torch over 200 steps.
    """

    kernel_name = "nadam_step"

    def __init__(self, store: ParameterStore, lr: float = 2e-3, betas=(0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum_decay: float = 4e-3,
                 decoupled_weight_decay: bool = False):
        super().__init__(store, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                     momentum_decay=momentum_decay,
                                     decoupled_weight_decay=decoupled_weight_decay))
        self.mu_product = 1.0

    @classmethod
    def _validate(cls, h):
        h["lr"] = check_lr(h["lr"])
        h["betas"] = check_betas(h["betas"])
        h["eps"] = check_nonneg("eps", h["eps"], "epsilon")
        h["weight_decay"] = check_nonneg("weight_decay", h["weight_decay"])
        h["momentum_decay"] = check_nonneg("momentum_decay", h["momentum_decay"])
        h["decoupled_weight_decay"] = bool(h["decoupled_weight_decay"])
        return h

    def _slots(self):
        n = self.store.size
        return [StateSlot("exp_avg", n), StateSlot("exp_avg_sq", n)]

    def _host_scalars(self):
        return {"mu_product": self.mu_product}

    def _set_host_scalars(self, values):
        self.mu_product = values["mu_product"]

    def _launch(self, t):
        h, s = self.hyper, self.store
        b1, b2 = h["betas"]
        lr, wd, psi = h["lr"], h["weight_decay"], h["momentum_decay"]
        l2, lr_wd = (0.0, decoupled_decay(lr, wd)) if h["decoupled_weight_decay"] else (wd, 0.0)
        mu = b1 * (1.0 - 0.5 * 0.96 ** (t * psi))
        mu_next = b1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * psi))
        self.mu_product *= mu
        c_grad = -lr * (1.0 - mu) / (1.0 - self.mu_product)
        c_m = -lr * mu_next / (1.0 - self.mu_product * mu_next)
        self._enqueue(self._kernel(), s.data_buf, s.grad_buf, self._views["exp_avg"],
                      self._views["exp_avg_sq"], self._n, np.float32(1.0 - b1),
                      np.float32(b2), np.float32(1.0 - b2), np.float32(h["eps"]), np.float32(l2),
                      np.float32(lr_wd),
                      np.float32(1.0 - b2**t), np.float32(c_grad), np.float32(c_m))
