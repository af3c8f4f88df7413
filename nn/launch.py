"""Kernel lookup and launch helpers shared by the tensors, ops and layers."""

from __future__ import annotations

import numpy as np

from .device import Device

i32 = np.int32
f32 = np.float32
u32 = np.uint32


def launch(dev: Device, filename: str, name: str, global_size, *args, local_size=None,
           dynamic=None):
    """Enqueue ``name`` from ``kernels/<filename>``; never waits. Returns the event.

    ``dynamic`` ({argument index: callable}) names host values that change from call to call
    (e.g. a noise counter): a captured plan calls them at each replay to set the argument;
    eager launches use ``args`` as given."""
    if isinstance(global_size, int):
        global_size = (global_size,)
    if any(g == 0 for g in global_size):
        return None
    knl = dev.kernel(filename, name)
    gsize = tuple(int(g) for g in global_size)
    event = knl(dev.queue, gsize, local_size, *args)
    if dev.recorder is not None:
        dev.recorder.launch(knl, gsize, local_size, args, dynamic=dynamic)
    return event


def replay_args(next_args, seed_index: int) -> dict:
    """The ``dynamic`` arguments of a (seed, counter) pair at ``seed_index``, ``seed_index+1``
    for a captured plan: each replay calls ``next_args()`` once (it advances the caller's
    counter, as an eager call does) and sets both kernel arguments."""
    drawn = [0, 0]

    def seed_arg():
        drawn[:] = next_args()
        return u32(drawn[0] & 0xFFFFFFFF)

    return {seed_index: seed_arg, seed_index + 1: lambda: u32(drawn[1] & 0xFFFFFFFF)}


def accumulate(dst_buf, src_buf, n: int, dev: Device, alpha: float = 1.0) -> None:
    """dst += alpha * src on the device (the backward building block)."""
    launch(dev, "elementwise.cl", "axpy_acc", n, src_buf, dst_buf, f32(alpha))
