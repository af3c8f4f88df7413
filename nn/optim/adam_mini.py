"""Adam-mini: Adam with one second moment per parameter block (Zhang et al. 2024)."""

from __future__ import annotations

import math

import numpy as np
import pyopencl as cl

from ..parameters import ParameterStore, ParamSpec
from .base import (
    Optimizer,
    OptimizerError,
    StateSlot,
    check_betas,
    check_lr,
    check_nonneg,
    decoupled_decay,
)

TABLE_COLS = 8  # int columns per tensor row of the device table (see kernels/adam_mini.cl)
# the official adam_mini 1.1.1: no weight decay where the lower-cased name contains one of these
NO_DECAY_NAME_PARTS = ("bias", "norm", "ln")
NORM_SCALE_NAMES = ("gamma",)  # neurofx's BatchNorm / LayerNorm scale (shift: beta, role bias)


def no_weight_decay(spec: ParamSpec) -> bool:
    """True for the parameters Adam-mini never decays: biases and normalisation parameters.

    A parameter is one when (a) its dotted name, lower-cased, contains ``bias``, ``norm`` or
    ``ln`` anywhere (the official package's rule, so torch-style names behave as there), or
    (b) its layer gave it role ``"bias"`` (every bias vector and the norms' shift ``beta``), or
    (c) its own name (after the last dot) is ``gamma``, the scale of neurofx's BatchNorm and
    LayerNorm. (b) and (c) cover neurofx names the substring rule misses, e.g. ``0.gamma`` /
    ``0.beta`` of a norm layer at position 0 of a Sequential."""
    name = spec.name.lower()
    return (any(part in name for part in NO_DECAY_NAME_PARTS) or spec.role == "bias"
            or name.rsplit(".", 1)[-1] in NORM_SCALE_NAMES)


