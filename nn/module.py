"""Modules (layers) and the layer registry that makes architectures JSON-describable.

A module holds :class:`~neurofx.nn.tensor.Parameter` attributes and sub-modules, and
implements ``forward(*tensors)``. ``config()`` returns the constructor arguments, so
``build_module(module.describe())`` rebuilds the same architecture (used by save/load).
Parameter names follow attribute paths, like torch: ``0.weight``, ``2.lstm.weight_ih``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from . import ops
from .tensor import Parameter, StateTensor, Tensor

LAYERS: dict[str, type[Module]] = {}


def register(cls: type[Module]) -> type[Module]:
    """Class decorator: make a layer buildable by its type name from a config dict."""
    LAYERS[cls.__name__] = cls
    return cls


class Module:
    """Base class of layers and containers."""

    training: bool = True
    # host counters a captured plan's replay advances itself (through ``dynamic`` kernel
    # arguments, see neurofx.nn.launch); any other plain value that changes during a
    # recorded call makes the plan refuse the model (neurofx.nn.plan)
    _plan_counters: tuple[str, ...] = ()

    def state_signature(self):
        """What of the kept recurrent state decides the kernel sequence of the next call
        (None: no state kept). Part of a captured plan's key; stateful layers override it."""
        return None

    def plan_mode(self):
        """Host settings other than ``training``, ``stochastic`` and the recurrent state that
        decide which kernels a call enqueues (None: none); part of a captured plan's key."""
        return None

    def forward(self, *inputs: Tensor) -> Tensor:
        raise NotImplementedError

    def __call__(self, *inputs: Tensor) -> Tensor:
        dev = inputs[0].device
        with dev.owner_scope(getattr(self, "_path", "") or type(self).__name__):
            return self.forward(*inputs)

    # ---- structure -----------------------------------------------------------------------
    def children(self) -> Iterator[tuple[str, Module]]:
        for key, value in vars(self).items():
            if isinstance(value, Module):
                yield key, value
            elif isinstance(value, list | tuple):
                for i, item in enumerate(value):
                    if isinstance(item, Module):
                        yield f"{i}" if key == "layers" else f"{key}.{i}", item

    def named_parameter_tensors(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """(dotted name, Parameter) in a stable order: own parameters, then children."""
        for key, value in vars(self).items():
            if isinstance(value, Parameter):
                yield f"{prefix}{key}", value
        for key, child in self.children():
            yield from child.named_parameter_tensors(f"{prefix}{key}.")

    def named_state(self, prefix: str = "") -> Iterator[tuple[str, StateTensor]]:
        """(dotted name, StateTensor): persistent non-trainable tensors, saved with weights."""
        for key, value in vars(self).items():
            if isinstance(value, StateTensor):
                yield f"{prefix}{key}", value
        for key, child in self.children():
            yield from child.named_state(f"{prefix}{key}.")

    def modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        yield prefix.rstrip("."), self
        for key, child in self.children():
            yield from child.modules(f"{prefix}{key}.")

    def train(self, mode: bool = True) -> Module:
        for _, m in self.modules():
            m.training = mode
        return self

    def eval(self) -> Module:
        return self.train(False)

    def reset_state(self) -> None:
        """Clear recurrent state in every sub-module that keeps some."""
        for _, m in self.modules():
            if m is not self and hasattr(m, "reset_state"):
                type(m).reset_state(m)

    # ---- architecture description ----------------------------------------------------------
    def config(self) -> dict:
        """Constructor keyword arguments (JSON types only)."""
        return {}

    def describe(self) -> dict:
        return {"type": type(self).__name__, **self.config()}

    def extra_losses(self) -> list[Tensor]:
        """Loss terms layers add to the objective (e.g. a VAE head's KL) in the last forward."""
        out = []
        for _, m in self.modules():
            out.extend(getattr(m, "_extra_losses", []))
        return out


def build_module(desc: dict) -> Module:
    """Inverse of :meth:`Module.describe`."""
    desc = dict(desc)
    kind = desc.pop("type", None)
    cls = LAYERS.get(kind)
    if cls is None:
        raise ValueError(f"unknown layer type {kind!r}; known: {', '.join(sorted(LAYERS))}")
    return cls(**desc)


def child_seed(seed: int, *index: int) -> int:
    """A sub-layer's seed derived from its parent's ``seed`` and its position ``index``."""
    return int(np.random.SeedSequence([seed, *index]).generate_state(1)[0] % 2**31)


def uniform_init(rng: np.random.Generator, shape, fan_in: int) -> np.ndarray:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)), torch's default for Linear/LSTM/Conv."""
    bound = 1.0 / np.sqrt(max(fan_in, 1))
    return rng.uniform(-bound, bound, size=shape).astype(np.float32)


