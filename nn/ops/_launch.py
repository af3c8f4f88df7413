"""Kernel lookup and launch helpers shared by the ops."""

from __future__ import annotations

import numpy as np

from ..device import Device

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
