"""All parameters of a model in one flat device buffer, gradients in another.

Each parameter is an aligned slice (an OpenCL sub-buffer) of the flat buffers, so ops use it
like any tensor while one optimizer kernel launch updates the whole model. Padding between
slices is zero in both buffers and stays zero under every optimizer (zero gradient, zero
weight). The table of :class:`ParamSpec` rows is what optimizers, memory accounting and
checkpoints read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyopencl as cl

from .device import Device, get_device


@dataclass(frozen=True)
class ParamSpec:
    """One parameter tensor's place in the flat buffers.

    ``offset`` and ``numel`` count float32 elements. ``block_size`` is the Adam-mini block
    length in elements: the tensor is split into ``numel // block_size`` contiguous blocks that
    share one second moment (1 = one per element, i.e. plain Adam; ``numel`` = one per tensor).
    """

    name: str
    shape: tuple[int, ...]
    offset: int
    block_size: int
    role: str

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def n_blocks(self) -> int:
        return self.numel // self.block_size


class ParameterStore:
    """Flat float32 parameter and gradient buffers with per-tensor sub-buffers."""

    def __init__(self, entries: list[tuple[str, np.ndarray, str, int]], owner: str = "model",
                 device: Device | None = None):
        """``entries``: (name, initial value, role, Adam-mini block size) per parameter."""
        self.device = device or get_device()
        self.owner = owner
        align = max(self.device.base_align // 4, 1)  # in floats
        specs, offset = [], 0
        for name, value, role, block in entries:
            value = np.asarray(value, dtype=np.float32)
            n = value.size
            if block < 1 or n % block:
                raise ValueError(f"parameter {name}: block size {block} does not divide {n}")
            specs.append(ParamSpec(name, tuple(value.shape), offset, int(block), role))
            offset += -(-n // align) * align
        self.specs: list[ParamSpec] = specs
        self.size = max(offset, align)  # floats in the flat buffers, padding included
        host = np.zeros(self.size, dtype=np.float32)
        for spec, (_, value, _, _) in zip(specs, entries, strict=True):
            host[spec.offset : spec.offset + spec.numel] = np.ravel(value)
        dev = self.device
        self.data_buf = dev.alloc(4 * self.size, "parameters", owner)
        self.grad_buf = dev.alloc(4 * self.size, "gradients", owner)
        cl.enqueue_copy(dev.queue, self.data_buf, host, is_blocking=True)
        self.zero_grad()
        self.data_views = [self._sub(self.data_buf, s) for s in specs]
        self.grad_views = [self._sub(self.grad_buf, s) for s in specs]

    @staticmethod
    def _sub(buf: cl.Buffer, spec: ParamSpec) -> cl.Buffer:
        return buf.get_sub_region(4 * spec.offset, 4 * max(spec.numel, 1))

    @property
    def numel(self) -> int:
        """Number of parameters (padding excluded)."""
        return sum(s.numel for s in self.specs)

    def zero_grad(self) -> None:
        self.device.fill(self.grad_buf, 0.0, 0, 4 * self.size)

    def _read(self, buf: cl.Buffer) -> dict[str, np.ndarray]:
        host = self.device.to_host(buf, (self.size,))
        return {s.name: host[s.offset : s.offset + s.numel].reshape(s.shape).copy()
                for s in self.specs}

    def values(self) -> dict[str, np.ndarray]:
        """name -> host copy of the parameter."""
        return self._read(self.data_buf)

    def grads(self) -> dict[str, np.ndarray]:
        """name -> host copy of the accumulated gradient."""
        return self._read(self.grad_buf)

    def load(self, values: dict[str, np.ndarray]) -> None:
        """Overwrite parameters from name -> array; names and shapes must match exactly."""
        names = {s.name for s in self.specs}
        missing, extra = names - set(values), set(values) - names
        if missing or extra:
            raise ValueError(
                f"parameter names differ: missing {sorted(missing)[:5]}, "
                f"unexpected {sorted(extra)[:5]}"
            )
        host = np.zeros(self.size, dtype=np.float32)
        for s in self.specs:
            v = np.asarray(values[s.name], dtype=np.float32)
            if v.shape != s.shape:
                raise ValueError(f"parameter {s.name}: shape {v.shape} != expected {s.shape}")
            host[s.offset : s.offset + s.numel] = v.ravel()
        cl.enqueue_copy(self.device.queue, self.data_buf, host, is_blocking=True)
