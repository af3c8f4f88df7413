"""Kernel lookup and launch helpers shared by the tensors, ops and layers."""

from __future__ import annotations

import numpy as np

from .device import Device

i32 = np.int32
f32 = np.float32
u32 = np.uint32


def launch(dev: Device, filename: str, name: str, global_size, *args, local_size=None):
    """Enqueue ``name`` from ``kernels/<filename>``; never waits. Returns the event."""
    if isinstance(global_size, int):
        global_size = (global_size,)
    if any(g == 0 for g in global_size):
        return None
    knl = dev.kernel(filename, name)
    return knl(dev.queue, tuple(int(g) for g in global_size), local_size, *args)


def accumulate(dst_buf, src_buf, n: int, dev: Device, alpha: float = 1.0) -> None:
    """dst += alpha * src on the device (the backward building block)."""
    launch(dev, "elementwise.cl", "axpy_acc", n, src_buf, dst_buf, f32(alpha))
