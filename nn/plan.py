"""Captured execution plans: record a model's call once per shape, replay it afterwards.

The first call of a :class:`CapturedCall` with a given key (input shapes, the modules' train
and stochastic flags, the recurrent state's signature, the modules' ``plan_mode()``) runs
eagerly while a :class:`~neurofx.nn.record.Recorder` notes every command. The :class:`Plan`
built from it:

* gives every recorded kernel launch its own ``cl.Kernel`` with its arguments set once, so a
  replay is ``cl.enqueue_nd_range_kernel`` back to back (plus the device copies and fills, and
  host callables such as ``optimizer.step`` that compute per-step scalars);
* places the call's temporaries (buffers allocated during the call and dead once it returned)
  in ONE arena buffer, reusing memory between temporaries whose uses do not overlap; buffers
  still alive after the call (outputs, new recurrent state, lazily made optimizer state) keep
  their own storage, which each replay overwrites in place;
* uploads the new inputs into the recorded input buffers, copies the module's current
  recurrent state into the buffers the recording read it from when they differ, and, after
  the commands, points the modules' per-call attributes (``_state``, ``last_eps``, ...) at the
  objects the recording left there: the model looks exactly as after an eager call;
* reads the result with one blocking copy: the one synchronisation of the call.

Kernel arguments that change per call on the host (a VAE head's or dropout's noise counter
and seed) are ``dynamic`` arguments the replay recomputes; the optimizer step is a host
callable. A call that uploads host data or reads a device value on the host in the middle,
or changes a plain host attribute of a module that is not a declared counter, is refused: it
stays eager for that key, with the reason in :attr:`CapturedCall.refusals` and one
:class:`PlanFallbackWarning`. Replays are bit-identical to eager calls: the same kernels with
the same arguments in the same order (tests/test_plans.py).

``NEUROFX_EAGER=1`` (read when a model is made) or ``Model(..., eager=True)`` turns plans
off; ``NEUROFX_PLAN_CACHE`` (default 8) bounds the plans kept per captured call (least
recently used ones go first).
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import pyopencl as cl

from .device import Device
from .module import Module
from .record import Call, Copy, Fill, Launch, Recorder, SlotRef
from .tensor import Tensor

EAGER_ENV = "NEUROFX_EAGER"
CACHE_ENV = "NEUROFX_PLAN_CACHE"
DEFAULT_CACHE = 8

_PLAIN = (bool, int, float, str, bytes, np.number, np.bool_)


class PlanFallbackWarning(UserWarning):
    """A call could not be captured and runs eagerly (the message says why)."""


def eager_forced() -> bool:
    """True when ``NEUROFX_EAGER`` is set to anything but "" or "0"."""
    return os.environ.get(EAGER_ENV, "") not in ("", "0")


def cache_limit() -> int:
    try:
        return max(int(os.environ.get(CACHE_ENV, DEFAULT_CACHE)), 1)
    except ValueError:
        return DEFAULT_CACHE


def buffers_of(obj) -> list:
    """Device buffers held by a per-call attribute value, in a fixed order (tensors, buffers,
    dataclass fields, list items)."""
    if obj is None or isinstance(obj, _PLAIN):
        return []
    if isinstance(obj, cl.MemoryObjectHolder):
        return [obj]
    if isinstance(obj, Tensor):
        return [obj.buf]
    if isinstance(obj, list | tuple):
        return [b for item in obj for b in buffers_of(item)]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return [b for f in dataclasses.fields(obj) for b in buffers_of(getattr(obj, f.name))]
    return []


class Plan:
    """One recorded call, ready to replay (built by :class:`CapturedCall`)."""

    def __init__(self, device: Device, rec: Recorder, inputs: list[Tensor], result: Tensor | None,
                 restore: list, state_pairs: list, owner: str):
        self.device = device
        self.inputs = inputs
        self.restore = restore          # (module, attribute, object) set after each replay
        self.state_pairs = state_pairs  # (module, attribute, index, buffer the plan reads)
        self.launches = 0
        alive = [s.ref() for s in rec.slots]
        # temporaries: allocated during the call, dead after it -> one arena
        first: dict[int, int] = {}
        last: dict[int, int] = {}
        for pos, cmd in enumerate(rec.commands):
            for ref in _refs(cmd):
                if alive[ref.index] is None:
                    first.setdefault(ref.index, pos)
                    last[ref.index] = pos
        offsets, size = _place(first, last, [s.nbytes for s in rec.slots],
                               max(device.base_align, 4))
        self.arena_bytes = size
        self.arena = device.alloc(size, "activations", f"{owner}.plan") if size else None
        views = {i: self.arena.get_sub_region(off, rec.slots[i].nbytes)
                 for i, off in offsets.items()}

        def buf(arg):
            if isinstance(arg, SlotRef):
                return alive[arg.index] if alive[arg.index] is not None else views[arg.index]
            return arg

        steps = []
        for cmd in rec.commands:
            if isinstance(cmd, Launch):
                knl = cl.Kernel(cmd.program, cmd.name)
                if cmd.dtypes is not None:
                    knl.set_scalar_arg_dtypes(cmd.dtypes)
                knl.set_args(*(buf(a) for a in cmd.args))
                steps.append((0, knl, cmd.gsize, cmd.lsize, tuple(cmd.dynamic.items())))
                self.launches += 1
            elif isinstance(cmd, Copy):
                steps.append((1, buf(cmd.dst), buf(cmd.src), cmd.nbytes, cmd.dst_offset,
                              cmd.src_offset))
            elif isinstance(cmd, Fill):
                steps.append((2, buf(cmd.buf), np.float32(cmd.value), cmd.offset, cmd.nbytes))
            elif isinstance(cmd, Call):
                steps.append((3, cmd.fn))
        self.steps = steps
        self.result = result
        self._hosts: list = []  # host inputs of the last replay (alive until it has run)

    def replay(self, args, sync: bool = True, events: list | None = None):
        """Run the plan on ``args``. ``events``: a list that receives (label, event) per
        command (kernel name and global size, ``copy``/``fill`` and bytes): with a profiling
        queue, a per-command device-time profile (``benchmarks/profile_plan.py``); the host
        callables (the optimizer step) enqueue their own commands, not listed."""
        q = self.device.queue
        hosts = []
        for t, a in zip(self.inputs, args, strict=True):
            if isinstance(a, Tensor):
                cl.enqueue_copy(q, t.buf, a.buf, byte_count=t.nbytes)
            else:
                host = np.ascontiguousarray(a, dtype=np.float32)
                cl.enqueue_copy(q, t.buf, host, is_blocking=False)
                hosts.append(host)
        self._hosts = hosts
        for module, attr, index, in_buf in self.state_pairs:
            cur = buffers_of(getattr(module, attr))[index]
            if cur is not in_buf:
                cl.enqueue_copy(q, in_buf, cur, byte_count=min(cur.size, in_buf.size))
        enqueue = cl.enqueue_nd_range_kernel
        for step in self.steps:
            kind = step[0]
            if kind == 0:
                _, knl, gsize, lsize, dynamic = step
                for index, fn in dynamic:
                    knl.set_arg(index, fn())
                event = enqueue(q, knl, gsize, lsize)
                label = "" if events is None else f"{knl.function_name} {gsize}"
            elif kind == 1:
                _, dst, src, nbytes, dst_off, src_off = step
                event = cl.enqueue_copy(q, dst, src, byte_count=nbytes, dst_offset=dst_off,
                                        src_offset=src_off)
                label = f"copy {nbytes}"
            elif kind == 2:
                _, b, value, offset, nbytes = step
                event = cl.enqueue_fill_buffer(q, b, value, offset, nbytes)
                label = f"fill {nbytes}"
            else:
                step[1]()
                continue
            if events is not None:
                events.append((label, event))
        for module, attr, value in self.restore:
            setattr(module, attr, value)
        if self.result is None or not sync:
            return self.result
        return self.result.numpy()


def _refs(cmd) -> list[SlotRef]:
    if isinstance(cmd, Launch):
        return [a for a in cmd.args if isinstance(a, SlotRef)]
    if isinstance(cmd, Copy):
        return [a for a in (cmd.dst, cmd.src) if isinstance(a, SlotRef)]
    if isinstance(cmd, Fill):
        return [cmd.buf] if isinstance(cmd.buf, SlotRef) else []
    return []


def _place(first: dict[int, int], last: dict[int, int], sizes: list[int],
           align: int) -> tuple[dict[int, int], int]:
    """Offsets in one arena for buffers used from command first[i] to last[i]: a buffer takes
    the lowest free gap that fits among those whose use has not ended (first fit)."""
    offsets: dict[int, int] = {}
    live: list[tuple[int, int, int]] = []  # (offset, end, last use)
    top = 0
    for i in sorted(first, key=lambda j: (first[j], j)):
        start = first[i]
        live = [blk for blk in live if blk[2] >= start]
        need = -(-sizes[i] // align) * align
        pos = 0
        for off, end, _ in sorted(live):
            if off - pos >= need:
                break
            pos = max(pos, end)
        offsets[i] = pos
        live.append((pos, pos + need, last[i]))
        top = max(top, pos + need)
    return offsets, top


class CapturedCall:
    """``fn(*tensors) -> Tensor | None`` over a model, recorded once per key and replayed.

    Call it with host arrays (or device tensors) of float32 data; they are uploaded into the
    plan's input tensors and ``fn`` gets those. A replay does not run ``fn``: Python values it
    reads besides its inputs (closure variables, a loss weight computed on the host) are
    frozen at recording, so whatever changes from call to call must come in as an input
    array (optimizer hyper-parameters are read at each replay: ``optimizer.step`` runs).
    It returns the host copy of ``fn``'s result (None when ``fn`` returns None). ``fn`` must
    reach the device only through the engine (ops, modules, ``Model.forward``,
    ``Tensor.backward``, optimizers), upload no host data and read nothing on the host;
    otherwise the key is refused (see the module docstring).
    """

    def __init__(self, model, fn: Callable, name: str = "call", max_plans: int | None = None):
        self.model = model
        self.fn = fn
        self.name = name
        self.max_plans = max_plans or cache_limit()
        self.plans: OrderedDict[tuple, Plan] = OrderedDict()
        self.refusals: dict[tuple, list[str]] = {}
        modules = list(model.net.modules())
        self._modules = [m for _, m in modules]
        self._paths = {id(m): p for p, m in modules}
        self._stateful = [m for m in self._modules
                          if type(m).state_signature is not Module.state_signature]
        self._stochastic = [m for m in self._modules if hasattr(m, "stochastic")]
        self._moded = [m for m in self._modules if type(m).plan_mode is not Module.plan_mode]

    def key(self, args) -> tuple:
        shapes = tuple((a.shape if isinstance(a, Tensor) else np.shape(a)) for a in args)
        return (shapes, tuple(m.training for m in self._modules),
                tuple(bool(m.stochastic) for m in self._stochastic),
                tuple(m.state_signature() for m in self._stateful),
                tuple(m.plan_mode() for m in self._moded))

    def invalidate(self) -> None:
        """Drop every plan (and refusal): the next call of each key records again."""
        self.plans.clear()
        self.refusals.clear()

    def __call__(self, *args, sync: bool = True):
        """Run (record or replay); ``sync=False`` returns the result as a device tensor
        without waiting: the plan's own output buffer, overwritten by its next replay (feed
        it to the next model at once, e.g. the encoder's forecast to the actor)."""
        key = self.key(args)
        plan = self.plans.get(key)
        if plan is not None:
            self.plans.move_to_end(key)
            return plan.replay(args, sync)
        dev = self.model.device
        tensors = [_input(a, dev) for a in args]
        if key in self.refusals or dev.recorder is not None:
            result = self.fn(*tensors)
            return _host(result) if sync else result
        out = self._record(key, tensors)
        return _host(out) if sync else out

    def _record(self, key, tensors):
        dev = self.model.device
        before = [(m, dict(vars(m))) for m in self._modules]
        rec = Recorder()
        dev.recorder = rec
        try:
            result = self.fn(*tensors)
        finally:
            dev.recorder = None
        external = {id(a) for cmd in rec.commands for a in _cmd_args(cmd)
                    if isinstance(a, cl.MemoryObjectHolder)}
        restore, pairs = [], []
        for m, old in before:
            counters = type(m)._plan_counters
            for attr, value in vars(m).items():
                prev = old.get(attr, getattr(type(m), attr, _MISSING))
                if prev is value or attr in counters or (
                        isinstance(value, _PLAIN) and isinstance(prev, _PLAIN) and prev == value):
                    continue
                where = f"{self._paths[id(m)] or type(m).__name__}.{attr}"
                if not (_restorable(value) and _restorable(prev)):
                    rec.refuse(f"{where} changes on the host during the call")
                    continue
                restore.append((m, attr, value))
                for i, b in enumerate(buffers_of(None if prev is _MISSING else prev)):
                    if id(b) in external:
                        after = buffers_of(value)
                        if len(after) <= i or after[i].size != b.size:
                            rec.refuse(f"{where}: the state read by the call and the state "
                                       "it leaves differ in layout")
                        pairs.append((m, attr, i, b))
        del before
        if rec.refusals:
            self.refusals[key] = rec.refusals
            warnings.warn(f"neurofx: {self.model.name}.{self.name} runs eagerly for inputs "
                          f"{key[0]}: {'; '.join(rec.refusals)}", PlanFallbackWarning,
                          stacklevel=4)
            return result
        plan = Plan(dev, rec, tensors, result if isinstance(result, Tensor) else None,
                    restore, pairs, self.model.name)
        self.plans[key] = plan
        while len(self.plans) > self.max_plans:
            self.plans.popitem(last=False)
        return result


