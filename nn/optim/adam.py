"""Adam (with optional AMSGrad and L2 weight decay) and AdamW (decoupled weight decay)."""

from __future__ import annotations

import math

import numpy as np

from ..parameters import ParameterStore
from .base import Optimizer, StateSlot, check_betas, check_lr, check_nonneg, decoupled_decay


class Adam(Optimizer):
    r"""Adam (torch.optim.Adam semantics and defaults).

    .. math::
       \begin{aligned}
         &\textbf{input}: \gamma \text{ (lr)}, \beta_1, \beta_2 \text{ (betas)}, \theta_0,
             \lambda \text{ (weight decay)}, \textit{amsgrad}, \epsilon \\
         &\textbf{initialize}: m_0 \leftarrow 0, \ v_0 \leftarrow 0, \ v_0^{max} \leftarrow 0 \\
         &\textbf{for}\ t = 1 \textbf{ to } \ldots \textbf{ do} \\
         &\quad g_t \leftarrow \nabla_\theta f_t(\theta_{t-1}) + \lambda \theta_{t-1} \\
         &\quad m_t \leftarrow \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
         &\quad v_t \leftarrow \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
         &\quad \widehat{m_t} \leftarrow m_t / (1 - \beta_1^t) \\
         &\quad \textbf{if}\ \textit{amsgrad}:\ v_t^{max} \leftarrow \max(v_{t-1}^{max}, v_t),
             \ \widehat{v_t} \leftarrow v_t^{max} / (1 - \beta_2^t) \\
         &\quad \textbf{else}:\ \widehat{v_t} \leftarrow v_t / (1 - \beta_2^t) \\
         &\quad \theta_t \leftarrow \theta_{t-1} - \gamma \widehat{m_t} /
             (\sqrt{\widehat{v_t}} + \epsilon) \\
         &\textbf{return}\ \theta_t
       \end{aligned}

    Kingma and Ba 2014, "Adam: A Method for Stochastic Optimization"; AMSGrad after Reddi et al.
    2018, "On the Convergence of Adam and Beyond". State: ``exp_avg`` (m), ``exp_avg_sq`` (v),
    ``max_exp_avg_sq`` (amsgrad).

    .. note::
       Computed as torch does: ``theta -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps)``. The
       seed's MQL5 kernel folds both corrections into ``lt = lr sqrt(bc2) / bc1`` and divides by
       ``sqrt(v) + 1e-37``, which scales eps by sqrt(bc2); it also clamps weights to
       +-MAX_WEIGHT and scales L1/L2 by lt. None of that is reproduced.
    """

    kernel_name = "adam_step"
    decoupled: bool = False

    def __init__(self, store: ParameterStore, lr: float = 1e-3, betas=(0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False):
        super().__init__(store, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                     amsgrad=amsgrad))

    @classmethod
    def _validate(cls, h):
        h["lr"] = check_lr(h["lr"])
        h["betas"] = check_betas(h["betas"])
        h["eps"] = check_nonneg("eps", h["eps"], "epsilon")
        h["weight_decay"] = check_nonneg("weight_decay", h["weight_decay"])
        h["amsgrad"] = bool(h["amsgrad"])
        return h

    def _slots(self):
        n = self.store.size
        slots = [StateSlot("exp_avg", n), StateSlot("exp_avg_sq", n)]
        if self.hyper["amsgrad"]:
            slots.append(StateSlot("max_exp_avg_sq", n))
        return slots

    def _options(self):
        return ("-DAMSGRAD",) if self.hyper["amsgrad"] else ()

    def _launch(self, t):
        h, s = self.hyper, self.store
        b1, b2 = h["betas"]
        lr, wd = h["lr"], h["weight_decay"]
        l2, lr_wd = (0.0, decoupled_decay(lr, wd)) if self.decoupled else (wd, 0.0)
        bufs = [s.data_buf, s.grad_buf, self._views["exp_avg"], self._views["exp_avg_sq"]]
        if h["amsgrad"]:
            bufs.append(self._views["max_exp_avg_sq"])
        self._enqueue(self._kernel(), *bufs, self._n, np.float32(1.0 - b1), np.float32(b2),
                      np.float32(1.0 - b2),
                      np.float32(h["eps"]), np.float32(l2), np.float32(lr_wd),
                      np.float32(lr / (1.0 - b1**t)), np.float32(math.sqrt(1.0 - b2**t)))


class AdamW(Adam):
    r"""Adam with decoupled weight decay (torch.optim.AdamW semantics and defaults).

    .. math::
       \begin{aligned}
         &\textbf{input}: \gamma \text{ (lr)}, \beta_1, \beta_2, \theta_0, \lambda
             \text{ (weight decay)}, \textit{amsgrad}, \epsilon \\
         &\textbf{for}\ t = 1 \textbf{ to } \ldots \textbf{ do} \\
         &\quad g_t \leftarrow \nabla_\theta f_t(\theta_{t-1}) \\
         &\quad \theta_t \leftarrow \mathrm{fl}_{32}(1 - \gamma \lambda)\, \theta_{t-1} \\
         &\quad m_t, v_t, \widehat{m_t}, \widehat{v_t} \ \text{as in Adam} \\
         &\quad \theta_t \leftarrow \theta_t - \gamma \widehat{m_t} /
             (\sqrt{\widehat{v_t}} + \epsilon) \\
         &\textbf{return}\ \theta_t
       \end{aligned}

    Loshchilov and Hutter 2019, "Decoupled Weight Decay Regularization". Default weight decay
    0.01 (torch). Same kernel as :class:`Adam`. The decay factor ``1 - lr wd`` is rounded to
    float32 (fl32) once per step, as torch's ``p.mul_(1 - lr * wd)`` does
    (:func:`~.base.decoupled_decay`): up to 3e-8 relative per step away from exact arithmetic,
    on torch's side.
    """

    decoupled = True

    def __init__(self, store: ParameterStore, lr: float = 1e-3, betas=(0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False):
        super().__init__(store, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad)