@register
class Dense(Module):
    """y = act(x @ weight^T + bias); ``weight`` (out, in), ``bias`` (out,).

    Adam-mini blocks: one per weight row (output neuron); the bias keeps per-element Adam.
    """

    def __init__(self, n_in: int, n_out: int, activation: str = "none", bias: bool = True,
                 seed: int = 0):
        if activation not in ops.ACTIVATIONS:
            raise ValueError(f"Dense: unknown activation {activation!r}; valid: "
                             f"{', '.join(ops.ACTIVATIONS)}")
        self.n_in, self.n_out, self.activation, self.seed = n_in, n_out, activation, seed
        rng = np.random.default_rng(seed)
        self.weight = Parameter(uniform_init(rng, (n_out, n_in), n_in), "weight", block_size=n_in)
        self.bias = Parameter(uniform_init(rng, (n_out,), n_in), "bias", 1) if bias else None

    def config(self) -> dict:
        return {"n_in": self.n_in, "n_out": self.n_out, "activation": self.activation,
                "bias": self.bias is not None, "seed": self.seed}

    def forward(self, x: Tensor) -> Tensor:
        rows = x.numel // self.n_in
        if x.shape[-1] != self.n_in:
            raise ValueError(f"Dense({self.n_in}->{self.n_out}): input last dim {x.shape[-1]}")
        flat = x if len(x.shape) == 2 else ops.reshape(x, (rows, self.n_in))
        y = ops.linear(flat, self.weight, self.bias, self.activation)
        return y if len(x.shape) == 2 else ops.reshape(y, (*x.shape[:-1], self.n_out))


@register
class Activation(Module):
    def __init__(self, kind: str):
        self.kind = kind

    def config(self) -> dict:
        return {"kind": self.kind}

    def forward(self, x: Tensor) -> Tensor:
        return ops.activation(x, self.kind)


@register
class Concat(Module):
    """Joins several inputs along the last dimension: the entry of multi-input models."""

    def forward(self, *xs: Tensor) -> Tensor:
        return xs[0] if len(xs) == 1 else ops.concat(list(xs))


@register
class Dropout(Module):
    """Inverted dropout in training mode, identity in eval mode. Masks come from a device
    counter-based RNG seeded by ``seed`` and a per-call counter (reproducible runs)."""

    def __init__(self, p: float = 0.5, seed: int = 0):
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p, self.seed, self.calls = p, seed, 0

    def config(self) -> dict:
        return {"p": self.p, "seed": self.seed}

    _plan_counters = ("calls",)

    def next_args(self) -> tuple[int, int]:
        """Advance the call counter: (seed, counter) of the next mask."""
        self.calls += 1
        return self.seed, self.calls

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        seed, counter = self.next_args()
        return ops.dropout(x, self.p, seed, counter, next_args=self.next_args)


@register
class Sequential(Module):
    """Layers applied in order; several inputs go to the first layer (e.g. ``Concat``)."""

    def __init__(self, layers: list):
        self.layers = [build_module(lay) if isinstance(lay, dict) else lay for lay in layers]

    def config(self) -> dict:
        return {"layers": [lay.describe() for lay in self.layers]}

    def forward(self, *xs: Tensor) -> Tensor:
        y = self.layers[0](*xs)
        for layer in self.layers[1:]:
            y = layer(y)
        return y