_MISSING = object()


def _restorable(obj) -> bool:
    """Per-call attribute values a replay can re-establish by pointing at the recorded object
    (its buffers are overwritten in place): None, tensors, buffers, and lists / tuples /
    dataclasses of them (plain numbers inside dataclasses are their shapes)."""
    if obj is None or obj is _MISSING or isinstance(obj, Tensor | cl.MemoryObjectHolder):
        return True
    if isinstance(obj, list | tuple):
        return all(_restorable(x) for x in obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return all(isinstance(v, _PLAIN) or _restorable(v)
                   for v in (getattr(obj, f.name) for f in dataclasses.fields(obj)))
    return False


def _input(a, dev: Device) -> Tensor:
    """A fresh input tensor holding ``a`` (a copy, so the plan owns its input buffers)."""
    if isinstance(a, Tensor):
        t = Tensor(a.shape, device=dev, name="plan.input")
        cl.enqueue_copy(dev.queue, t.buf, a.buf, byte_count=a.nbytes)
        return t
    return Tensor.from_numpy(np.asarray(a, dtype=np.float32), device=dev, name="plan.input")


def _host(result):
    return result.numpy() if isinstance(result, Tensor) else result


def _cmd_args(cmd) -> list:
    if isinstance(cmd, Launch):
        return cmd.args
    if isinstance(cmd, Copy):
        return [cmd.dst, cmd.src]
    if isinstance(cmd, Fill):
        return [cmd.buf]
    return []


__all__ = ["CACHE_ENV", "EAGER_ENV", "CapturedCall", "Plan", "PlanFallbackWarning",
           "buffers_of", "eager_forced"]
