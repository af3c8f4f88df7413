"""The optimizer base: hyper-parameters, lazily made device state, launches and checkpoints.

An optimizer updates every parameter of a :class:`~neurofx.nn.parameters.ParameterStore` with
one fused kernel launch per step over the flat parameter and gradient buffers. Its state (the
torch-named ``exp_avg``, ``momentum_buffer``, ...) lives as named, aligned slices of ONE device
buffer, allocated on the first :meth:`Optimizer.step` and booked as ``"optimizer"`` memory under
the store's owner. The host keeps the step counter and computes the per-step scalars (bias
corrections), so a step never waits on the device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pyopencl as cl

from neurofx.errors import NeurofxError

from ..parameters import ParameterStore

STATE_FORMAT_VERSION = 1


class OptimizerError(NeurofxError, ValueError):
    """Bad optimizer name, hyper-parameter or checkpoint (one line naming the field)."""


@dataclass(frozen=True)
class StateSlot:
    """One named state tensor: ``count`` floats on the device, filled with ``fill`` at creation.

    ``per_element`` slots follow the store's padded layout (``count == store.size``) and are
    exported without padding (``store.numel`` floats); others are exported as they are.
    """

    name: str
    count: int
    fill: float = 0.0
    per_element: bool = True


# ---- hyper-parameter checks (torch's messages, plus the valid range) -------------------------
def check_lr(lr: float) -> float:
    lr = _number("lr", lr)
    if not lr >= 0.0:
        raise OptimizerError(f"Invalid learning rate: {lr} (lr must be >= 0)")
    return lr


def check_nonneg(field: str, value: float, label: str | None = None) -> float:
    value = _number(field, value)
    if not value >= 0.0:
        raise OptimizerError(f"Invalid {label or field} value: {value} ({field} must be >= 0)")
    return value


def check_betas(betas) -> tuple[float, float]:
    try:
        b1, b2 = (float(b) for b in betas)
    except (TypeError, ValueError):
        raise OptimizerError(f"Invalid betas: {betas!r} (betas must be two numbers)") from None
    for idx, b in enumerate((b1, b2)):
        if not 0.0 <= b < 1.0:
            raise OptimizerError(
                f"Invalid beta parameter at index {idx}: {b} (betas must be in [0, 1))")
    return b1, b2


def check_pair(field: str, value) -> tuple[float, float]:
    try:
        a, b = (float(x) for x in value)
    except (TypeError, ValueError):
        raise OptimizerError(f"Invalid {field}: {value!r} ({field} must be two numbers)") from None
    return a, b


def decoupled_decay(lr: float, weight_decay: float) -> float:
    """The ``lr_wd`` kernel argument of decoupled weight decay ``w -= lr_wd * w``, rounded like
    torch's ``p.mul_(1 - lr * weight_decay)``: the factor ``1 - lr wd`` is rounded to float32
    once (torch passes it as a float32 scalar) and ``lr_wd = 1 - float32(1 - lr wd)``, which is
    exact in float32, so ``w - lr_wd w`` equals torch's ``float32(1 - lr wd) * w``. The rounded
    factor is off by up to 3e-8 relative per step (6e-6 after 200 steps); using the exact
    ``lr * wd`` instead would be closer to exact arithmetic but 2-6 x outside rtol 1e-5 / atol
    1e-7 of torch's trajectories (tests/test_optimizers.py)."""
    return 1.0 - float(np.float32(1.0 - lr * weight_decay))


