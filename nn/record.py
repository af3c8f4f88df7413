"""Recording device commands for captured execution plans (see :mod:`neurofx.nn.plan`).

While a :class:`Recorder` is installed on a device (``device.recorder``), every command the
engine enqueues (kernel launches, device copies and fills, optimizer steps) still runs as
usual AND is appended to the recorder's list. Buffers the engine allocates meanwhile are
numbered (slots), so the plan built afterwards can tell temporaries (dead once the call has
returned: placed in one arena) from buffers that outlive the call (outputs, recurrent state).
Anything a plan cannot reproduce from its command list (host data uploaded or device values
read on the host in the middle of the call) is noted as a refusal reason.

This module imports nothing of the engine: the device hooks call into it.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

import pyopencl as cl


@dataclass
class Slot:
    """A buffer the engine allocated while recording."""

    ref: weakref.ref
    nbytes: int
    kind: str
    owner: str


@dataclass
class Launch:
    """A kernel launch: a fresh ``cl.Kernel`` of ``program``/``name`` gets ``args`` once.

    ``args`` hold buffers as they are (external) or as ``SlotRef`` (allocated while
    recording); ``dynamic`` maps an argument index to a callable that gives its value at each
    replay (host counters such as a VAE head's noise counter)."""

    program: cl.Program
    name: str
    gsize: tuple[int, ...]
    lsize: tuple[int, ...] | None
    args: list
    dtypes: list | None = None
    dynamic: dict[int, Callable] = field(default_factory=dict)


@dataclass
class Copy:
    dst: object
    src: object
    nbytes: int
    dst_offset: int = 0
    src_offset: int = 0


@dataclass
class Fill:
    buf: object
    value: float
    offset: int
    nbytes: int


@dataclass
class Call:
    """A host callable run at this point of every replay (e.g. ``optimizer.step``: its
    per-step scalars are computed on the host)."""

    fn: Callable[[], None]


@dataclass(frozen=True)
class SlotRef:
    index: int


class Recorder:
    """Collects the commands of one call; see the module docstring."""

    def __init__(self):
        self.commands: list[Launch | Copy | Fill | Call] = []
        self.slots: list[Slot] = []
        self._slot_of: dict[int, int] = {}
        self.refusals: list[str] = []

    # ---- hooks called by the engine -------------------------------------------------------
    def on_alloc(self, buf, nbytes: int, kind: str, owner: str) -> None:
        self._slot_of[id(buf)] = len(self.slots)
        self.slots.append(Slot(weakref.ref(buf), int(nbytes), kind, owner))

    def refuse(self, reason: str) -> None:
        if reason not in self.refusals:
            self.refusals.append(reason)

    def launch(self, knl: cl.Kernel, gsize, lsize, args, dtypes=None, dynamic=None) -> None:
        self.commands.append(Launch(knl.program, knl.function_name, tuple(gsize),
                                    None if lsize is None else tuple(lsize),
                                    [self._ref(a) for a in args], dtypes, dict(dynamic or {})))

    def copy(self, dst, src, nbytes: int, dst_offset: int = 0, src_offset: int = 0) -> None:
        self.commands.append(Copy(self._ref(dst), self._ref(src), int(nbytes), int(dst_offset),
                                  int(src_offset)))

    def fill(self, buf, value: float, offset: int, nbytes: int) -> None:
        self.commands.append(Fill(self._ref(buf), float(value), int(offset), int(nbytes)))

    def call(self, fn: Callable[[], None]) -> None:
        self.commands.append(Call(fn))

    # ---- helpers ----------------------------------------------------------------------------
    def _ref(self, arg):
        if isinstance(arg, cl.MemoryObjectHolder):
            i = self._slot_of.get(id(arg))
            if i is not None and self.slots[i].ref() is arg:
                return SlotRef(i)
        return arg


__all__ = ["Call", "Copy", "Fill", "Launch", "Recorder", "Slot", "SlotRef"]
