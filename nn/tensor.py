"""Device-resident float32 tensors with reverse-mode autograd (micrograd's shape, OpenCL data).

A :class:`Tensor` owns a device buffer and, once a gradient flows into it, a gradient buffer
of the same size. Each op creates its output tensor, enqueues a forward kernel and attaches a
``_backward`` closure that enqueues the backward kernels, which ACCUMULATE into the parents'
gradient buffers. Nothing waits on the host: the queue is in-order, and only ``numpy()`` or
reading a loss value synchronises.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator

import numpy as np
import pyopencl as cl

from .device import Device, get_device
from .launch import accumulate

_grad_enabled = True


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """Inside this block ops record no graph (inference)."""
    global _grad_enabled
    old, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = old


def grad_enabled() -> bool:
    """False inside :func:`no_grad`."""
    return _grad_enabled


class Tensor:
    """A row-major float32 array on the OpenCL device."""

    __slots__ = ("shape", "buf", "grad_buf", "requires_grad", "_parents", "_backward", "op",
                 "device", "name", "__weakref__")

    def __init__(self, shape, buf: cl.Buffer | None = None, *, requires_grad: bool = False,
                 parents: tuple[Tensor, ...] = (), op: str = "", device: Device | None = None,
                 kind: str = "activations", name: str = ""):
        self.device = device or get_device()
        self.shape = tuple(int(s) for s in shape)
        self.buf = buf if buf is not None else self.device.alloc(
            4 * self.numel, kind, name or self.device.owner)
        self.grad_buf: cl.Buffer | None = None
        self.requires_grad = requires_grad
        self._parents = parents
        self._backward: Callable[[], None] | None = None
        self.op = op
        self.name = name

    # ---- construction / host transfer --------------------------------------------------
    @classmethod
    def from_numpy(cls, array, requires_grad: bool = False, device: Device | None = None,
                   name: str = "") -> Tensor:
        dev = device or get_device()
        host = np.asarray(array, dtype=np.float32)
        return cls(host.shape, dev.to_device(host, "activations", name),
                   requires_grad=requires_grad, device=dev, name=name)

    @classmethod
    def zeros(cls, shape, device: Device | None = None, name: str = "") -> Tensor:
        dev = device or get_device()
        n = math.prod(shape)
        return cls(shape, dev.zeros(n, "activations", name), device=dev, name=name)

    def numpy(self) -> np.ndarray:
        """Blocking copy to the host."""
        return self.device.to_host(self.buf, self.shape)

    def grad(self) -> np.ndarray | None:
        """Host copy of the accumulated gradient (None if none flowed here)."""
        return None if self.grad_buf is None else self.device.to_host(self.grad_buf, self.shape)

    def item(self) -> float:
        return float(self.numpy().reshape(-1)[0])

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return 4 * self.numel

    def ensure_grad(self) -> cl.Buffer:
        """The gradient buffer, allocated zeroed on first use."""
        if self.grad_buf is None:
            self.grad_buf = self.device.zeros(self.numel, "activations", self.name)
        return self.grad_buf

    def detach(self) -> Tensor:
        """Same data, no graph."""
        return Tensor(self.shape, self.buf, device=self.device, name=self.name)

    # ---- autograd ------------------------------------------------------------------------
    def backward(self, grad: np.ndarray | None = None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into every tensor of the graph (seed: ones or ``grad``).

        Like torch, the graph is released afterwards unless ``retain_graph``: the backward
        closures reference their outputs, and releasing them lets device buffers go at once
        instead of waiting for Python's cycle collector."""
        order: list[Tensor] = []
        seen: set[int] = set()
        stack: list[tuple[Tensor, bool]] = [(self, False)]
        while stack:  # iterative topological sort: graphs of long LSTM sequences are deep
            node, done = stack.pop()
            if done:
                order.append(node)
                continue
            if id(node) in seen:
                continue
            seen.add(id(node))
            stack.append((node, True))
            stack.extend((p, False) for p in node._parents if p.requires_grad)
        dev = self.device
        if grad is None:  # ones, filled on the device (a captured plan replays the fill)
            seed_buf = dev.alloc(self.nbytes, "activations", self.name)
            dev.fill(seed_buf, 1.0, 0, self.nbytes)
        else:
            seed = np.asarray(grad, np.float32)
            if seed.shape != self.shape:
                raise ValueError(f"backward: seed gradient shape {seed.shape} != {self.shape}")
            seed_buf = dev.to_device(seed)
        g = self.ensure_grad()
        accumulate(g, seed_buf, self.numel, dev)
        for node in reversed(order):
            if node._backward is not None:
                node._backward()
        if not retain_graph:
            for node in order:
                node._backward = None
                node._parents = ()

    def __repr__(self) -> str:
        label = f" op={self.op}" if self.op else ""
        return f"Tensor(shape={self.shape}{label}{' grad' if self.requires_grad else ''})"


def make_output(shape, parents: tuple[Tensor, ...], op: str,
                buf: cl.Buffer | None = None) -> Tensor:
    """An op's result tensor; it joins the graph when grad is on and a parent needs grad."""
    needs = _grad_enabled and any(p.requires_grad for p in parents)
    dev = parents[0].device
    return Tensor(shape, buf, requires_grad=needs, parents=parents if needs else (), op=op,
                  device=dev, name=dev.owner)


class Parameter(Tensor):
    """A trainable tensor: a slice of its model's flat parameter and gradient buffers.

    Created by layers with a host initial value; the model binds it into a
    :class:`~neurofx.nn.parameters.ParameterStore`, which provides the device buffers.
    ``block_size`` is its Adam-mini block length (see ParamSpec).
    """

    __slots__ = ("init", "role", "block_size")

    def __init__(self, init: np.ndarray, role: str = "weight", block_size: int = 1):
        # no buffer yet: `bind` installs the store's sub-buffers
        self.device = None  # type: ignore[assignment]
        self.init = np.asarray(init, dtype=np.float32)
        self.shape = tuple(self.init.shape)
        self.buf = None  # type: ignore[assignment]
        self.grad_buf = None
        self.requires_grad = True
        self._parents = ()
        self._backward = None
        self.op = "param"
        self.name = ""
        self.role = role
        self.block_size = int(block_size)

    def bind(self, device: Device, buf: cl.Buffer, grad_buf: cl.Buffer, name: str) -> None:
        self.device, self.buf, self.grad_buf, self.name = device, buf, grad_buf, name
        self.init = None  # the store holds the values now

    def ensure_grad(self) -> cl.Buffer:
        if self.grad_buf is None:
            raise RuntimeError(f"parameter {self.name or self.shape} is not bound to a model")
        return self.grad_buf


class StateTensor(Tensor):
    """A persistent, non-trainable tensor of a module (running statistics, recurrent state
    kept for saving). Saved and loaded with the model's weights under ``state/<name>``."""

    __slots__ = ()

    @classmethod
    def of(cls, array, name: str = "", device: Device | None = None) -> StateTensor:
        dev = device or get_device()
        host = np.asarray(array, dtype=np.float32)
        return cls(host.shape, dev.to_device(host, "other", name), device=dev, name=name)

    def assign(self, array) -> None:
        host = np.ascontiguousarray(array, dtype=np.float32).reshape(self.shape)
        cl.enqueue_copy(self.device.queue, self.buf, host, is_blocking=True)