def _number(field: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise OptimizerError(f"Invalid {field}: {value!r} ({field} must be a number)")
    value = float(value)
    if math.isnan(value):
        raise OptimizerError(f"Invalid {field}: nan ({field} must be a number)")
    return value


class Optimizer:
    """Base of the optimizers; subclasses define the slots, the kernel and its arguments."""

    kernel_file: ClassVar[str] = "optimizers.cl"
    kernel_name: ClassVar[str] = ""

    def __init__(self, store: ParameterStore, hyper: dict[str, Any]):
        self.store = store
        self.device = store.device
        self.hyper: dict[str, Any] = self._validate(dict(hyper))
        self.step_count = 0
        self._state_made = False
        self._state_buf: cl.Buffer | None = None
        self._views: dict[str, cl.Buffer] = {}
        self._slot_offsets: dict[str, int] = {}
        self._state_bytes = 0
        # float8 per work-item when the layout allows it (tensors and state slices 32-byte
        # aligned: base_align >= 32 B, as on PoCL's CPUs), else float4 (base_align >= 16 B)
        wide = self.device.base_align >= 32 and store.size % 8 == 0
        self._set_vector_width(8 if wide else 4 if store.size % 4 == 0 else 1)

    # ---- to override --------------------------------------------------------------------
    @classmethod
    def _validate(cls, hyper: dict[str, Any]) -> dict[str, Any]:
        """Check and normalise the hyper-parameters; raise OptimizerError naming the field."""
        raise NotImplementedError

    def _slots(self) -> list[StateSlot]:
        """State tensors for the current hyper-parameters, in device order."""
        raise NotImplementedError

    def _options(self) -> tuple[str, ...]:
        """Build options (-D flags) of the kernel for the current hyper-parameters."""
        return ()

    def _launch(self, t: int) -> None:
        """Enqueue the update of step ``t`` (1-based) without waiting."""
        raise NotImplementedError

    def _host_scalars(self) -> dict[str, float]:
        """Running scalars kept on the host besides ``step`` (e.g. NAdam's ``mu_product``)."""
        return {}

    def _set_host_scalars(self, values: dict[str, float]) -> None:
        pass

    # ---- public API ---------------------------------------------------------------------
    @property
    def lr(self) -> float:
        return self.hyper["lr"]

    @lr.setter
    def lr(self, value: float) -> None:
        self.hyper["lr"] = check_lr(value)

    def zero_grad(self) -> None:
        self.store.zero_grad()

    def step(self) -> None:
        """Enqueue one update of every parameter from ``store.grad_buf``; does not wait.

        Inside a call that a captured plan records (:mod:`neurofx.nn.plan`), the step is
        recorded as a host callable: each replay runs it again (new step count, new bias
        corrections, the current ``lr``)."""
        self._step_now()
        if self.device.recorder is not None:
            self.device.recorder.call(self._step_now)

    def _step_now(self) -> None:
        if not self._state_made:
            self._make_state()
        self.step_count += 1
        self._launch(self.step_count)

    def state_bytes(self) -> int:
        """Device bytes held by the optimizer state (0 before the first step)."""
        return self._state_bytes

    def state_bytes_by_param(self) -> dict[str, int]:
        """State bytes attributable to each parameter (per-element slots and per-block slots;
        alignment padding and lookup tables are only in :meth:`state_bytes`)."""
        specs = self.store.specs
        total_blocks = sum(s.n_blocks for s in specs)
        slots = self._slots() if self._state_made else []
        out = {}
        for spec in specs:
            n = sum(spec.numel if slot.per_element
                    else spec.n_blocks if slot.count == total_blocks else 0 for slot in slots)
            out[spec.name] = 4 * n
        return out

    def state_dict(self) -> dict[str, np.ndarray]:
        """Plain numpy arrays (no objects): save with ``np.savez``, load with allow_pickle=False."""
        specs = self.store.specs
        out: dict[str, np.ndarray] = {
            "optimizer": np.asarray(type(self).__name__),
            "format_version": np.asarray(STATE_FORMAT_VERSION, dtype=np.int64),
            "step": np.asarray(self.step_count, dtype=np.int64),
            "param_names": np.asarray([s.name for s in specs], dtype=str),
            "param_numel": np.asarray([s.numel for s in specs], dtype=np.int64),
            "block_sizes": np.asarray([s.block_size for s in specs], dtype=np.int64),
        }
        for key, value in self.hyper.items():
            out["hyper." + key] = np.asarray(value)
        for key, value in self._host_scalars().items():
            out[key] = np.asarray(value, dtype=np.float64)
        if self._state_made:
            for slot in self._slots():
                host = self.device.to_host(
                    self._state_buf, (slot.count,), 4 * self._slot_offsets[slot.name])
                out[slot.name] = self._pack(host) if slot.per_element else host
        return out

    def load_state_dict(self, state) -> None:
        """Restore from :meth:`state_dict` output (or an ``np.load`` result); all or nothing."""
        state = {k: np.asarray(state[k]) for k in state}
        name = type(self).__name__
        where = f"{name} state"
        got = str(state.get("optimizer", np.asarray("<missing>")))
        if got != name:
            raise OptimizerError(f"{where}: checkpoint is for optimizer {got!r}, not {name!r}; "
                                 f"build the optimizer named in the checkpoint")
        version = int(state.get("format_version", -1))
        if version != STATE_FORMAT_VERSION:
            raise OptimizerError(f"{where}: format_version {version} is not supported "
                                 f"(expected {STATE_FORMAT_VERSION})")
        specs = self.store.specs
        layout = {"param_names": [s.name for s in specs], "param_numel": [s.numel for s in specs],
                  "block_sizes": [s.block_size for s in specs]}
        for key, expect in layout.items():
            if key not in state or state[key].tolist() != expect:
                raise OptimizerError(f"{where}: field {key!r} does not match this model's "
                                     f"parameters; load the checkpoint into the model it was "
                                     f"saved from")
        hyper_keys = {k[6:] for k in state if k.startswith("hyper.")}
        if hyper_keys != set(self.hyper):
            raise OptimizerError(f"{where}: hyper-parameters {sorted(hyper_keys)} != expected "
                                 f"{sorted(self.hyper)}")
        hyper = {k: self._hyper_from_array(k, state["hyper." + k]) for k in self.hyper}
        hyper = self._validate(hyper)
        step = int(state["step"]) if "step" in state else -1
        if step < 0:
            raise OptimizerError(f"{where}: field 'step' is missing or negative")
        scalars = {}
        for key in self._host_scalars():
            if key not in state:
                raise OptimizerError(f"{where}: field {key!r} is missing")
            scalars[key] = float(state[key])
        old_hyper, self.hyper = self.hyper, hyper
        try:
            slots = self._slots() if step > 0 else []
            arrays = {}
            for slot in slots:
                want = (self.store.numel,) if slot.per_element else (slot.count,)
                arr = state.get(slot.name)
                if arr is None or arr.shape != want:
                    shape = None if arr is None else arr.shape
                    raise OptimizerError(f"{where}: state {slot.name!r} has shape {shape}, "
                                         f"expected {want}")
                arrays[slot.name] = np.ascontiguousarray(arr, dtype=np.float32)
            known = {"optimizer", "format_version", "step", *layout, *scalars,
                     *("hyper." + k for k in hyper), *arrays}
            extra = sorted(set(state) - known)
            if extra:
                raise OptimizerError(f"{where}: unexpected fields {extra[:5]} for these "
                                     f"hyper-parameters")
        except OptimizerError:
            self.hyper = old_hyper
            raise
        self._release_state()
        self.step_count = step
        self._set_host_scalars(scalars)
        if step > 0:
            self._make_state()
            q = self.device.queue
            for slot in slots:
                arr = arrays[slot.name]
                host = self._unpack(arr, slot.fill) if slot.per_element else arr
                cl.enqueue_copy(q, self._views[slot.name], host, is_blocking=True)

    def __repr__(self) -> str:
        hyper = ", ".join(f"{k}={v}" for k, v in self.hyper.items())
        return f"{type(self).__name__}({hyper})"

    # ---- helpers --------------------------------------------------------------------------
    def _hyper_from_array(self, key: str, arr: np.ndarray):
        current = self.hyper[key]
        if isinstance(current, tuple):
            return tuple(float(x) for x in arr.ravel())
        if isinstance(current, bool):
            return bool(arr)
        return arr.item()

    def _set_vector_width(self, vec: int) -> None:
        """Elements per work-item of the element-wise kernels (8, 4 or 1; store.size % vec ==
        0; the same values at every width)."""
        if vec not in (1, 4, 8) or self.store.size % vec:
            raise ValueError(f"vector width {vec} does not divide the store size {self.store.size}")
        gpu = bool(self.device.cl_device.type & cl.device_type.GPU)
        self._vec = vec
        self._lsize = (256,) if gpu else (64,)  # measured on PoCL: 64 beats the default
        n_items = self.store.size // vec
        self._gsize = (-(-n_items // self._lsize[0]) * self._lsize[0],)
        self._n = np.int32(n_items)  # the kernels' n: floatv elements to update

    def _kernel(self) -> cl.Kernel:
        return self.device.kernel(self.kernel_file, self.kernel_name,
                                  (f"-DVEC={self._vec}", *self._options()))

    def _make_state(self) -> None:
        dev = self.device
        align = max(dev.base_align // 4, 1)
        offsets, total = {}, 0
        slots = self._slots()
        self._state_made = True
        if not slots:
            self._on_state_made()
            return
        for slot in slots:
            offsets[slot.name] = total
            total += -(-max(slot.count, 1) // align) * align
        buf = dev.alloc(4 * max(total, 1), "optimizer", self.store.owner)
        views = {}
        for slot in slots:
            off, n = offsets[slot.name], max(slot.count, 1)
            cl.enqueue_fill_buffer(dev.queue, buf, np.float32(slot.fill), 4 * off, 4 * n)
            views[slot.name] = buf.get_sub_region(4 * off, 4 * n)
        self._state_buf, self._views, self._slot_offsets = buf, views, offsets
        self._state_bytes = 4 * total
        self._on_state_made()

    def _on_state_made(self) -> None:
        """Hook for subclasses that upload tables next to the state."""

    def _release_state(self) -> None:
        self._state_buf, self._views, self._slot_offsets, self._state_bytes = None, {}, {}, 0
        self._state_made = False

    def _pack(self, full: np.ndarray) -> np.ndarray:
        return np.concatenate([full[s.offset:s.offset + s.numel] for s in self.store.specs]
                              or [np.zeros(0, np.float32)])

    def _unpack(self, packed: np.ndarray, fill: float) -> np.ndarray:
        full = np.full(self.store.size, fill, dtype=np.float32)
        pos = 0
        for s in self.store.specs:
            full[s.offset:s.offset + s.numel] = packed[pos:pos + s.numel]
            pos += s.numel
        return full

    def _enqueue(self, kernel: cl.Kernel, *args) -> None:
        kernel.set_args(*args)
        cl.enqueue_nd_range_kernel(self.device.queue, kernel, self._gsize, self._lsize)