class AdamMini(Optimizer):
    r"""Adam-mini: AdamW with one second moment per block (official adam_mini 1.1.x rule).

    .. math::
       \begin{aligned}
         &\textbf{input}: \gamma \text{ (lr)}, \beta_1, \beta_2, \theta_0, \lambda
             \text{ (weight decay)}, \epsilon, \text{blocks } b \text{ of } B_b
             \text{ elements} \\
         &\textbf{initialize}: m_0 \leftarrow 0 \text{ (full size)}, \ v_{0,b} \leftarrow 0
             \text{ (one per block)} \\
         &\textbf{for}\ t = 1 \textbf{ to } \ldots \textbf{ do} \\
         &\quad g_t \leftarrow \nabla_\theta f_t(\theta_{t-1}) \\
         &\quad \theta_t \leftarrow \mathrm{fl}_{32}(1 - \gamma \lambda_p)\, \theta_{t-1},
             \ \lambda_p = 0 \text{ for biases and norms, else } \lambda \\
         &\quad m_t \leftarrow \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
         &\quad v_{t,b} \leftarrow \beta_2 v_{t-1,b} + (1 - \beta_2)\,
             \tfrac{1}{B_b} \textstyle\sum_{i \in b} g_{t,i}^2 \\
         &\quad \theta_{t,i} \leftarrow \theta_{t,i} - \frac{\gamma}{1 - \beta_1^t}
             \frac{m_{t,i}}{\sqrt{v_{t,b(i)} / (1 - \beta_2^t)} + \epsilon} \\
         &\textbf{return}\ \theta_t
       \end{aligned}

    Zhang et al. 2024, "Adam-mini: Use Fewer Learning Rates To Gain More",
    https://arxiv.org/abs/2406.16793. Blocks come from each :class:`ParamSpec`'s
    ``block_size`` (set by the layer by role: one block per output row of a dense weight, per
    head of attention Q/K, per filter of a convolution, block 1 = plain AdamW for biases, see
    docs/optimizers.md). State: ``exp_avg`` (m, full size) and ``exp_avg_sq`` (v, one float
    per block), so ``numel + n_blocks`` floats against Adam's ``2 numel``.

    .. note::
       The official ``adam-mini`` 1.1.1 rule and defaults (lr 1e-3, betas (0.9, 0.999), eps
       1e-8, weight_decay 0.0; decay ``p.mul_(1 - lr wd)`` with the factor rounded to float32 as
       torch does, see :func:`~.base.decoupled_decay`), and no decay for biases and norms
       (:func:`no_weight_decay`). Tested against the package's trajectories (rtol 1e-5, atol
       1e-7, 200 steps). Differences: the partition is read from the layers' roles
       (``block_size``) instead of matching parameter names, and the division order is
       AdamW's, ``(lr / bc1) * m / h`` (rounding level), so one-element blocks reproduce
       :class:`AdamW` exactly. The seed's MQL5 kernel differs (v from g_i^2 mean(x^2), update
       only if delta > 0, a reduction that drops terms, weight clamp): docs/optimizers.md.

    Kernels (kernels/adam_mini.cl): ``adam_mini_small`` (a work-item per block) and
    ``adam_mini_rows`` (a work-group per long block); each reduces a block and updates it in
    the same pass, from a 32-byte-per-tensor table (no per-element block index). With
    weight decay > 0 the tensors that are not decayed go in separate tables, launched with a
    zero decay (one more launch per kernel; none with the default weight_decay 0).
    """

    kernel_file = "adam_mini.cl"

    def __init__(self, store: ParameterStore, lr: float = 1e-3, betas=(0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, *,
                 group_min_block: int | None = None, work_group: int | None = None,
                 elems_per_group: int | None = None):
        """The keyword-only arguments are speed knobs, not hyper-parameters (None: tuned per
        device kind): blocks of at least ``group_min_block`` elements are reduced by a
        work-group of ``work_group`` items (a power of two) that walks about
        ``elems_per_group`` elements of consecutive blocks; smaller blocks take one work-item
        each."""
        super().__init__(store, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))
        gpu = bool(self.device.cl_device.type & cl.device_type.GPU)
        # PoCL (CPU) measured best with one work-item per block in small groups (float8 loops
        # inside a work-item); GPUs want a work-group per long block (coalesced strides).
        self.work_group = int(work_group or (256 if gpu else 8))
        if self.work_group < 1 or self.work_group & (self.work_group - 1):
            raise OptimizerError(f"Invalid work_group: {work_group} (must be a power of two)")
        self.group_min_block = int(group_min_block or (32 if gpu else 1 << 30))
        per_group = int(elems_per_group or (1 if gpu else 16384))
        # rows of the tables: key (kernel, decayed), one row per tensor; v offsets are global
        rows: dict[tuple[str, bool], list[list[int]]] = {}
        v_off = 0
        for s in store.specs:
            if s.numel == 0:
                continue
            decayed = not no_weight_decay(s)
            if s.block_size >= self.group_min_block:
                per = max(1, per_group // s.block_size)
                row = [s.offset, s.block_size, s.n_blocks, v_off, per, -(-s.n_blocks // per)]
                rows.setdefault(("adam_mini_rows", decayed), []).append(row)
            else:
                row = [s.offset, s.block_size, s.n_blocks, v_off, 0,
                       -(-s.n_blocks // self.work_group)]
                rows.setdefault(("adam_mini_small", decayed), []).append(row)
            v_off += s.n_blocks
        self.n_blocks = v_off
        self.no_decay = tuple(s.name for s in store.specs if no_weight_decay(s))
        # split: decayed and not decayed apart; merged: one table per kernel (no decay at all)
        self._tables = {
            "split": {key: _table(r) for key, r in rows.items()},
            "merged": {(name, True): _table(sorted(
                (row for (kname, _), r in rows.items() if kname == name for row in r),
                key=lambda row: row[3]))
                for name in ("adam_mini_small", "adam_mini_rows")
                if any(k == name for k, _ in rows)},
        }
        self._table_bufs: dict[tuple[str, str, bool], cl.Buffer] = {}

    @classmethod
    def _validate(cls, h):
        h["lr"] = check_lr(h["lr"])
        h["betas"] = check_betas(h["betas"])
        h["eps"] = check_nonneg("eps", h["eps"], "epsilon")
        h["weight_decay"] = check_nonneg("weight_decay", h["weight_decay"])
        return h

    def _slots(self):
        return [StateSlot("exp_avg", self.store.size),
                StateSlot("exp_avg_sq", self.n_blocks, per_element=False)]

    def _options(self):
        return (f"-DWG={self.work_group}",)

    def _on_state_made(self):
        for mode, tables in self._tables.items():
            for key, (table, _) in tables.items():
                buf = self.device.alloc(table.nbytes, "optimizer", self.store.owner)
                cl.enqueue_copy(self.device.queue, buf, table, is_blocking=False)
                self._table_bufs[(mode, *key)] = buf
                self._state_bytes += table.nbytes

    def _launch(self, t):
        h, s, dev = self.hyper, self.store, self.device
        b1, b2 = h["betas"]
        lr_wd = decoupled_decay(h["lr"], h["weight_decay"]) if h["weight_decay"] else 0.0
        mode = "split" if lr_wd and self.no_decay else "merged"
        common = (np.float32(1.0 - b1), np.float32(b2), np.float32(1.0 - b2),
                  np.float32(h["eps"]))
        tail = (np.float32(h["lr"] / (1.0 - b1**t)), np.float32(math.sqrt(1.0 - b2**t)))
        wg = self.work_group
        for (name, decayed), (table, n_groups) in self._tables[mode].items():
            knl = dev.kernel(self.kernel_file, name, self._options())
            knl.set_args(s.data_buf, s.grad_buf, self._views["exp_avg"],
                         self._views["exp_avg_sq"], self._table_bufs[(mode, name, decayed)],
                         np.int32(len(table)), *common,
                         np.float32(lr_wd if decayed else 0.0), *tail)
            cl.enqueue_nd_range_kernel(dev.queue, knl, (n_groups * wg,), (wg,))


def _table(rows: list[list[int]]) -> tuple[np.ndarray, int]:
    """Device table [group_start, offset, B, n_blocks, v_offset, blocks_per_group, 0, 0] per
    tensor (see kernels/adam_mini.cl) and the number of work-groups it launches."""
    out, groups = [], 0
    for offset, bsize, n_blocks, v_offset, per, n_groups in rows:
        out.append([groups, offset, bsize, n_blocks, v_offset, per, 0, 0])
        groups += n_groups
    return np.asarray(out, dtype=np.int32).reshape(-1, TABLE_COLS), groups
